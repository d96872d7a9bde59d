// GPU backward (cuda/backward.cuh) on the workloads of bench/README.md (W1–W5, and W2 with the
// covariance message), each beside the forward of the same workload in the same binary, timed
// with CUDA events: the forward that a training step runs (it keeps the log-sum-exp; Σ^agg too for
// the covariance variant), the backward alone (incoming gradients of the mean message, and of Σ^agg
// for the covariance variant), and both in a row. The target: backward ≤ 2.5× forward on W2, W3.
//
//   build/bench/gpu_backward --benchmark_format=json --benchmark_repetitions=3
#include <gauge_attn/cuda/backward.cuh>
#include <gauge_attn/cuda/forward.cuh>
#include <gauge_attn/specs.hpp>

#include <benchmark/benchmark.h>
#include <thrust/device_vector.h>

#include <random>
#include <string>
#include <vector>

#include "gpu_workloads.cuh"

namespace {

using namespace gauge_attn;

/// A forward workload with its saved state, random incoming gradients and a warmed-up backward.
template <class Spec>
struct BackwardWorkload : bench::Workload<Spec> {
  gpu::OutputGradientVectors incoming;
  gpu::BackwardVectors grads;
  gpu::Backward<Spec> backward;

  BackwardWorkload(int batch, int tokens, bool covariance) : bench::Workload<Spec>(batch, tokens, covariance, true) {
    const std::size_t values = this->rows * Spec::embed_dim;
    std::mt19937 rng(10);
    std::normal_distribution<float> normal(0.f, 1.f);
    std::vector<float> g(values);
    for (auto& x : g) x = normal(rng);
    incoming.mu = g;
    if (covariance) {
      for (auto& x : g) x = normal(rng);
      incoming.sigma = g;
    }
    grads.mu.resize(values);
    grads.sigma.resize(values);
    grads.phi.resize(this->rows * 3);
    grads.kappa.resize(Spec::num_heads);
    run_backward();  // warm-up
    backward.check_inputs();
  }

  void run_forward() { this->forward.run(this->q, this->options, this->out); }
  void run_backward() { backward.run(this->q, this->options, this->out, incoming, grads); }

  /// Allowed pairs per second over all heads (the forward's roofline does not apply).
  void report_pairs(benchmark::State& state) const {
    state.counters["pairs_per_s"] =
        benchmark::Counter(this->pairs() * Spec::num_heads, benchmark::Counter::kIsIterationInvariantRate);
  }
};

/// Args: B, N, covariance message (0/1).
template <class Spec>
void forward(benchmark::State& state) {
  BackwardWorkload<Spec> w(int(state.range(0)), int(state.range(1)), state.range(2) != 0);
  bench::time_with_events(state, [&] { w.run_forward(); });
  w.forward.check_inputs();
  w.report(state);
}

template <class Spec>
void backward(benchmark::State& state) {
  BackwardWorkload<Spec> w(int(state.range(0)), int(state.range(1)), state.range(2) != 0);
  bench::time_with_events(state, [&] { w.run_backward(); });
  w.backward.check_inputs();
  w.report_pairs(state);
}

template <class Spec>
void forward_backward(benchmark::State& state) {
  BackwardWorkload<Spec> w(int(state.range(0)), int(state.range(1)), state.range(2) != 0);
  bench::time_with_events(state, [&] {
    w.run_forward();
    w.run_backward();
  });
  w.backward.check_inputs();
  w.report_pairs(state);
}

/// The three benchmarks of one workload: NAME_forward, NAME_backward, NAME_forward_backward.
template <class Spec>
void register_workload(const std::string& name, int B, int N, bool covariance, benchmark::TimeUnit unit,
                       int iterations = 0) {
  const std::pair<const char*, void (*)(benchmark::State&)> parts[] = {
      {"_forward", forward<Spec>}, {"_backward", backward<Spec>}, {"_forward_backward", forward_backward<Spec>}};
  for (const auto& [suffix, function] : parts) {
    auto* b = benchmark::RegisterBenchmark((name + suffix).c_str(), function);
    b->Args({B, N, covariance ? 1 : 0})->UseManualTime()->Unit(unit);
    if (iterations > 0) b->Iterations(iterations);
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_workload<specs::Upstream>("W1_upstream", 24, 64, false, benchmark::kMicrosecond);
  register_workload<specs::Upstream>("W2_upstream", 8, 4096, false, benchmark::kMicrosecond);
  register_workload<specs::HigherRank>("W3_higher_rank", 8, 4096, false, benchmark::kMicrosecond);
  register_workload<specs::Scaled>("W4_scaled", 4, 8192, false, benchmark::kMillisecond);
  register_workload<specs::Upstream>("W5_upstream", 1, 65536, false, benchmark::kMillisecond, 5);
  register_workload<specs::Upstream>("W2_upstream_covariance", 8, 4096, true, benchmark::kMicrosecond);
  // U1: one sequence of 4096, the size at which bench/torch_baselines.py times the upstream way's autograd.
  register_workload<specs::Upstream>("U1_upstream", 1, 4096, false, benchmark::kMicrosecond);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
