// gauge_attn/cuda/forward.cuh: the host API of the fused GPU forward.
//
//   gauge_attn::gpu::Forward<Spec> forward;                      // owns the device workspace
//   forward.run(beliefs, options, outputs, stream);               // device pointers; asynchronous
//   forward.check_inputs(stream);                                 // synchronises; throws on bad input
//   forward.run(beliefs, options, vectors, stream);               // the same on Thrust device vectors
//
// The same options as the CPU forward (options.hpp); Mode::exact only (the upstream-compatible mode
// runs on the CPU). Inputs are float32; the lift runs in float64, the attention in float32.
#pragma once

#include <gauge_attn/detail/so3_tables.hpp>
#include <gauge_attn/irreps.hpp>
#include <gauge_attn/options.hpp>
#include <gauge_attn/row_statistics.hpp>

#include <cuda_runtime.h>
#include <thrust/device_vector.h>

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

#include "check.cuh"
#include "device_beliefs.cuh"
#include "device_vectors.cuh"
#include "flash_kl.cuh"
#include "layout.cuh"
#include "lift.cuh"

namespace gauge_attn::gpu {

template <class Spec>
class Forward {
 public:
  static constexpr int H = Spec::num_heads;

  /// Launches the lift and the attention on `stream`; no synchronisation. Throws InvalidArgument
  /// for bad shapes or options and CudaError for CUDA failures. Bad values inside the beliefs are
  /// found on the device and kept until check_inputs() reports them (their rows are not valid).
  void run(const DeviceBeliefs& q, const AttentionOptions& opt, const DeviceOutputs& out, cudaStream_t stream = 0) {
    using gauge_attn::detail::require;
    require(opt.mode == Mode::exact, "mode", "the GPU forward computes the exact mode; run Mode::upstream on the CPU");
    require(out.mu != nullptr, "outputs.mu", "null device pointer");
    const bool statistics = detail::check_request(q, Spec::embed_dim, out.row_std, out.uniform_row_std, out.entropy);
    gauge_attn::detail::check_mask(opt.mask);
    const std::vector<double> kappa = gauge_attn::detail::kappa_per_head(opt, H);
    const std::vector<int> lengths = gauge_attn::detail::lengths_per_sequence(opt, q.batch, q.tokens);
    const bool covariance = out.sigma != nullptr;
    prepare(q, kappa, lengths, covariance, stream);

    LiftParams<Spec> lp;
    std::copy(heads_.begin(), heads_.end(), lp.heads);
    std::copy(quarter_turn_offsets_.begin(), quarter_turn_offsets_.end(), lp.quarter_turns);
    lp.batch = q.batch;
    lp.tokens = q.tokens;
    lp.embed_dim = q.embed_dim;
    lp.diagonal = q.covariance == Covariance::diagonal;
    lp.identity_transport = opt.identity_transport;
    lp.mu = q.mu;
    lp.sigma = q.sigma;
    lp.phi = q.phi;
    lp.lengths = raw(lengths_);
    lp.tables = raw(tables_);
    lp.queries = raw(queries_);
    lp.keys = raw(keys_);
    lp.values = raw(values_);
    lp.frames = raw(frames_);
    lp.means = raw(means_);
    lp.status = raw(status_);
    if (q.tokens <= lift_threads) {  // one block per sequence and head: one launch, no atomics
      lift_sequence_kernel<Spec><<<dim3(1, H, q.batch), lift_threads, 0, stream>>>(lp);
      GAUGE_ATTN_CUDA_CHECK_LAUNCH(lift_sequence_kernel);
    } else {
      GAUGE_ATTN_CUDA_CHECK(cudaMemsetAsync(lp.means, 0, means_.size() * sizeof(double), stream));
      const dim3 lift_grid((q.tokens + lift_threads - 1) / lift_threads, H, q.batch);
      lift_frames_kernel<Spec><<<lift_grid, lift_threads, 0, stream>>>(lp);
      GAUGE_ATTN_CUDA_CHECK_LAUNCH(lift_frames_kernel);
      lift_pack_kernel<Spec><<<lift_grid, lift_threads, 0, stream>>>(lp);
      GAUGE_ATTN_CUDA_CHECK_LAUNCH(lift_pack_kernel);
    }

    AttentionParams<Spec> ap;
    std::copy(heads_.begin(), heads_.end(), ap.heads);
    ap.batch = q.batch;
    ap.tokens = q.tokens;
    ap.embed_dim = q.embed_dim;
    int blocks = 0;
    Spec::for_each_irrep([&](auto irrep, int first) {
      using I = decltype(irrep);
      const int r = Spec::head(first).irrep, queries = TileShape<I::dim>::queries;
      ap.first_block[r] = blocks;
      ap.group_tiles[r] = (q.tokens + queries - 1) / queries;
      ap.first_head[r] = first;
      ap.group_heads[r] = I::heads;
      blocks += ap.group_tiles[r] * I::heads * q.batch;
      ap.first_block[r + 1] = blocks;
    });
    ap.mask = opt.mask;
    ap.diagonal_output = q.covariance == Covariance::diagonal;
    ap.lengths = lp.lengths;
    ap.queries = lp.queries;
    ap.keys = lp.keys;
    ap.values = lp.values;
    ap.frames = lp.frames;
    ap.means = lp.means;
    ap.mu = out.mu;
    ap.sigma = out.sigma;
    ap.lse = out.lse;
    ap.row_std = out.row_std;
    ap.uniform_row_std = out.uniform_row_std;
    ap.entropy = out.entropy;
    // Every valid row is written; rows of padded tokens are cleared here.
    const bool padded = std::any_of(lengths.begin(), lengths.end(), [&](int n) { return n < q.tokens; });
    if (padded) {
      const std::size_t rows = std::size_t(q.batch) * q.tokens;
      GAUGE_ATTN_CUDA_CHECK(cudaMemsetAsync(out.mu, 0, rows * q.embed_dim * sizeof(float), stream));
      if (covariance)
        GAUGE_ATTN_CUDA_CHECK(cudaMemsetAsync(
            out.sigma, 0, rows * (lp.diagonal ? 1 : q.embed_dim) * q.embed_dim * sizeof(float), stream));
      for (float* o : {out.lse, out.row_std, out.uniform_row_std, out.entropy})
        if (o) GAUGE_ATTN_CUDA_CHECK(cudaMemsetAsync(o, 0, rows * H * sizeof(float), stream));
    }
    const dim3 grid{unsigned(blocks)};
    if (covariance && statistics) launch<true, true>(grid, ap, stream);
    if (covariance && !statistics) launch<true, false>(grid, ap, stream);
    if (!covariance && statistics) launch<false, true>(grid, ap, stream);
    if (!covariance && !statistics) launch<false, false>(grid, ap, stream);
  }

  /// The same on Thrust device vectors (device_vectors.cuh), their sizes checked first.
  void run(const DeviceBeliefs& q, const AttentionOptions& opt, ForwardVectors& out, cudaStream_t stream = 0) {
    run(q, opt, device_outputs(q, H, out), stream);
  }

  /// Waits for `stream` and throws InvalidArgument naming the first bad belief the lift found
  /// (a covariance that is not positive definite or not finite, a non-finite mean or frame) in
  /// any run since the last check; the report is then cleared.
  void check_inputs(cudaStream_t stream = 0) {
    unsigned long long status = 0;
    GAUGE_ATTN_CUDA_CHECK(cudaMemcpyAsync(&status, raw(status_), sizeof status, cudaMemcpyDeviceToHost, stream));
    GAUGE_ATTN_CUDA_CHECK(cudaStreamSynchronize(stream));
    if (status == 0) return;
    GAUGE_ATTN_CUDA_CHECK(cudaMemset(raw(status_), 0, sizeof status));
    throw_input_error<Spec>(status, tokens_);
  }

 private:
  template <class T>
  static T* raw(thrust::device_vector<T>& v) {
    return thrust::raw_pointer_cast(v.data());
  }

  template <bool Covariance, bool Statistics>
  void launch(dim3 grid, const AttentionParams<Spec>& ap, cudaStream_t stream) {
    std::size_t smem = 0;
    Spec::for_each_irrep([&](auto irrep, int) {
      constexpr int K = 2 * decltype(irrep)::l + 1;
      using TS = TileShape<K>;
      smem = std::max(smem, 2 * sizeof(float) * TS::keys *  // two stages
                                (TS::smem_stride(TS::P) + TS::smem_stride(value_width<K>(Covariance))));
    });
    auto kernel = flash_kl_kernel<Spec, Covariance, Statistics>;
    if (smem > 48 * 1024)
      GAUGE_ATTN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    kernel<<<grid, 128, smem, stream>>>(ap);
    GAUGE_ATTN_CUDA_CHECK_LAUNCH(flash_kl_kernel);
  }

  /// Sizes the workspace, uploads the lengths and the quarter-turn tables, clears the sums.
  void prepare(const DeviceBeliefs& q, const std::vector<double>& kappa, const std::vector<int>& lengths,
               bool covariance, cudaStream_t stream) {
    tokens_ = q.tokens;
    heads_.assign(H, HeadLayout{});
    std::size_t nq = 0, nk = 0, nv = 0, nf = 0, nm = 0;
    const std::size_t BN = std::size_t(q.batch) * q.tokens;
    for (int h = 0; h < H; ++h) {
      const HeadInfo info = Spec::head(h);
      HeadLayout& hl = heads_[h];
      hl.l = info.l;
      hl.dim = info.dim;
      hl.offset = info.offset;
      hl.irrep = info.irrep;
      hl.kappa = kappa[h];
      const int K = info.dim, P = K * (K + 1) / 2 + K + 1;
      hl.value_stride = round4(covariance ? K + K * (K + 1) / 2 : K);
      hl.queries = nq;
      hl.keys = nk;
      hl.values = nv;
      hl.frames = nf;
      hl.means = nm;
      nq += BN * round4(P);
      nk += BN * round4(P);
      nv += BN * hl.value_stride;
      nf += BN * K * K;
      nm += std::size_t(q.batch) * K;
    }
    grow(queries_, nq);
    grow(keys_, nk);
    grow(values_, nv);
    grow(frames_, nf);
    grow(means_, nm);
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
      GAUGE_ATTN_CUDA_CHECK(cudaMemcpyAsync(raw(lengths_), lengths_host_.data(), lengths.size() * sizeof(int),
                                            cudaMemcpyHostToDevice, stream));
    }
  }

  template <class T>
  static void grow(thrust::device_vector<T>& v, std::size_t n) {
    if (v.size() < n) v.resize(n);
  }

  int tokens_ = 0;
  std::vector<HeadLayout> heads_;
  std::vector<std::size_t> quarter_turn_offsets_;
  std::vector<int> lengths_host_;
  thrust::device_vector<float> queries_, keys_, values_;
  thrust::device_vector<double> frames_, means_, tables_;
  thrust::device_vector<int> lengths_;
  thrust::device_vector<unsigned long long> status_;
};

}  // namespace gauge_attn::gpu
