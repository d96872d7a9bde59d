// bench/float_error.cpp: the float error table of docs/conventions.md (Precision). The mean
// messages of each path against the accurate reference (tests/accurate_reference.hpp: pair by pair
// in long double, the KL as a sum of positive terms) on the same float-rounded inputs, as a function
// of the variances' range, the means' scale and κ; beside them the bound δ of (P1) and (P2)
// (precision.hpp). Upstream spec, B = 1, N = 256, causal, diagonal Σ log-uniform in [lo, hi],
// μ ~ N(0, scale²), φ ~ N(0, 0.5²), fixed seed; PrecisionCheck::report, so nothing throws.
// Columns: the CPU float path and the CPU float64 (lifted) path; with GAUGE_ATTN_FLOAT_ERROR_GPU
// (linked to the forward runner of tests/cuda, as scripts/gpu_check.sh builds it) also the GPU
// forward with float32 and with float64 scores, and the GPU pair-by-pair path (gpu::Pairwise).
// Prints a markdown table, then the same as JSON (one object per row).
#include <gauge_attn/attention.hpp>
#include <gauge_attn/specs.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "../tests/accurate_reference.hpp"
#include "../tests/test_support.hpp"

#ifdef GAUGE_ATTN_FLOAT_ERROR_GPU
#include "../tests/cuda/gpu_runner.hpp"
#endif

using namespace gauge_attn;
using Spec = specs::Upstream;

namespace {

struct Case {
  double lo, hi, mu_scale, kappa;
};

double largest_bound(const std::vector<HeadPrecision>& p) {
  double d = 0;
  for (const HeadPrecision& h : p) d = std::max(d, h.score_bound);
  return d;
}

}  // namespace

int main() {
  const int B = 1, N = 256, E = Spec::embed_dim;
  std::vector<Case> cases;
  for (auto [lo, hi] : std::vector<std::pair<double, double>>{
           {0.5, 2}, {0.0026, 6.71}, {1e-3, 1e3}, {1e-4, 1e4}, {1e-5, 1e5}, {1e-6, 1e6}})
    cases.push_back({lo, hi, 1, 1});
  for (double s : {0.08, 10.0, 100.0}) cases.push_back({0.0026, 6.71, s, 1});  // 0.08: the note's μ_dist
  for (double k : {0.00043, 0.0086, 0.1, 10.0}) cases.push_back({0.0026, 6.71, 1, k});
  cases.push_back({0.0026, 6.71, 0.08, 0.0086});  // the upstream note's run
  std::printf("| variances | μ scale | κ | δ float32 (P1) | CPU float | GPU float32 | GPU float64 | GPU pair-by-pair "
              "| CPU float64 | δ float64 |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
  std::string json = "[";
  for (const Case& c : cases) {
    std::mt19937 rng(11);
    std::normal_distribution<double> normal(0, 1);
    std::uniform_real_distribution<double> log_variance(std::log(c.lo), std::log(c.hi));
    Beliefs<float> qf(B, N, E, Covariance::diagonal);
    for (auto& x : qf.mu) x = float(c.mu_scale * normal(rng));
    for (auto& x : qf.sigma) x = float(std::exp(log_variance(rng)));
    for (auto& x : qf.phi) x = float(0.5 * normal(rng));
    const Beliefs<double> qd = qf.cast<double>();
    AttentionOptions o;
    o.mask.causal = true;
    o.kappa = {c.kappa};
    o.precision_check = PrecisionCheck::report;
    const auto ref = testing::accurate_mean_messages<Spec>(B, N, qd.mu, qd.sigma, qd.phi, o);
    const auto cpu64 = attention_forward<Spec>(qd.view(), o);
    const auto cpu = attention_forward<Spec>(qf.view(), o);
    const double cpu_error = testing::norm_relative_error(cpu.mu, ref), delta = largest_bound(cpu.precision);
    const double cpu64_error = testing::norm_relative_error(cpu64.mu, ref);
    double gpu32 = NAN, gpu64 = NAN, pairwise = NAN, delta64 = NAN;
#ifdef GAUGE_ATTN_FLOAT_ERROR_GPU
    const auto g32 = testing::run_gpu_forward("upstream", B, N, Covariance::diagonal, qf.mu, qf.sigma, qf.phi, o,
                                              false, false);
    const auto pw = testing::run_gpu_pairwise("upstream", B, N, Covariance::diagonal, qd.mu, qd.sigma, qd.phi, o,
                                              false, false);
    o.scores = Scores::float64;
    const auto g64 = testing::run_gpu_forward("upstream", B, N, Covariance::diagonal, qf.mu, qf.sigma, qf.phi, o,
                                              false, false);
    gpu32 = testing::norm_relative_error(g32.mu, ref);
    gpu64 = testing::norm_relative_error(g64.mu, ref);
    pairwise = testing::norm_relative_error(pw.mu, ref);
    delta64 = largest_bound(g64.precision);
#endif
    char range[64];
    std::snprintf(range, sizeof range, "[%g, %g]", c.lo, c.hi);
    std::printf("| %s | %g | %g | %.2g | %.1e | %.1e | %.1e | %.1e | %.1e | %.2g |\n", range, c.mu_scale, c.kappa, delta,
                cpu_error, gpu32, gpu64, pairwise, cpu64_error, delta64);
    char row[640];
    std::snprintf(row, sizeof row,
                  "%s{\"variances\": [%g, %g], \"mu_scale\": %g, \"kappa\": %g, \"delta_float32\": %.3e, "
                  "\"cpu_float\": %.3e, \"gpu_float32\": %.3e, \"gpu_float64\": %.3e, \"gpu_pairwise\": %.3e, "
                  "\"cpu_float64\": %.3e, \"delta_float64\": %.3e}",
                  json.size() > 1 ? ",\n " : "", c.lo, c.hi, c.mu_scale, c.kappa, delta, cpu_error, gpu32, gpu64,
                  pairwise, cpu64_error, delta64);
    json += row;
  }
  std::printf("\n%s]\n", json.c_str());
  return 0;
}
