// Scratch: the main workloads of bench/gpu_forward.cu, for quick builds.
#include <gauge_attn/cuda/forward.cuh>
#include <gauge_attn/specs.hpp>
#include <benchmark/benchmark.h>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>
#include "gpu_workloads.cuh"
namespace {
using namespace gauge_attn;
using bench::time_with_events;
using bench::Workload;
template <class Spec>
void fused_forward(benchmark::State& state) {
  Workload<Spec> w(int(state.range(0)), int(state.range(1)), state.range(2) != 0);
  time_with_events(state, [&] { w.forward.run(w.q, w.options, w.out); });
  w.forward.check_inputs();
  w.report(state);
  if (const char* dir = std::getenv("DUMP_DIR")) {  // the messages, for comparing two builds
    std::vector<float> mu(w.out.mu.size());
    thrust::copy(w.out.mu.begin(), w.out.mu.end(), mu.begin());
    std::FILE* f = std::fopen((std::string(dir) + "/E" + std::to_string(Spec::embed_dim) + "_N" + std::to_string(state.range(1)) + ".f32").c_str(), "wb");
    std::fwrite(mu.data(), 4, mu.size(), f);
    std::fclose(f);
  }
}
}
using UpstreamL0 = IrrepSpec<Irrep<0, 5, 1>>;
using UpstreamL1 = IrrepSpec<Irrep<1, 3, 3>>;
using UpstreamL2 = IrrepSpec<Irrep<2, 1, 5>>;
using WideHeads = IrrepSpec<Irrep<8, 1>, Irrep<4, 2>>;
BENCHMARK_TEMPLATE(fused_forward, specs::Upstream)->Name("W1_upstream")->Args({24, 64, 0})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(fused_forward, specs::Upstream)->Name("W2_upstream")->Args({8, 4096, 0})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(fused_forward, specs::HigherRank)->Name("W3_higher_rank")->Args({8, 4096, 0})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(fused_forward, specs::Scaled)->Name("W4_scaled")->Args({4, 8192, 0})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(fused_forward, specs::Upstream)->Name("W5_upstream")->Args({1, 65536, 0})->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);
BENCHMARK_TEMPLATE(fused_forward, specs::Upstream)->Name("W2_upstream_covariance")->Args({8, 4096, 1})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(fused_forward, WideHeads)->Name("W6_l8_2xl4")->Args({8, 4096, 0})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(fused_forward, UpstreamL0)->Name("W2_only_l0x5")->Args({8, 4096, 0})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(fused_forward, UpstreamL1)->Name("W2_only_l1x3")->Args({8, 4096, 0})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(fused_forward, UpstreamL2)->Name("W2_only_l2x1")->Args({8, 4096, 0})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_MAIN();
