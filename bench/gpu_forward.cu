// GPU forward (cuda/forward.cuh) on the workloads of the CUDA issue, timed with CUDA events:
// median time per call, pair-scores per second, and the share of the roofline
//   T_roof = Σ_heads max(pairs·(K(K+1)/2 + 2K + 1) / 33.4e12 FMA/s, pairs / 3.9e12 exp/s)
// (H100 fp32 FMA and MUFU rates; pairs = allowed (i, j) per head).
//
//   build/bench/gpu_forward --benchmark_format=json --benchmark_repetitions=5
#include <gauge_attn/cuda/forward.cuh>
#include <gauge_attn/irreps.hpp>
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

/// Random diagonal beliefs (B, N, E) on the device, the causal options and a warmed-up forward.
template <class Spec>
struct Workload {
  int B, N;
  std::size_t rows = std::size_t(B) * N;
  thrust::device_vector<float> mu, sigma, phi;
  gpu::ForwardVectors out;
  gpu::DeviceBeliefs q;
  AttentionOptions options;
  gpu::Forward<Spec> forward;

  Workload(int batch, int tokens, bool covariance) : B(batch), N(tokens) {
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
    q = gpu::device_beliefs(B, N, int(E), Covariance::diagonal, mu, sigma, phi);
    options.mask.causal = true;
    forward.run(q, options, out);  // warm-up: workspace, tables, module load
    forward.check_inputs();
  }

  /// The counters of the CUDA issue: pair-scores per second and the share of the roofline.
  void report(benchmark::State& state) const {
    const double pairs = double(B) * N * (N + 1) / 2;  // causal, per head
    const double roof = roofline_seconds<Spec>(pairs);
    state.counters["pair_scores_per_s"] =
        benchmark::Counter(pairs * Spec::num_heads, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["roofline_us"] = roof * 1e6;
    state.counters["roofline_fraction"] =
        benchmark::Counter(roof, benchmark::Counter::kIsIterationInvariantRate);  // roof / time per call
  }
};

/// Times `enqueue(stream 0)` per iteration with CUDA events.
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

/// Args: B, N, covariance message (0/1). One forward.run per call.
template <class Spec>
void fused_forward(benchmark::State& state) {
  Workload<Spec> w(int(state.range(0)), int(state.range(1)), state.range(2) != 0);
  time_with_events(state, [&] { w.forward.run(w.q, w.options, w.out); });
  w.forward.check_inputs();
  w.report(state);
}

/// The same forward captured once into a CUDA graph and replayed: what a training loop at a fixed
/// shape can do to pay the launch latencies once (the small-shape case, W1).
template <class Spec>
void graph_forward(benchmark::State& state) {
  Workload<Spec> w(int(state.range(0)), int(state.range(1)), state.range(2) != 0);
  cudaStream_t stream;
  GAUGE_ATTN_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  GAUGE_ATTN_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  w.forward.run(w.q, w.options, w.out, stream);
  GAUGE_ATTN_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
  GAUGE_ATTN_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  time_with_events(state, [&] { GAUGE_ATTN_CUDA_CHECK(cudaGraphLaunch(exec, 0)); });
  w.forward.check_inputs();
  GAUGE_ATTN_CUDA_CHECK(cudaGraphExecDestroy(exec));
  GAUGE_ATTN_CUDA_CHECK(cudaGraphDestroy(graph));
  GAUGE_ATTN_CUDA_CHECK(cudaStreamDestroy(stream));
  w.report(state);
}

// The upstream spec's irreps alone, at the W2 shape: which ℓ is how far from its roofline.
using UpstreamL0 = IrrepSpec<Irrep<0, 5, 1>>;
using UpstreamL1 = IrrepSpec<Irrep<1, 3, 3>>;
using UpstreamL2 = IrrepSpec<Irrep<2, 1, 5>>;

}  // namespace

// W1–W5 of the CUDA issue, all causal; then W1 from a graph and W2 split by irrep.
BENCHMARK_TEMPLATE(fused_forward, specs::Upstream)->Name("W1_upstream")->Args({24, 64, 0})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(fused_forward, specs::Upstream)->Name("W2_upstream")->Args({8, 4096, 0})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(fused_forward, specs::HigherRank)->Name("W3_higher_rank")->Args({8, 4096, 0})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(fused_forward, specs::Scaled)->Name("W4_scaled")->Args({4, 8192, 0})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(fused_forward, specs::Upstream)->Name("W5_upstream")->Args({1, 65536, 0})->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);
BENCHMARK_TEMPLATE(fused_forward, specs::Upstream)->Name("W2_upstream_covariance")->Args({8, 4096, 1})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(graph_forward, specs::Upstream)->Name("W1_upstream_graph")->Args({24, 64, 0})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(fused_forward, UpstreamL0)->Name("W2_only_l0x5")->Args({8, 4096, 0})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(fused_forward, UpstreamL1)->Name("W2_only_l1x3")->Args({8, 4096, 0})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(fused_forward, UpstreamL2)->Name("W2_only_l2x1")->Args({8, 4096, 0})->UseManualTime()->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
