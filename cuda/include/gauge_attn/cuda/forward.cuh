// gauge_attn/cuda/forward.cuh: the host API of the fused GPU forward.
//
//   gauge_attn::gpu::Forward<Spec> forward;                      // owns the device workspace
//   forward.run(beliefs, options, outputs, stream);               // device pointers; asynchronous
//   forward.check_inputs(stream);                                 // synchronises; throws on bad input
//   forward.run(beliefs, options, vectors, stream);               // the same on Thrust device vectors
//
// The same options as the CPU forward (options.hpp); Mode::exact only (the upstream-compatible mode
// runs on the CPU). Inputs are float32; the lift runs in float64, the attention in float32.
// Optional outputs: Σ^agg, the row log-sum-exp (what gpu::Backward needs), the row statistics and
// the attention energy; each combination is its own compile-time variant of the attention kernel.
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
#include "lift_workspace.cuh"

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
    const bool covariance = out.sigma != nullptr, energy = out.energy != nullptr;
    lift_.run(q, kappa, lengths, opt.identity_transport, covariance, stream);
    const LiftParams<Spec>& lp = lift_.params();

    AttentionParams<Spec> ap;
    std::copy(lp.heads, lp.heads + H, ap.heads);
    ap.batch = q.batch;
    ap.tokens = q.tokens;
    ap.embed_dim = q.embed_dim;
    ap.groups = BlockGroups<Spec::num_irreps>::template of<Spec>(
        q.batch, q.tokens, [](auto irrep) { return TileShape<decltype(irrep)::dim>::queries; });
    ap.mask = opt.mask;
    ap.diagonal_output = lp.diagonal;
    ap.lengths = lp.lengths;
    ap.queries = lp.queries;
    ap.keys = lp.keys;
    ap.values = lp.values;
    ap.frames = lp.frames;
    ap.means = lp.means;
    ap.half_logdets = lp.half_logdets;
    ap.mu = out.mu;
    ap.sigma = out.sigma;
    ap.lse = out.lse;
    ap.row_std = out.row_std;
    ap.uniform_row_std = out.uniform_row_std;
    ap.entropy = out.entropy;
    ap.energy = out.energy;
    // Every valid row is written; rows of padded tokens are cleared here.
    if (lift_.padded()) {
      const std::size_t rows = std::size_t(q.batch) * q.tokens;
      GAUGE_ATTN_CUDA_CHECK(cudaMemsetAsync(out.mu, 0, rows * q.embed_dim * sizeof(float), stream));
      if (covariance) GAUGE_ATTN_CUDA_CHECK(cudaMemsetAsync(out.sigma, 0, detail::covariance_size(q) * sizeof(float), stream));
      for (float* o : {out.lse, out.row_std, out.uniform_row_std, out.entropy, out.energy})
        if (o) GAUGE_ATTN_CUDA_CHECK(cudaMemsetAsync(o, 0, rows * H * sizeof(float), stream));
    }
    const dim3 grid{unsigned(ap.groups.blocks())};
    visit_flags(
        [&](auto cov, auto stats, auto en) {
          launch<decltype(cov)::value, decltype(stats)::value, decltype(en)::value>(grid, ap, stream);
        },
        covariance, statistics, energy);
  }

  /// The same on Thrust device vectors (device_vectors.cuh), their sizes checked first.
  void run(const DeviceBeliefs& q, const AttentionOptions& opt, ForwardVectors& out, cudaStream_t stream = 0) {
    run(q, opt, device_outputs(q, H, out), stream);
  }

  /// Waits for `stream` and throws InvalidArgument naming the first bad belief the lift found
  /// (a covariance that is not positive definite or not finite, a non-finite mean or frame) in
  /// any run since the last check; the report is then cleared.
  void check_inputs(cudaStream_t stream = 0) { lift_.check_inputs(stream); }

 private:
  template <bool Covariance, bool Statistics, bool Energy>
  void launch(dim3 grid, const AttentionParams<Spec>& ap, cudaStream_t stream) {
    std::size_t smem = 0;
    Spec::for_each_irrep([&](auto irrep, int) {
      constexpr int K = 2 * decltype(irrep)::l + 1;
      using TS = TileShape<K>;
      smem = std::max(smem, 2 * sizeof(float) * TS::keys *  // two stages
                                (TS::smem_stride(TS::P) + TS::smem_stride(value_width<K>(Covariance))));
    });
    auto kernel = flash_kl_kernel<Spec, Covariance, Statistics, Energy>;
    if (smem > 48 * 1024)
      GAUGE_ATTN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    kernel<<<grid, 128, smem, stream>>>(ap);
    GAUGE_ATTN_CUDA_CHECK_LAUNCH(flash_kl_kernel);
  }

  LiftWorkspace<Spec> lift_;
};

}  // namespace gauge_attn::gpu
