// CPU forward throughput: pair-scores per second of the factorised attention (M8) for the
// upstream spec at B = 1, N = 2048, causal, against a plain direct evaluation of (M4) in the
// same binary; plus the GPU workloads W1 and W2 on the CPU. A pair-score is one (i, j, head)
// with j allowed for i. The factorised forward uses every OpenMP thread; the direct one, one.
//
//   build/bench/cpu_forward --benchmark_format=json --benchmark_repetitions=5
#include <gauge_attn/gauge_attn.hpp>

#include <benchmark/benchmark.h>

#include <random>
#include <vector>

namespace {

using namespace gauge_attn;
using Spec = specs::Upstream;
constexpr int kTokens = 2048;

template <class Scalar>
Beliefs<Scalar> random_beliefs(int B, int N, Covariance kind) {
  std::mt19937 rng(5);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::uniform_real_distribution<double> variance(0.3, 3.0);
  Beliefs<double> q(B, N, Spec::embed_dim, kind);
  for (auto& x : q.mu) x = normal(rng);
  for (auto& x : q.phi) x = 0.5 * normal(rng);
  if (kind == Covariance::diagonal) {
    for (auto& x : q.sigma) x = variance(rng);
  } else {  // per-head blocks A Aᵀ/K + 0.3 I
    const int E = Spec::embed_dim;
    for (int t = 0; t < B * N; ++t)
      for (int h = 0; h < Spec::num_heads; ++h) {
        const HeadInfo hd = Spec::head(h);
        Eigen::MatrixXd A(hd.dim, hd.dim);
        for (int k = 0; k < A.size(); ++k) A(k) = normal(rng);
        const Eigen::MatrixXd S = A * A.transpose() / hd.dim + 0.3 * Eigen::MatrixXd::Identity(hd.dim, hd.dim);
        for (int r = 0; r < hd.dim; ++r)
          for (int c = 0; c < hd.dim; ++c) q.sigma[(std::size_t(t) * E + hd.offset + r) * E + hd.offset + c] = S(r, c);
      }
  }
  return q.template cast<Scalar>();
}

double causal_pairs(int B, int N) { return double(B) * N * (N + 1) / 2 * Spec::num_heads; }

template <class Scalar>
void factorised_forward(benchmark::State& state) {
  const auto kind = state.range(0) ? Covariance::full : Covariance::diagonal;
  const int B = int(state.range(1)), N = int(state.range(2));
  const auto q = random_beliefs<Scalar>(B, N, kind);
  AttentionOptions o;
  o.mask.causal = true;
  o.kappa = {1.0};
  for (auto _ : state) benchmark::DoNotOptimize(attention_forward<Spec>(q.view(), o).mu.data());
  state.counters["pair_scores_per_s"] =
      benchmark::Counter(causal_pairs(B, N), benchmark::Counter::kIsIterationInvariantRate);
}

/// The plain way: for every allowed pair and head, transport q_j with Ω_ij = R_i R_jᵀ and
/// evaluate (M4) with Eigen (kl_direct), frames precomputed. Only the last `rows` query rows are
/// evaluated per iteration (the full N = 2048 would take minutes); the rate is per pair.
void direct_kl(benchmark::State& state) {
  const auto kind = state.range(0) ? Covariance::full : Covariance::diagonal;
  const int rows = 8;
  const auto q = random_beliefs<double>(1, kTokens, kind);
  const auto v = q.view();
  std::vector<std::vector<Eigen::MatrixXd>> R(Spec::num_heads), S(Spec::num_heads);
  std::vector<std::vector<Eigen::VectorXd>> M(Spec::num_heads);
  for (int h = 0; h < Spec::num_heads; ++h) {
    const HeadInfo hd = Spec::head(h);
    for (int i = 0; i < kTokens; ++i) {
      R[h].push_back(wigner_d(hd.l, v.frame(0, i)));
      S[h].push_back(v.covariance_block(0, i, hd.offset, hd.dim));
      M[h].push_back(v.mean(0, i, hd.offset, hd.dim));
    }
  }
  double pairs = 0;
  for (int i = kTokens - rows; i < kTokens; ++i) pairs += (i + 1.0) * Spec::num_heads;
  for (auto _ : state) {
    double sum = 0;
    for (int h = 0; h < Spec::num_heads; ++h)
      for (int i = kTokens - rows; i < kTokens; ++i)
        for (int j = 0; j <= i; ++j)
          sum += kl_direct(M[h][i], S[h][i], M[h][j], S[h][j], R[h][i] * R[h][j].transpose());
    benchmark::DoNotOptimize(sum);
  }
  state.counters["pair_scores_per_s"] = benchmark::Counter(pairs, benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

// Args: full covariance (0/1), B, N. The CPU case (B = 1, N = 2048) and the GPU
// workloads W1 (B = 24, N = 64) and W2 (B = 8, N = 4096) of the upstream spec, all causal.
BENCHMARK_TEMPLATE(factorised_forward, float)
    ->ArgNames({"full", "B", "N"})
    ->Args({0, 1, kTokens})
    ->Args({1, 1, kTokens})
    ->Args({0, 24, 64})
    ->Args({0, 8, 4096})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_TEMPLATE(factorised_forward, double)
    ->ArgNames({"full", "B", "N"})
    ->Args({0, 1, kTokens})
    ->Args({1, 1, kTokens})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(direct_kl)->ArgName("full")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
