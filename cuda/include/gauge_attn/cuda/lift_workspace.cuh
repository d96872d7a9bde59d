// gauge_attn/cuda/lift_workspace.cuh: the lift as one reusable piece. It owns the O(B·N·Σ P)
// device workspace of the lifted beliefs (queries, keys, values, frames, ν sums, ½ ln det Σ), the
// uploaded lengths and quarter-turn tables, and the status word of bad inputs; run() sizes it and
// launches the lift kernels (lift.cuh). The forward reads the lifted vectors in its attention; the
// backward recomputes them the same way (it keeps no state between calls).
#pragma once

#include <gauge_attn/detail/so3_tables.hpp>
#include <gauge_attn/irreps.hpp>
#include <gauge_attn/precision.hpp>

#include <cuda_runtime.h>
#include <thrust/device_vector.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <vector>

#include "check.cuh"
#include "device_beliefs.cuh"
#include "device_vectors.cuh"
#include "layout.cuh"
#include "lift.cuh"

namespace gauge_attn::gpu {

template <class Spec>
class LiftWorkspace {
 public:
  static constexpr int H = Spec::num_heads;

  /// Lifts every token and head of `q` (shapes already checked) on `stream`; no synchronisation.
  /// `kappa` and `lengths` are the checked per-head temperatures and per-sequence valid lengths;
  /// with `covariance_values` the values carry sym(S + ννᵀ) after ν; with `float64_scores` the
  /// queries and keys are stored in double (Scores::float64), else in float.
  void run(const DeviceBeliefs& q, const std::vector<double>& kappa, const std::vector<int>& lengths,
           bool identity_transport, bool covariance_values, cudaStream_t stream, bool float64_scores = false) {
    using detail::raw;
    prepare(q, kappa, lengths, covariance_values, float64_scores, stream);
    LiftParams<Spec>& p = params_;
    std::copy(heads_.begin(), heads_.end(), p.heads);
    std::copy(quarter_turn_offsets_.begin(), quarter_turn_offsets_.end(), p.quarter_turns);
    p.batch = q.batch;
    p.tokens = q.tokens;
    p.embed_dim = q.embed_dim;
    p.diagonal = q.covariance == Covariance::diagonal;
    p.identity_transport = identity_transport;
    p.mu = q.mu;
    p.sigma = q.sigma;
    p.phi = q.phi;
    p.lengths = raw(lengths_);
    p.tables = raw(tables_);
    p.queries = float64_scores ? nullptr : raw(queries_);
    p.keys = float64_scores ? nullptr : raw(keys_);
    p.queries64 = float64_scores ? raw(queries64_) : nullptr;
    p.keys64 = float64_scores ? raw(keys64_) : nullptr;
    p.norms = raw(norms_);
    GAUGE_ATTN_CUDA_CHECK(cudaMemsetAsync(p.norms, 0, norms_.size() * sizeof(unsigned long long), stream));
    p.values = raw(values_);
    p.frames = raw(frames_);
    p.means = raw(means_);
    p.half_logdets = raw(half_logdets_);
    p.status = raw(status_);
    Spec::for_each_irrep([&](auto irrep, int first) {  // irrep r's heads: [first_head[r], first_head[r + 1])
      p.first_head[Spec::head(first).irrep + 1] = first + decltype(irrep)::heads;
    });
    if (q.tokens <= lift_threads) {  // one block per sequence and group of heads: one launch, nothing to clear
      p.sequence_groups = sequence_lift_groups<Spec>(q.tokens);
      const dim3 grid(p.sequence_groups.first_block[Spec::num_irreps], q.batch);
      lift_sequence_kernel<Spec><<<grid, SequenceLiftBlock<Spec>::threads, 0, stream>>>(p);
      GAUGE_ATTN_CUDA_CHECK_LAUNCH(lift_sequence_kernel);
    } else {
      GAUGE_ATTN_CUDA_CHECK(cudaMemsetAsync(p.means, 0, means_.size() * sizeof(double), stream));
      auto blocks = [&](int dim) {  // to cover N tokens
        const int per_block = TokenLiftBlock<Spec>::tokens(dim);
        return (q.tokens + per_block - 1) / per_block;
      };
      for (int h = 0; h < H; ++h) p.first_block[h + 1] = p.first_block[h] + blocks(heads_[h].dim);
      Spec::for_each_irrep([&](auto irrep, int first) {
        const int r = Spec::head(first).irrep;
        p.first_frame_block[r + 1] = p.first_frame_block[r] + blocks(decltype(irrep)::dim);
      });
      lift_frames_kernel<Spec>
          <<<dim3(p.first_frame_block[Spec::num_irreps], q.batch), TokenLiftBlock<Spec>::threads, 0, stream>>>(p);
      GAUGE_ATTN_CUDA_CHECK_LAUNCH(lift_frames_kernel);
      lift_pack_kernel<Spec><<<dim3(p.first_block[H], q.batch), TokenLiftBlock<Spec>::threads, 0, stream>>>(p);
      GAUGE_ATTN_CUDA_CHECK_LAUNCH(lift_pack_kernel);
    }
  }

  /// The device pointers of the last run (inputs and the lifted workspace).
  const LiftParams<Spec>& params() const { return params_; }
  const std::vector<HeadLayout>& heads() const { return heads_; }
  /// Whether a sequence of the last run is shorter than N (its padded rows must be cleared).
  bool padded() const {
    return std::any_of(lengths_host_.begin(), lengths_host_.end(), [&](int n) { return n < params_.tokens; });
  }

  /// Waits for `stream` and returns the bounds (P1), (P2) of the last run per (sequence, head), (B, H),
  /// from the norms the lift reduced (precision.hpp); `slope` is the run's ALiBi slope.
  std::vector<HeadPrecision> precision(double slope, cudaStream_t stream) const {
    std::vector<unsigned long long> bits(norms_.size());
    GAUGE_ATTN_CUDA_CHECK(cudaMemcpyAsync(bits.data(), thrust::raw_pointer_cast(norms_.data()), bits.size() * sizeof bits[0],
                                          cudaMemcpyDeviceToHost, stream));
    GAUGE_ATTN_CUDA_CHECK(cudaStreamSynchronize(stream));
    std::vector<HeadPrecision> r(std::size_t(params_.batch) * H);
    for (std::size_t k = 0; k < r.size(); ++k) {
      double n[3];
      std::memcpy(n, &bits[3 * k], sizeof n);
      const int K = heads_[k % H].dim, P = K * (K + 1) / 2 + K + 1;
      const bool float64 = params_.queries64 != nullptr;
      r[k] = head_precision(uses_tensor_cores(P, float64) ? tensor_core_score_roundings(P) : fma_score_roundings(P),
                            score_unit(float64), n[0], n[1], n[2], slope, lengths_host_[k / H]);
    }
    return r;
  }

  /// Waits for `stream` and throws InvalidArgument naming the first bad input reported into the
  /// status word (by the lift or by a later kernel) since the last check; the report is cleared.
  void check_inputs(cudaStream_t stream) {
    if (status_.empty()) return;  // nothing has run
    unsigned long long status = 0;
    GAUGE_ATTN_CUDA_CHECK(
        cudaMemcpyAsync(&status, detail::raw(status_), sizeof status, cudaMemcpyDeviceToHost, stream));
    GAUGE_ATTN_CUDA_CHECK(cudaStreamSynchronize(stream));
    if (status == 0) return;
    GAUGE_ATTN_CUDA_CHECK(cudaMemset(detail::raw(status_), 0, sizeof status));
    throw_input_error<Spec>(status, params_.tokens);
  }

 private:
  /// Sizes the workspace, uploads the lengths and the quarter-turn tables.
  void prepare(const DeviceBeliefs& q, const std::vector<double>& kappa, const std::vector<int>& lengths,
               bool covariance_values, bool float64_scores, cudaStream_t stream) {
    using detail::grow;
    heads_.assign(H, HeadLayout{});
    std::size_t nq = 0, nk = 0, nv = 0, nf = 0, nm = 0;
    const std::size_t BN = std::size_t(q.batch) * q.tokens;
    // The frames R_i = D^ℓ(φ_i) depend on the irrep only: lift_frames_kernel stores them once per
    // irrep, for its heads to share. lift_sequence_kernel (N ≤ lift_threads) spreads an irrep's heads
    // over blocks that cannot wait for each other, so there each head has its own.
    const bool shared_frames = q.tokens > lift_threads;
    for (int h = 0; h < H; ++h) {
      const HeadInfo info = Spec::head(h);
      HeadLayout& hl = heads_[h];
      hl.l = info.l;
      hl.dim = info.dim;
      hl.offset = info.offset;
      hl.irrep = info.irrep;
      hl.kappa = kappa[h];
      const int K = info.dim, P = K * (K + 1) / 2 + K + 1;
      hl.value_stride = lifted_value_stride(K, covariance_values);
      hl.queries = nq;
      hl.keys = nk;
      hl.values = nv;
      const bool same_frames_as_previous = shared_frames && h > 0 && heads_[h - 1].irrep == info.irrep;
      hl.frames = same_frames_as_previous ? heads_[h - 1].frames : nf;
      if (!same_frames_as_previous) nf += BN * K * K;
      hl.means = nm;
      nq += BN * round4(P);
      nk += BN * round4(P);
      nv += BN * hl.value_stride;
      nm += std::size_t(q.batch) * K;
    }
    if (float64_scores) {
      grow(queries64_, nq);
      grow(keys64_, nk);
    } else {
      grow(queries_, nq);
      grow(keys_, nk);
    }
    grow(norms_, std::size_t(q.batch) * H * 3);
    grow(values_, nv);
    grow(frames_, nf);
    grow(means_, nm);
    grow(half_logdets_, BN * H);
    if (status_.empty()) status_.resize(1, 0ull);  // cleared again by check_inputs()
    if (tables_.empty()) {
      std::vector<double> host;
      quarter_turn_offsets_.clear();
      Spec::for_each_irrep([&](auto irrep, int) {
        quarter_turn_offsets_.push_back(host.size());
        const std::vector<double>& X = gauge_attn::detail::quarter_turn_table(decltype(irrep)::l);
        host.insert(host.end(), X.begin(), X.end());
      });
      tables_ = host;  // synchronous copy, once
    }
    if (lengths != lengths_host_) {  // uploaded only when they change
      lengths_host_ = lengths;
      grow(lengths_, lengths.size());
      GAUGE_ATTN_CUDA_CHECK(cudaMemcpyAsync(detail::raw(lengths_), lengths_host_.data(), lengths.size() * sizeof(int),
                                            cudaMemcpyHostToDevice, stream));
    }
  }

  LiftParams<Spec> params_;
  std::vector<HeadLayout> heads_;
  std::vector<std::size_t> quarter_turn_offsets_;
  std::vector<int> lengths_host_;
  thrust::device_vector<float> queries_, keys_, values_;
  thrust::device_vector<double> queries64_, keys64_;
  thrust::device_vector<unsigned long long> norms_;
  thrust::device_vector<double> frames_, means_, half_logdets_, tables_;
  thrust::device_vector<int> lengths_;
  thrust::device_vector<unsigned long long> status_;
};

}  // namespace gauge_attn::gpu
