// bench/gpu_workloads.cuh: the workloads of the CUDA benchmarks (bench/README.md: W1–W5, causal,
// diagonal beliefs, κ = 1, fixed seed) on the device, their roofline, and CUDA-event timing; shared
// by gpu_forward.cu and gpu_backward.cu.
#pragma once

#include <gauge_attn/cuda/forward.cuh>
#include <gauge_attn/irreps.hpp>

#include <benchmark/benchmark.h>
#include <thrust/device_vector.h>

#include <algorithm>
#include <random>
#include <vector>

namespace gauge_attn::bench {

/// Σ_heads max(products·pairs·(P + K) / fma_rate, pairs / 3.9e12 exp/s): the forward's FMAs (the
/// score's P and the mean message's K per pair), each `products` multiplications at `fma_rate`,
/// against one MUFU exp per pair (the H100 SXM's rate at its boost clock; docs/performance.md).
template <class Spec>
double limit_seconds(double pairs_per_head, double fma_rate, double products) {
  double t = 0;
  Spec::for_each_irrep([&](auto irrep, int) {
    using I = decltype(irrep);
    const double K = I::dim;
    const double fma = products * pairs_per_head * (K * (K + 1) / 2 + 2 * K + 1) / fma_rate, exp = pairs_per_head / 3.9e12;
    t += I::heads * std::max(fma, exp);
  });
  return t;
}

/// The forward's FP32 roofline: 33.4e12 FMA/s.
template <class Spec>
double roofline_seconds(double pairs_per_head) {
  return limit_seconds<Spec>(pairs_per_head, 33.4e12, 1);
}

/// The limit with the scores and messages on the tensor cores in 3×TF32: three products each at the
/// dense TF32 tensor-core rate, 247.35e12 FMA/s (494.7 TFLOP/s).
template <class Spec>
double tensor_core_limit_seconds(double pairs_per_head) {
  return limit_seconds<Spec>(pairs_per_head, 247.35e12, 3);
}

/// Random diagonal beliefs (B, N, E) on the device, the causal options and a warmed-up forward;
/// `saved`: the forward also keeps the log-sum-exp, what a training step's backward reads.
template <class Spec>
struct Workload {
  int B, N;
  std::size_t rows = std::size_t(B) * N;
  thrust::device_vector<float> mu, sigma, phi;
  gpu::ForwardVectors out;
  gpu::DeviceBeliefs q;
  AttentionOptions options;
  gpu::Forward<Spec> forward;

  Workload(int batch, int tokens, bool covariance, bool saved = false, Scores scores = Scores::float32)
      : B(batch), N(tokens) {
    const std::size_t E = Spec::embed_dim;
    std::mt19937 rng(9);
    std::normal_distribution<float> normal(0.f, 1.f);
    std::uniform_real_distribution<float> variance(0.5f, 2.f);
    std::vector<float> m(rows * E), s(rows * E), p(rows * 3);
    for (auto& x : m) x = normal(rng);
    for (auto& x : s) x = variance(rng);
    for (auto& x : p) x = 0.5f * normal(rng);
    mu = m, sigma = s, phi = p;
    out.mu.resize(rows * E);
    if (covariance) out.sigma.resize(rows * E);
    if (saved) out.lse.resize(rows * Spec::num_heads);
    q = gpu::device_beliefs(B, N, int(E), Covariance::diagonal, mu, sigma, phi);
    options.mask.causal = true;
    options.covariance_message = covariance;
    options.scores = scores;
    forward.run(q, options, out);  // warm-up: workspace, tables, module load
    forward.check_inputs();
  }

  /// Allowed (i, j) per head under the causal mask.
  double pairs() const { return double(B) * N * (N + 1) / 2; }

  /// The counters of the CUDA issue: pair-scores per second and the share of the forward's roofline.
  void report(benchmark::State& state) const {
    const double roof = roofline_seconds<Spec>(pairs());
    state.counters["pair_scores_per_s"] =
        benchmark::Counter(pairs() * Spec::num_heads, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["roofline_us"] = roof * 1e6;
    state.counters["roofline_fraction"] =
        benchmark::Counter(roof, benchmark::Counter::kIsIterationInvariantRate);  // roof / time per call
    const double limit = tensor_core_limit_seconds<Spec>(pairs());
    state.counters["tensor_core_limit_us"] = limit * 1e6;
    state.counters["tensor_core_limit_fraction"] = benchmark::Counter(limit, benchmark::Counter::kIsIterationInvariantRate);
  }
};

/// Times `enqueue()` (work on stream 0) per iteration with CUDA events.
template <class Enqueue>
void time_with_events(benchmark::State& state, Enqueue&& enqueue) {
  cudaEvent_t start, stop;
  GAUGE_ATTN_CUDA_CHECK(cudaEventCreate(&start));
  GAUGE_ATTN_CUDA_CHECK(cudaEventCreate(&stop));
  for (auto _ : state) {
    GAUGE_ATTN_CUDA_CHECK(cudaEventRecord(start));
    enqueue();
    GAUGE_ATTN_CUDA_CHECK(cudaEventRecord(stop));
    GAUGE_ATTN_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    GAUGE_ATTN_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    state.SetIterationTime(ms / 1e3);
  }
  GAUGE_ATTN_CUDA_CHECK(cudaEventDestroy(start));
  GAUGE_ATTN_CUDA_CHECK(cudaEventDestroy(stop));
}

}  // namespace gauge_attn::bench
