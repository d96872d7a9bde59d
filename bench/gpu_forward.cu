// GPU forward (cuda/forward.cuh) on the workloads of the CUDA issue, timed with CUDA events:
// median time per call, pair-scores per second, and the share of the roofline
//   T_roof = Σ_heads max(pairs·(K(K+1)/2 + 2K + 1) / 33.4e12 FMA/s, pairs / 3.9e12 exp/s)
// (H100 fp32 FMA and MUFU rates; pairs = allowed (i, j) per head) and of the tensor-core limit
// (gpu_workloads.cuh).
//
//   build/bench/gpu_forward --benchmark_format=json --benchmark_repetitions=5
#include <gauge_attn/cuda/forward.cuh>
#include <gauge_attn/cuda/pairwise.cuh>
#include <gauge_attn/irreps.hpp>
#include <gauge_attn/specs.hpp>

#include <benchmark/benchmark.h>

#include "gpu_workloads.cuh"

namespace {

using namespace gauge_attn;
using bench::time_with_events;
using bench::Workload;

/// Args: B, N, covariance message (0/1). One forward.run per call.
template <class Spec>
void fused_forward(benchmark::State& state) {
  Workload<Spec> w(int(state.range(0)), int(state.range(1)), state.range(2) != 0);
  time_with_events(state, [&] { w.forward.run(w.q, w.options, w.out); });
  w.forward.check_inputs();
  w.report(state);
}

/// Args: B, N. The forward with Scores::float64: queries, keys and scores in double (the accurate
/// path for every valid input, docs/conventions.md, Precision).
template <class Spec>
void float64_scores_forward(benchmark::State& state) {
  Workload<Spec> w(int(state.range(0)), int(state.range(1)), false, false, Scores::float64);
  time_with_events(state, [&] { w.forward.run(w.q, w.options, w.out); });
  w.forward.check_inputs();
  w.report(state);
}

/// Args: B, N. The pair-by-pair path (cuda/pairwise.cuh) on the same beliefs, mean messages only,
/// the keys streamed: the path accurate for every diagonal input (docs/conventions.md, Precision),
/// O(N² K³) float64 work one thread per query row.
template <class Spec>
void pairwise_forward(benchmark::State& state) {
  Workload<Spec> w(int(state.range(0)), int(state.range(1)), false);
  gpu::Pairwise<Spec, float> pairwise;
  gpu::PairwiseOutputsOf<float> out;
  out.mu = thrust::raw_pointer_cast(w.out.mu.data());
  pairwise.run(w.q, w.options, out);  // warm-up
  time_with_events(state, [&] { pairwise.run(w.q, w.options, out); });
  pairwise.check_inputs();
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
// Wide heads (issue 9): one ℓ = 8 head (P = 171) and two ℓ = 4 heads (P = 55).
using WideHeads = IrrepSpec<Irrep<8, 1>, Irrep<4, 2>>;

}  // namespace

// W1–W5 of the CUDA issue, all causal; then W1 from a graph and W2 split by irrep.
BENCHMARK_TEMPLATE(fused_forward, specs::Upstream)->Name("W1_upstream")->Args({24, 64, 0})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(fused_forward, specs::Upstream)->Name("W2_upstream")->Args({8, 4096, 0})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(fused_forward, specs::HigherRank)->Name("W3_higher_rank")->Args({8, 4096, 0})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(fused_forward, specs::Scaled)->Name("W4_scaled")->Args({4, 8192, 0})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(fused_forward, specs::Upstream)->Name("W5_upstream")->Args({1, 65536, 0})->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);
BENCHMARK_TEMPLATE(fused_forward, specs::Upstream)->Name("W2_upstream_covariance")->Args({8, 4096, 1})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(float64_scores_forward, specs::Upstream)->Name("W2_upstream_float64_scores")->Args({8, 4096})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(pairwise_forward, specs::Upstream)->Name("W1_upstream_pairwise")->Args({24, 64})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(pairwise_forward, specs::Upstream)->Name("W2_upstream_pairwise")->Args({8, 4096})->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(2);
BENCHMARK_TEMPLATE(graph_forward, specs::Upstream)->Name("W1_upstream_graph")->Args({24, 64, 0})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(fused_forward, WideHeads)->Name("W6_l8_2xl4")->Args({8, 4096, 0})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(fused_forward, UpstreamL0)->Name("W2_only_l0x5")->Args({8, 4096, 0})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(fused_forward, UpstreamL1)->Name("W2_only_l1x3")->Args({8, 4096, 0})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(fused_forward, UpstreamL2)->Name("W2_only_l2x1")->Args({8, 4096, 0})->UseManualTime()->Unit(benchmark::kMicrosecond);
// The same irreps at the W1 shape, from a graph: which chain sets W1's latency.
BENCHMARK_TEMPLATE(graph_forward, UpstreamL0)->Name("W1_graph_only_l0x5")->Args({24, 64, 0})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(graph_forward, UpstreamL1)->Name("W1_graph_only_l1x3")->Args({24, 64, 0})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(graph_forward, UpstreamL2)->Name("W1_graph_only_l2x1")->Args({24, 64, 0})->UseManualTime()->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
