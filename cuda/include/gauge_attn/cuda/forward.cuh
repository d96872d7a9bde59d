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
#include <type_traits>
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
    gauge_attn::detail::check_precision_options(opt);
    const bool covariance = out.sigma != nullptr, energy = out.energy != nullptr;
    const bool float64_scores = opt.scores == Scores::float64;
    // Every valid row is written, and of a full Σ^agg only the head blocks: rows of padded tokens
    // and the off-block entries are cleared here (the caller's memory holds whatever was there),
    // before the lift, so that the attention follows the lift directly (its programmatic launch).
    const std::size_t rows = std::size_t(q.batch) * q.tokens;
    const bool padded = std::any_of(lengths.begin(), lengths.end(), [&](int n) { return n < q.tokens; });
    if (covariance && (padded || q.covariance == Covariance::full))
      GAUGE_ATTN_CUDA_CHECK(cudaMemsetAsync(out.sigma, 0, detail::covariance_size(q) * sizeof(float), stream));
    if (padded) {
      GAUGE_ATTN_CUDA_CHECK(cudaMemsetAsync(out.mu, 0, rows * q.embed_dim * sizeof(float), stream));
      for (float* o : {out.lse, out.row_std, out.uniform_row_std, out.entropy, out.energy})
        if (o) GAUGE_ATTN_CUDA_CHECK(cudaMemsetAsync(o, 0, rows * H * sizeof(float), stream));
    }
    lift_.run(q, kappa, lengths, opt.identity_transport, covariance, stream, float64_scores);
    last_ = opt;
    kappa_ = kappa;
    const LiftParams<Spec>& lp = lift_.params();

    AttentionParams<Spec> ap;
    std::copy(lp.heads, lp.heads + H, ap.heads);
    ap.batch = q.batch;
    ap.tokens = q.tokens;
    ap.embed_dim = q.embed_dim;
    ap.mask = opt.mask;
    ap.diagonal_output = lp.diagonal;
    ap.lengths = lp.lengths;
    ap.queries = lp.queries;
    ap.keys = lp.keys;
    ap.queries64 = lp.queries64;
    ap.keys64 = lp.keys64;
    ap.values = lp.values;
    ap.frames = lp.frames;
    ap.means = lp.means;
    ap.half_logdets = lp.half_logdets;
    ap.norms = lp.norms;
    ap.mu = out.mu;
    ap.sigma = out.sigma;
    ap.lse = out.lse;
    ap.row_std = out.row_std;
    ap.uniform_row_std = out.uniform_row_std;
    ap.entropy = out.entropy;
    ap.energy = out.energy;
    visit_flags(
        [&](auto f64, auto cov, auto stats, auto en) {
          using Score = std::conditional_t<decltype(f64)::value, double, float>;
          launch<Score, decltype(cov)::value, decltype(stats)::value, decltype(en)::value>(ap, stream);
        },
        float64_scores, covariance, statistics, energy);
  }

  /// The same on Thrust device vectors (device_vectors.cuh), their sizes checked first.
  void run(const DeviceBeliefs& q, const AttentionOptions& opt, ForwardVectors& out, cudaStream_t stream = 0) {
    run(q, opt, device_outputs(q, H, out), stream);
  }

  /// Waits for `stream` and throws InvalidArgument naming the first bad belief the lift found
  /// (a covariance that is not positive definite or not finite, a non-finite mean or frame) in
  /// any run since the last check; the report is then cleared. Then, under PrecisionCheck::raise
  /// (the default), throws InvalidArgument ("sigma" or "mu") when the last run's bound (P1) on the
  /// score error exceeds options.score_error_tolerance (precision.hpp).
  void check_inputs(cudaStream_t stream = 0) {
    lift_.check_inputs(stream);
    if (last_.precision_check == PrecisionCheck::raise)
      gauge_attn::detail::check_precision<Spec>(precision(stream), last_, kappa_, last_.scores == Scores::float64);
  }

  /// The bounds (P1), (P2) of the last run per (sequence, head), (B, H); synchronises `stream`.
  std::vector<HeadPrecision> precision(cudaStream_t stream = 0) const {
    return lift_.precision(last_.mask.alibi_slope, stream);
  }

 private:
  template <class Score, bool Covariance, bool Statistics, bool Energy>
  void launch(AttentionParams<Spec> ap, cudaStream_t stream) {
    ap.groups = BlockGroups<Spec::num_irreps>::template of<Spec>(
        ap.batch, ap.tokens, [](auto irrep) { return attention_tile_rows<decltype(irrep)::dim, Score>(); });
    constexpr int smem = attention_spec_smem_bytes<Score, Covariance>(typename Spec::spins{});
    auto kernel = flash_kl_kernel<Spec, Score, Covariance, Statistics, Energy>;
    if (smem > 48 * 1024)
      GAUGE_ATTN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    // A programmatic dependent launch: the attention's launch overlaps the lift's last blocks, and
    // its blocks wait in the kernel for the lift's writes before they read them (flash_kl_kernel).
    cudaLaunchAttribute overlap{};
    overlap.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    overlap.val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t config{};
    config.gridDim = dim3(unsigned(ap.groups.blocks()));
    config.blockDim = dim3(128);
    config.dynamicSmemBytes = smem;
    config.stream = stream;
    config.attrs = &overlap;
    config.numAttrs = 1;
    GAUGE_ATTN_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, ap));
  }

  LiftWorkspace<Spec> lift_;
  AttentionOptions last_;      // the options of the last run, for check_inputs() and precision()
  std::vector<double> kappa_;  // its κ per head
};

}  // namespace gauge_attn::gpu
