// GPU forward (cuda/forward.cuh) on the workloads of the CUDA issue, timed with CUDA events:
// median time per call, pair-scores per second, and the share of the roofline
//   T_roof = Σ_heads max(pairs·(K(K+1)/2 + 2K + 1) / 33.4e12 FMA/s, pairs / 3.9e12 exp/s)
// (H100 fp32 FMA and MUFU rates; pairs = allowed (i, j) per head).
//
//   build/bench/gpu_forward --benchmark_format=json --benchmark_repetitions=5
#include <gauge_attn/cuda/forward.cuh>
#include <gauge_attn/specs.hpp>

#include <benchmark/benchmark.h>
#include <thrust/device_vector.h>

#include <random>
#include <vector>

namespace {

using namespace gauge_attn;

template <class Spec>
double roofline_seconds(double pairs_per_head) {
  double t = 0;
  Spec::for_each_irrep([&](auto irrep, int) {
    using I = decltype(irrep);
    const double K = I::dim;
    const double fma = pairs_per_head * (K * (K + 1) / 2 + 2 * K + 1) / 33.4e12, exp = pairs_per_head / 3.9e12;
    t += I::heads * std::max(fma, exp);
  });
  return t;
}

template <class Spec>
void fused_forward(benchmark::State& state) {
  const int B = int(state.range(0)), N = int(state.range(1));
  const bool covariance = state.range(2) != 0;
  const std::size_t rows = std::size_t(B) * N, E = Spec::embed_dim;
  std::mt19937 rng(9);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_real_distribution<float> variance(0.5f, 2.f);
  std::vector<float> mu(rows * E), sigma(rows * E), phi(rows * 3);
  for (auto& x : mu) x = normal(rng);
  for (auto& x : sigma) x = variance(rng);
  for (auto& x : phi) x = 0.5f * normal(rng);
  thrust::device_vector<float> d_mu(mu), d_sigma(sigma), d_phi(phi), out(rows * E), out_sigma(covariance ? rows * E : 0);
  gauge_attn::gpu::DeviceBeliefs q{B, N, int(E), Covariance::diagonal, thrust::raw_pointer_cast(d_mu.data()),
                        thrust::raw_pointer_cast(d_sigma.data()), thrust::raw_pointer_cast(d_phi.data())};
  gauge_attn::gpu::DeviceOutputs o;
  o.mu = thrust::raw_pointer_cast(out.data());
  if (covariance) o.sigma = thrust::raw_pointer_cast(out_sigma.data());
  AttentionOptions options;
  options.mask.causal = true;
  gauge_attn::gpu::Forward<Spec> forward;
  forward.run(q, options, o);  // warm-up: workspace, tables, module load
  forward.check_inputs();
  cudaEvent_t start, stop;
  GAUGE_ATTN_CUDA_CHECK(cudaEventCreate(&start));
  GAUGE_ATTN_CUDA_CHECK(cudaEventCreate(&stop));
  for (auto _ : state) {
    GAUGE_ATTN_CUDA_CHECK(cudaEventRecord(start));
    forward.run(q, options, o);
    GAUGE_ATTN_CUDA_CHECK(cudaEventRecord(stop));
    GAUGE_ATTN_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    GAUGE_ATTN_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    state.SetIterationTime(ms / 1e3);
  }
  forward.check_inputs();
  GAUGE_ATTN_CUDA_CHECK(cudaEventDestroy(start));
  GAUGE_ATTN_CUDA_CHECK(cudaEventDestroy(stop));
  const double pairs = double(B) * N * (N + 1) / 2;  // causal, per head
  const double roof = roofline_seconds<Spec>(pairs);
  state.counters["pair_scores_per_s"] =
      benchmark::Counter(pairs * Spec::num_heads, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["roofline_us"] = roof * 1e6;
  state.counters["roofline_fraction"] =
      benchmark::Counter(roof, benchmark::Counter::kIsIterationInvariantRate);  // roof / time per call
}

}  // namespace

// Args: B, N, covariance message (0/1). W1–W5 of the CUDA issue, all causal.
BENCHMARK_TEMPLATE(fused_forward, specs::Upstream)->Name("W1_upstream")->Args({24, 64, 0})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(fused_forward, specs::Upstream)->Name("W2_upstream")->Args({8, 4096, 0})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(fused_forward, specs::HigherRank)->Name("W3_higher_rank")->Args({8, 4096, 0})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(fused_forward, specs::Scaled)->Name("W4_scaled")->Args({4, 8192, 0})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(fused_forward, specs::Upstream)->Name("W5_upstream")->Args({1, 65536, 0})->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);
BENCHMARK_TEMPLATE(fused_forward, specs::Upstream)->Name("W2_upstream_covariance")->Args({8, 4096, 1})->UseManualTime()->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
