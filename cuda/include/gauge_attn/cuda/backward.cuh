// gauge_attn/cuda/backward.cuh: the host API of the GPU backward (docs/gradients.md), exact mode.
//
//   gauge_attn::gpu::Forward<Spec> forward;     gauge_attn::gpu::Backward<Spec> backward;
//   forward.run(beliefs, options, outputs, stream);                 // with outputs.lse (and energy, Σ^agg)
//   backward.run(beliefs, options, saved, incoming, grads, stream); // device pointers; asynchronous
//   backward.check_inputs(stream);                                  // synchronises; throws on bad input
//   backward.run(beliefs, options, forward_vectors, incoming_vectors, gradient_vectors, stream);
//
// Stateless: it recomputes the O(N) lift from the beliefs (a PyTorch op can call it with the
// forward's saved outputs alone), then four steps on `stream`: the row gradients (G2, G5;
// row_gradients.cuh), the pair pass (flash_kl_backward.cuh), and the lift backward
// (lift_backward.cuh). Inputs and outputs are float32; the row and lift steps run in float64, the
// pair pass in float32.
#pragma once

#include <gauge_attn/detail/so3_tables.hpp>
#include <gauge_attn/irreps.hpp>
#include <gauge_attn/options.hpp>

#include <cuda_runtime.h>
#include <thrust/device_vector.h>

#include <algorithm>
#include <cstddef>
#include <vector>

#include "backward_layout.cuh"
#include "check.cuh"
#include "device_beliefs.cuh"
#include "device_gradients.cuh"
#include "device_vectors.cuh"
#include "flash_kl_backward.cuh"
#include "layout.cuh"
#include "lift_backward.cuh"
#include "lift_workspace.cuh"
#include "row_gradients.cuh"

namespace gauge_attn::gpu {

template <class Spec>
class Backward {
 public:
  static constexpr int H = Spec::num_heads;

  /// Launches the backward on `stream`; no synchronisation. `saved` are the forward's outputs for
  /// the same beliefs and options, `incoming` the gradients of those outputs (null: zero). Throws
  /// InvalidArgument for bad shapes or options and missing saved state, CudaError for CUDA
  /// failures. Bad beliefs and non-finite incoming gradients are found on the device and kept
  /// until check_inputs() reports them (the gradients are then not valid).
  void run(const DeviceBeliefs& q, const AttentionOptions& opt, const DeviceSaved& saved,
           const DeviceOutputGradients& incoming, const DeviceGradients& grads, cudaStream_t stream = 0) {
    using gauge_attn::detail::require;
    require(opt.mode == Mode::exact, "mode", "the GPU backward computes the exact mode; run Mode::upstream on the CPU");
    detail::check_request<float>(q, Spec::embed_dim, nullptr, nullptr, nullptr);
    detail::check_backward_request(saved, incoming, grads);
    gauge_attn::detail::check_mask(opt.mask);
    const std::vector<double> kappa = gauge_attn::detail::kappa_per_head(opt, H);
    const std::vector<int> lengths = gauge_attn::detail::lengths_per_sequence(opt, q.batch, q.tokens);
    const bool covariance = incoming.sigma != nullptr;
    // A diagonal forward returned Σ^agg's diagonal only; the frames need all of it (G4).
    const bool moments =
        covariance && q.covariance == Covariance::diagonal && !opt.identity_transport && Spec::max_l > 0;
    lift_.run(q, kappa, lengths, opt.identity_transport, covariance, stream);

    BackwardParams<Spec> p;
    p.lift = lift_.params();
    prepare(q, covariance, moments, p);
    p.groups = BlockGroups<Spec::num_irreps>::template of<Spec>(q.batch, q.tokens, [&](auto irrep) {
      constexpr int K = decltype(irrep)::dim;
      return covariance ? BackwardTileShape<K, value_width(K, true)>::keys
                        : BackwardTileShape<K, value_width(K, false)>::keys;
    });
    p.mask = opt.mask;
    p.covariance = covariance;
    p.moments = moments;
    p.saved = saved;
    p.incoming = incoming;
    p.grads = grads;

    // Cleared: the sums the kernels add to, and the rows no kernel writes (padded tokens, and
    // the off-block entries of a full Σ̄).
    GAUGE_ATTN_CUDA_CHECK(cudaMemsetAsync(p.abar, 0, abar_.size() * sizeof(float), stream));
    if (moments) GAUGE_ATTN_CUDA_CHECK(cudaMemsetAsync(p.moments_sums, 0, moments_.size() * sizeof(float), stream));
    GAUGE_ATTN_CUDA_CHECK(cudaMemsetAsync(p.sums, 0, sums_.size() * sizeof(double), stream));
    GAUGE_ATTN_CUDA_CHECK(cudaMemsetAsync(p.kappa_sums, 0, H * sizeof(double), stream));
    const std::size_t rows = std::size_t(q.batch) * q.tokens;
    const bool padded = lift_.padded();
    if (padded || q.covariance == Covariance::full)
      GAUGE_ATTN_CUDA_CHECK(cudaMemsetAsync(grads.sigma, 0, detail::covariance_size(q) * sizeof(float), stream));
    if (padded) {
      GAUGE_ATTN_CUDA_CHECK(cudaMemsetAsync(grads.mu, 0, rows * q.embed_dim * sizeof(float), stream));
      GAUGE_ATTN_CUDA_CHECK(cudaMemsetAsync(grads.phi, 0, rows * 3 * sizeof(float), stream));
    }

    const dim3 per_head((q.tokens + lift_threads - 1) / lift_threads, H, q.batch);
    row_gradients_kernel<Spec><<<per_head, lift_threads, 0, stream>>>(p);
    GAUGE_ATTN_CUDA_CHECK_LAUNCH(row_gradients_kernel);
    if (!covariance)
      launch<false, false>(p, stream);
    else if (moments)
      launch<true, true>(p, stream);
    else
      launch<true, false>(p, stream);
    lift_backward_kernel<Spec><<<per_head, lift_threads, 0, stream>>>(p);
    GAUGE_ATTN_CUDA_CHECK_LAUNCH(lift_backward_kernel);
    const dim3 per_token((q.tokens + lift_threads - 1) / lift_threads, q.batch);
    belief_gradients_kernel<Spec><<<per_token, lift_threads, 0, stream>>>(p);
    GAUGE_ATTN_CUDA_CHECK_LAUNCH(belief_gradients_kernel);
  }

  /// The same on Thrust device vectors (device_vectors.cuh): the forward's ForwardVectors as the
  /// saved state, their sizes and those of the gradients checked first.
  void run(const DeviceBeliefs& q, const AttentionOptions& opt, const ForwardVectors& saved,
           const OutputGradientVectors& incoming, BackwardVectors& grads, cudaStream_t stream = 0) {
    run(q, opt, saved_outputs(q, H, saved), incoming_gradients(q, H, incoming), belief_gradients(q, H, grads), stream);
  }

  /// Waits for `stream` and throws InvalidArgument naming the first bad input of any run since the
  /// last check: a bad belief (as Forward::check_inputs) or a non-finite incoming gradient
  /// ("incoming.mu", "incoming.sigma", "incoming.energy", with its head, b and n).
  void check_inputs(cudaStream_t stream = 0) { lift_.check_inputs(stream); }

 private:
  template <bool Covariance, bool Moments>
  void launch(const BackwardParams<Spec>& p, cudaStream_t stream) {
    std::size_t smem = 0;
    Spec::for_each_irrep([&](auto irrep, int) {
      constexpr int K = decltype(irrep)::dim;
      using TS = BackwardTileShape<K, value_width(K, Covariance)>;
      smem = std::max(smem, sizeof(float) * TS::smem_floats(Moments && K > 1));
    });
    auto kernel = flash_kl_backward_kernel<Spec, Covariance, Moments>;
    if (smem > 48 * 1024)
      GAUGE_ATTN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    kernel<<<p.groups.blocks(), 128, smem, stream>>>(p);
    GAUGE_ATTN_CUDA_CHECK_LAUNCH(flash_kl_backward_kernel);
  }

  /// Sizes the backward's workspace (BackwardHeadLayout) and uploads the generator tables once.
  void prepare(const DeviceBeliefs& q, bool covariance, bool moments, BackwardParams<Spec>& p) {
    using detail::grow;
    using detail::raw;
    const std::size_t BN = std::size_t(q.batch) * q.tokens;
    std::size_t nr = 0, nl = 0, nv = 0, ng = 0, ns = 0;
    for (int h = 0; h < H; ++h) {
      const int K = Spec::head(h).dim, P = K * (K + 1) / 2 + K + 1, V = covariance ? K + K * (K + 1) / 2 : K;
      BackwardHeadLayout& bh = p.heads[h];
      bh.row_stride = round4(V) + 4;
      bh.rows = nr;
      bh.lifted = nl;
      bh.values = nv;
      bh.lift = ng;
      bh.sums = ns;
      nr += BN * bh.row_stride;
      nl += BN * round4(P);
      nv += BN * round4(V);
      ng += BN * (K + 3);
      ns += std::size_t(q.batch) * K;
    }
    grow(rows_, nr);
    grow(abar_, nl);
    grow(u_, nl);
    grow(xbar_, nv);
    if (moments) grow(moments_, nv);
    grow(lift_grads_, ng);
    grow(sums_, ns);
    grow(kappa_sums_, H);
    if (tables_.empty()) {
      std::vector<double> host;
      generator_offsets_.clear();
      Spec::for_each_irrep([&](auto irrep, int) {
        generator_offsets_.push_back(host.size());
        for (const std::vector<double>& G : gauge_attn::detail::generator_tables(decltype(irrep)::l))
          host.insert(host.end(), G.begin(), G.end());
      });
      tables_ = host;  // synchronous copy, once
    }
    std::copy(generator_offsets_.begin(), generator_offsets_.end(), p.generators);
    p.tables = raw(tables_);
    p.rows = raw(rows_);
    p.abar = raw(abar_);
    p.u = raw(u_);
    p.xbar = raw(xbar_);
    p.moments_sums = moments ? raw(moments_) : nullptr;
    p.lift_grads = raw(lift_grads_);
    p.sums = raw(sums_);
    p.kappa_sums = raw(kappa_sums_);
  }

  LiftWorkspace<Spec> lift_;
  std::vector<std::size_t> generator_offsets_;
  thrust::device_vector<float> rows_, abar_, u_, xbar_, moments_;
  thrust::device_vector<double> lift_grads_, sums_, kappa_sums_, tables_;
};

}  // namespace gauge_attn::gpu
