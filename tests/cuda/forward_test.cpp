// GPU forward (cuda/forward.cuh) against the float64 CPU reference (attention.hpp) on random
// inputs: every named spec, diagonal and full covariances, every mask, awkward sizes, batches
// and valid lengths; the row statistics, the attention energy and the log-sum-exp; bad input.
// Without a GPU the program prints a skip and exits 77, which CTest reports as skipped.
#define CATCH_CONFIG_RUNNER
#include <gauge_attn/attention.hpp>
#include <gauge_attn/cuda/layout.cuh>  // uses_tensor_cores: plain C++
#include <gauge_attn/specs.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <tuple>

#include <gauge_attn/npy.hpp>

#include "../accurate_reference.hpp"
#include "../test_support.hpp"
#include "forward_runner_spec.hpp"
#include "gpu_runner.hpp"

using namespace gauge_attn;

namespace {

/// ‖got − ref‖ / max(‖ref‖, floor·√n): the floor is the scale below which a reference counts as zero
/// (the energy of a row whose only key is itself is KL_ii = 0, which fp32 returns as rounding).
double relative_error(const std::vector<float>& got, const std::vector<double>& ref, double floor = 0) {
  REQUIRE(got.size() == ref.size());
  double num = 0, den = 0;
  for (std::size_t k = 0; k < ref.size(); ++k) {
    num += (got[k] - ref[k]) * (got[k] - ref[k]);
    den += ref[k] * ref[k];
  }
  return std::sqrt(num) / std::max(std::sqrt(den), floor * std::sqrt(double(ref.size())));
}

std::vector<float> to_float(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

/// Runs the GPU and the CPU (float64, on the float inputs) and compares every output.
template <class Spec>
void compare(const std::string& name, int B, int N, Covariance kind, AttentionOptions o, std::mt19937& rng,
             bool covariance_message = true, bool energy = true) {
  INFO(name << " B=" << B << " N=" << N << " full=" << (kind == Covariance::full) << " causal=" << o.mask.causal
            << " self=" << o.mask.mask_self << " window=" << o.mask.window << " alibi=" << o.mask.alibi_slope
            << " identity=" << o.identity_transport << " lengths=" << o.valid_lengths.size() << " energy=" << energy);
  const Beliefs<double> q = testing::random_beliefs<Spec>(rng, B, N, kind).template cast<float>().template cast<double>();
  o.covariance_message = covariance_message;
  o.attention_energy = energy;
  const auto ref = attention_forward<Spec>(q.view(), o);
  const auto gpu = testing::run_gpu_forward(name, B, N, kind, to_float(q.mu), to_float(q.sigma), to_float(q.phi), o,
                                            covariance_message, true);
  // fp32 scores of magnitude ~10–100 and fp32 sums over ≤ 4097 keys: the bound is 1e-5.
  CHECK(relative_error(gpu.mu, ref.mu) < 1e-5);
  // Σ^agg = M − w wᵀ cancels part of M: allow 1e-4 relative.
  if (covariance_message) CHECK(relative_error(gpu.sigma, ref.sigma) < 1e-4);
  // The energy e_i = −κ ln 2 (Σ_j β_ij a_i·k_j) − ½ ln det Σ_i (G1) cancels terms of size κ·|score|
  // (up to ~10²) down to a KL of size ~1–10: fp32 scores leave ~1e-5 of it; allow 1e-4, relative to at
  // least 1 nat a row (N = 1: every energy is KL_ii = 0).
  if (energy) {
    const double e = relative_error(gpu.energy, ref.energy, 1.0);
    std::printf("energy %-11s B=%d N=%-4d %s: relative error %.1e\n", name.c_str(), B, N,
                kind == Covariance::full ? "full" : "diag", e);
    CHECK(e < 1e-4);
  }
  // Row statistics: the GPU writes them per row and reduces them per (sequence, head) on the
  // device (statistics.cuh); fp32 weights bound the agreement to ~1e-6.
  REQUIRE(gpu.statistics.size() == ref.row_statistics.size());
  for (std::size_t k = 0; k < ref.row_statistics.size(); ++k) {
    const RowStatistics &g = gpu.statistics[k], &c = ref.row_statistics[k];
    CHECK(g.rows == c.rows);
    CHECK(g.entropy_rows == c.entropy_rows);
    CHECK(g.row_std == Approx(c.row_std).margin(2e-6));
    CHECK(g.uniform_row_std == Approx(c.uniform_row_std).margin(1e-7));
    CHECK(g.entropy == Approx(c.entropy).margin(2e-5));
  }
}

}  // namespace

TEMPLATE_TEST_CASE("GPU forward matches the CPU reference for every named spec", "[gpu]", specs::Upstream,
                   specs::MoreTensor, specs::HigherRank, specs::Scaled, specs::SingleL9) {
  std::mt19937 rng(101);
  const std::string names[] = {"upstream", "more-tensor", "higher-rank", "scaled", "single-l9"};
  std::string name;
  if (std::is_same_v<TestType, specs::Upstream>) name = names[0];
  if (std::is_same_v<TestType, specs::MoreTensor>) name = names[1];
  if (std::is_same_v<TestType, specs::HigherRank>) name = names[2];
  if (std::is_same_v<TestType, specs::Scaled>) name = names[3];
  if (std::is_same_v<TestType, specs::SingleL9>) name = names[4];
  AttentionOptions o;
  o.mask.causal = true;
  for (int h = 0; h < TestType::num_heads; ++h) o.kappa.push_back(0.5 + 0.1 * h);
  o.kappa.erase(o.kappa.begin());
  for (Covariance kind : {Covariance::diagonal, Covariance::full}) compare<TestType>(name, 2, 65, kind, o, rng);
}

TEST_CASE("GPU forward matches the CPU reference on wide heads (tensor cores, queries in shared memory)", "[gpu]") {
  std::mt19937 rng(111);
  AttentionOptions o;
  o.mask.causal = true;
  o.kappa = {0.7, 1.3, 2.0};
  for (Covariance kind : {Covariance::diagonal, Covariance::full})
    compare<testing::WideHeads>("l8-2xl4", 2, 100, kind, o, rng);
  o.mask = MaskSpec{};
  o.mask.window = 33;
  o.mask.alibi_slope = -0.03;
  o.valid_lengths = {71, 130};
  compare<testing::WideHeads>("l8-2xl4", 2, 130, Covariance::diagonal, o, rng);
}

TEST_CASE("GPU forward matches the CPU reference under every mask option", "[gpu]") {
  std::mt19937 rng(102);
  for (const auto& o : testing::mask_variants(0.8, 17, 40, -0.05, -0.02))
    for (Covariance kind : {Covariance::diagonal, Covariance::full})
      compare<specs::Upstream>("upstream", 2, 130, kind, o, rng);
}

TEST_CASE("GPU forward handles awkward sizes, batches and valid lengths", "[gpu]") {
  std::mt19937 rng(103);
  AttentionOptions o;
  o.mask.causal = true;
  o.mask.mask_self = true;
  for (int N : {1, 7, 65, 1000, 4097}) compare<specs::Upstream>("upstream", 2, N, Covariance::diagonal, o, rng, true, N < 1000);
  compare<specs::HigherRank>("higher-rank", 1, 4097, Covariance::full, o, rng, false, false);
  o.valid_lengths = {300, 1, 129};
  compare<specs::Upstream>("upstream", 3, 300, Covariance::full, o, rng);
  // N ≤ 128 lifts a sequence in one kernel, heads of an irrep grouped in a block (lift.cuh): the
  // scaled spec's ten ℓ0 heads in groups of four (the last of two), and padded sequences.
  o.valid_lengths = {50, 3};
  compare<specs::Scaled>("scaled", 2, 64, Covariance::diagonal, o, rng);
  o.mask = MaskSpec{};
  o.valid_lengths = {77, 200};
  compare<specs::MoreTensor>("more-tensor", 2, 200, Covariance::diagonal, o, rng);
}

TEST_CASE("GPU log-sum-exp equals the log-normaliser of the CPU scores", "[gpu]") {
  std::mt19937 rng(104);
  using Spec = specs::Upstream;
  const int N = 33;
  const auto q = testing::random_beliefs<Spec>(rng, 1, N, Covariance::full).cast<float>().cast<double>();
  AttentionOptions o;
  o.mask.causal = true;
  o.mask.alibi_slope = 0.03;
  o.kappa = {0.7};
  o.return_matrices = true;
  const auto ref = attention_forward<Spec>(q.view(), o);
  const auto gpu = testing::run_gpu_forward("upstream", 1, N, Covariance::full, to_float(q.mu), to_float(q.sigma),
                                            to_float(q.phi), o, false, false);
  const auto v = q.view();
  for (int h = 0; h < Spec::num_heads; ++h) {
    const HeadInfo hd = Spec::head(h);
    for (int i = 0; i < N; ++i) {
      // (M8) score + bias = −(KL_ij + ½ ln det Σ_i)/κ + slope·(i − j)
      const double half_logdet = 0.5 * std::log(v.covariance_block(0, i, hd.offset, hd.dim).determinant());
      double top = -1e300, sum = 0;
      for (int j = 0; j <= i; ++j)
        top = std::max(top, -(ref.kl[ref.pair_index(0, h, i, j)] + half_logdet) / 0.7 + 0.03 * (i - j));
      for (int j = 0; j <= i; ++j)
        sum += std::exp(-(ref.kl[ref.pair_index(0, h, i, j)] + half_logdet) / 0.7 + 0.03 * (i - j) - top);
      CHECK(gpu.lse[std::size_t(h) * N + i] == Approx(top + std::log(sum)).epsilon(1e-5).margin(1e-4));
    }
  }
}

TEST_CASE("GPU forward reports bad input naming the argument", "[gpu]") {
  std::mt19937 rng(105);
  using Spec = specs::Upstream;
  constexpr int E = Spec::embed_dim;
  AttentionOptions o;
  // Checks that the forward of N tokens raises InvalidArgument for `argument`, its message
  // containing `where` (the head and token).
  auto fails_with = [](int N, const Beliefs<float>& x, const AttentionOptions& opt, const std::string& argument,
                       const std::string& where) {
    try {
      testing::run_gpu_forward("upstream", 1, N, Covariance::full, x.mu, x.sigma, x.phi, opt, false, false);
    } catch (const InvalidArgument& e) {
      CHECK(e.argument() == argument);
      CHECK_THAT(e.what(), Catch::Contains(where));
      return;
    }
    FAIL("no InvalidArgument for " << argument);
  };
  // N = 8 lifts a sequence in one kernel, N = 200 token by token with the frames once per irrep
  // (lift.cuh): each must name the head and the token, also a head that is not its irrep's first.
  for (const int N : {8, 200}) {
    INFO("N = " << N);
    const auto q = testing::random_beliefs<Spec, float>(rng, 1, N, Covariance::full);
    auto bad = q;
    bad.mu[std::size_t(2) * E + Spec::head(2).offset] = std::nanf("");
    fails_with(N, bad, o, "mu", "head 2 (\u21130) at (b=0, n=2)");
    bad = q;
    bad.mu[std::size_t(N - 1) * E + Spec::head(6).offset + 2] = INFINITY;
    fails_with(N, bad, o, "mu", "head 6 (\u21131) at (b=0, n=" + std::to_string(N - 1) + ")");
    bad = q;
    bad.phi[5] = INFINITY;
    fails_with(N, bad, o, "phi", "at (b=0, n=1)");
    bad = q;
    const int off = Spec::head(6).offset;
    bad.sigma[(std::size_t(3) * E + off) * E + off] = -2.0f;  // negative variance in a full block
    fails_with(N, bad, o, "sigma", "head 6 (\u21131) at (b=0, n=3)");
  }
  const auto q = testing::random_beliefs<Spec, float>(rng, 1, 8, Covariance::full);
  auto upstream = o;
  upstream.mode = Mode::upstream;
  fails_with(8, q, upstream, "mode", "upstream");
  auto zero = o;
  zero.kappa = {0.0};
  fails_with(8, q, zero, "kappa", "got 0");
  for (const char* vector : {"mu", "outputs.mu", "outputs.lse", "outputs.entropy"})
    CHECK(testing::forward_vector_size_error(vector) == vector);
}

template <class A>
double max_abs_diff(const A& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (std::size_t k = 0; k < b.size(); ++k) worst = std::max(worst, std::abs(double(a[k]) - b[k]));
  return worst;
}

TEST_CASE("GPU pair-by-pair path reproduces the upstream parity fixture", "[gpu][upstream]") {
  const auto mu = read_npy(testing::fixture("mu.npy")).data, phi = read_npy(testing::fixture("phi.npy")).data;
  struct Case {
    const char* name;
    bool full, taylor, self;
    double kl_tol, beta_tol, mu_tol;
  };
  // The fixture README's tolerances, as on the CPU: the GPU path computes in float64 throughout.
  const Case cases[] = {{"diag_exact", false, false, true, 1e-10, 1e-10, 1e-10},
                        {"diag_taylor", false, true, true, 1e-10, 1e-10, 1e-10},
                        {"full_exact", true, false, false, 1e-4, 1e-5, 1e-5}};
  for (const Case& c : cases) {
    INFO(c.name);
    const auto sigma = read_npy(testing::fixture(c.full ? "sigma_full.npy" : "sigma_diag.npy")).data;
    AttentionOptions o;
    o.mode = Mode::upstream;
    o.exponential = c.taylor ? UpstreamExponential::taylor4 : UpstreamExponential::pade;
    o.kappa = {0.43};
    o.mask.causal = true;
    o.mask.mask_self = c.self;
    const auto g = testing::run_gpu_pairwise("upstream", 1, 16, c.full ? Covariance::full : Covariance::diagonal, mu,
                                             sigma, phi, o, !c.taylor);
    const std::string n = c.name;
    CHECK(max_abs_diff(g.kl, read_npy(testing::fixture(n + "_kl.npy")).data) < c.kl_tol);
    CHECK(max_abs_diff(g.beta, read_npy(testing::fixture(n + "_beta.npy")).data) < c.beta_tol);
    CHECK(max_abs_diff(g.mu, read_npy(testing::fixture(n + "_mu_out.npy")).data) < c.mu_tol);
    if (!c.taylor) CHECK(max_abs_diff(g.sigma, read_npy(testing::fixture(n + "_sigma_out.npy")).data) < c.mu_tol);
  }
}

template <class Spec>
void compare_pairwise(const std::string& name, Covariance kind, AttentionOptions o, std::mt19937& rng) {
  INFO(name << " full=" << (kind == Covariance::full) << " upstream=" << (o.mode == Mode::upstream)
            << " taylor=" << (o.exponential == UpstreamExponential::taylor4) << " causal=" << o.mask.causal
            << " self=" << o.mask.mask_self << " window=" << o.mask.window << " identity=" << o.identity_transport);
  const int B = 2, N = 23;
  const auto q = testing::random_beliefs<Spec>(rng, B, N, kind);
  o.covariance_message = true;
  o.return_matrices = true;
  const auto ref = attention_forward<Spec>(q.view(), o);
  const auto g = testing::run_gpu_pairwise(name, B, N, kind, q.mu, q.sigma, q.phi, o, true);
  // Both in float64; the exact CPU path takes the factorised route, the GPU the direct (M4): they
  // agree to rounding of terms of size ~10–100. Relative to the size of each output, because the
  // Taylor transport of the upstream mode is far from orthogonal for |φ·G| ≳ 2 (random frames):
  // its Ω Σ Ωᵀ is then large and ill-conditioned, and both sides round it differently.
  auto relative = [](const std::vector<double>& got, const std::vector<double>& want) {
    double worst = 0;
    for (std::size_t k = 0; k < want.size(); ++k)
      worst = std::max(worst, std::abs(got[k] - want[k]) / (1 + std::abs(want[k])));
    return worst;
  };
  const double tol = o.exponential == UpstreamExponential::taylor4 && o.mode == Mode::upstream ? 1e-8 : 1e-10;
  CHECK(relative(g.kl, ref.kl) < 10 * tol);
  CHECK(max_abs_diff(g.beta, ref.beta) < tol);
  CHECK(relative(g.mu, ref.mu) < tol);
  CHECK(relative(g.sigma, ref.sigma) < 10 * tol);
  for (std::size_t k = 0; k < ref.row_statistics.size(); ++k) {
    CHECK(g.statistics[k].row_std == Approx(ref.row_statistics[k].row_std).margin(1e-10));
    CHECK(g.statistics[k].entropy == Approx(ref.row_statistics[k].entropy).margin(1e-10));
  }
  // Without the KL and β outputs the keys are streamed, each pair's KL evaluated once per pass by
  // the same code: the same numbers to the last bits (1e-13 covers a different contraction of
  // the inlined KL at its two call sites).
  const auto s = testing::run_gpu_pairwise(name, B, N, kind, q.mu, q.sigma, q.phi, o, true, false);
  CHECK(s.kl.empty());
  CHECK(relative(s.mu, g.mu) < 1e-13);
  CHECK(relative(s.sigma, g.sigma) < 1e-13);
  for (std::size_t k = 0; k < g.statistics.size(); ++k) {
    CHECK(s.statistics[k].row_std == Approx(g.statistics[k].row_std).margin(1e-13));
    CHECK(s.statistics[k].entropy == Approx(g.statistics[k].entropy).margin(1e-13));
  }
}

TEST_CASE("GPU pair-by-pair path matches the CPU in both modes under every mask", "[gpu][upstream]") {
  std::mt19937 rng(106);
  for (auto o : testing::mask_variants(0.6, 5, 8, -0.1, -0.05))
    for (Covariance kind : {Covariance::diagonal, Covariance::full}) {
      compare_pairwise<specs::Upstream>("upstream", kind, o, rng);
      o.mode = Mode::upstream;
      compare_pairwise<specs::Upstream>("upstream", kind, o, rng);
      o.exponential = UpstreamExponential::taylor4;
      compare_pairwise<specs::Upstream>("upstream", kind, o, rng);
      o.mode = Mode::exact;
      o.exponential = UpstreamExponential::pade;
    }
  AttentionOptions o;
  o.mask.causal = true;
  for (Mode mode : {Mode::exact, Mode::upstream}) {
    o.mode = mode;
    compare_pairwise<specs::HigherRank>("higher-rank", Covariance::full, o, rng);
    compare_pairwise<specs::SingleL9>("single-l9", Covariance::diagonal, o, rng);
  }
}

TEST_CASE("GPU pair-by-pair path in float agrees with float64", "[gpu]") {
  std::mt19937 rng(107);
  const auto q = testing::random_beliefs<specs::Upstream>(rng, 2, 31, Covariance::full);
  AttentionOptions o;
  o.mask.causal = true;
  for (Mode mode : {Mode::exact, Mode::upstream}) {
    o.mode = mode;
    const auto d = testing::run_gpu_pairwise("upstream", 2, 31, Covariance::full, q.mu, q.sigma, q.phi, o, true);
    const auto f = testing::run_gpu_pairwise_float(2, 31, Covariance::full, q.mu, q.sigma, q.phi, o, true);
    // Inputs rounded to float move KL values of size ~10 by ~1e-6 and β by less: the bound
    // for materialised β is 1e-6 absolute (against float64 on the same float inputs; here the
    // float64 run sees unrounded inputs, hence 1e-5).
    CHECK(max_abs_diff(f.beta, d.beta) < 1e-5);
    CHECK(max_abs_diff(f.mu, d.mu) < 1e-5);
  }
}

TEST_CASE("GPU pair-by-pair path reports bad input naming the argument", "[gpu]") {
  std::mt19937 rng(108);
  auto q = testing::random_beliefs<specs::Upstream>(rng, 1, 8, Covariance::diagonal);
  AttentionOptions o;
  o.mode = Mode::upstream;
  q.sigma[11] = -1.0;
  try {
    testing::run_gpu_pairwise("upstream", 1, 8, Covariance::diagonal, q.mu, q.sigma, q.phi, o, false);
    FAIL("no InvalidArgument for a negative variance");
  } catch (const InvalidArgument& e) {
    CHECK(e.argument() == "sigma");
  }
}

namespace {

/// Upstream-spec diagonal beliefs with variances log-uniform in [lo, hi] (the wide range).
Beliefs<float> wide_beliefs(std::mt19937& rng, int N, double lo, double hi) {
  std::normal_distribution<double> normal(0, 1);
  std::uniform_real_distribution<double> log_variance(std::log(lo), std::log(hi));
  Beliefs<float> q(2, N, specs::Upstream::embed_dim, Covariance::diagonal);
  for (auto& x : q.mu) x = float(normal(rng));
  for (auto& x : q.sigma) x = float(std::exp(log_variance(rng)));
  for (auto& x : q.phi) x = float(0.5 * normal(rng));
  return q;
}

}  // namespace

TEST_CASE("GPU float32 scores raise for variances in [1e-6, 1e6]; float64 scores stay within their bound", "[gpu][precision]") {
  std::mt19937 rng(109);
  const int N = 300;  // not a multiple of any tile
  const Beliefs<float> q = wide_beliefs(rng, N, 1e-6, 1e6);
  AttentionOptions o;
  o.mask.causal = true;
  try {
    testing::run_gpu_forward("upstream", 2, N, Covariance::diagonal, q.mu, q.sigma, q.phi, o, false, false);
    FAIL("no InvalidArgument from check_inputs() for float32 scores");
  } catch (const InvalidArgument& e) {
    CHECK(e.argument() == "sigma");
  }
  // The GPU's bounds are the CPU's (the same lift in float64, to rounding of the norms), with the
  // tensor-core path's roundings for the heads that take it (precision.hpp).
  o.precision_check = PrecisionCheck::report;
  const auto cpu32 = attention_forward<specs::Upstream>(q.view(), o);
  const auto gpu32 = testing::run_gpu_forward("upstream", 2, N, Covariance::diagonal, q.mu, q.sigma, q.phi, o, false, false);
  REQUIRE(gpu32.precision.size() == cpu32.precision.size());
  for (std::size_t k = 0; k < cpu32.precision.size(); ++k) {
    const int K = specs::Upstream::head(int(k % specs::Upstream::num_heads)).dim, P = K * (K + 1) / 2 + K + 1;
    const double roundings = gpu::uses_tensor_cores(P, false) ? tensor_core_score_roundings(P) : fma_score_roundings(P);
    const double floor = 4 * 0x1p-24;  // (P1)'s term that does not scale with the roundings
    CHECK(gpu32.precision[k].score_bound - floor ==
          Approx((cpu32.precision[k].score_bound - floor) * roundings / fma_score_roundings(P)).epsilon(1e-9));
  }
  o.precision_check = PrecisionCheck::raise;
  o.scores = Scores::float64;
  for (bool covariance_message : {false, true}) {
    o.covariance_message = covariance_message;
    const auto ref = attention_forward<specs::Upstream>(q.cast<double>().view(), o);
    const auto gpu = testing::run_gpu_forward("upstream", 2, N, Covariance::diagonal, q.mu, q.sigma, q.phi, o,
                                              covariance_message, true);
    // Double scores are rounded by at most δ64 nats (P1 in double: the lifted vectors' own rounding,
    // u·Σ|a_k b_k|, which no summation order removes), so a weight moves by e^{2δ64} − 1 at most (P2,
    // the report's message_bound) and the messages (of O(1) means) by as much; the float softmax and
    // sums add ~1e-7. That is the guarantee; measured, the pairs that carry weight have small Σ|a_k b_k|
    // and the H200 gives 6.2e-8 against the accurate reference (5.1e-4 while the first key tile of each
    // row was rounded to float before the softmax reference was set): the 1e-5 is checked too.
    double bound = 0;
    for (const HeadPrecision& p : gpu.precision) bound = std::max(bound, p.message_bound);
    const double error = relative_error(gpu.mu, ref.mu);
    const Beliefs<double> d = q.cast<double>();
    const double accurate_error = testing::norm_relative_error(
        gpu.mu, testing::accurate_mean_messages<specs::Upstream>(2, N, d.mu, d.sigma, d.phi, o));
    std::printf("float64 scores, variances in [1e-6, 1e6]: relative error %.1e (against the accurate reference "
                "%.1e), bound (P2) %.1e\n", error, accurate_error, bound);
    CHECK(error < std::max(1e-5, bound));
    CHECK(accurate_error < 1e-5);
    if (covariance_message) CHECK(relative_error(gpu.sigma, ref.sigma) < std::max(1e-4, 2 * bound));
  }
}

// The pair-by-pair path's exact KL is a sum of positive terms (kl_factors.hpp), so its messages stay
// at double accuracy whatever the variances' range or the means' scale: against the long-double
// reference (accurate_reference.hpp) 1e-10, where the KLs of the pairs that carry weight are up to
// ~1e3 nats (a few u relative each) and the float-rounded inputs are the same on both sides. The
// cases are those where the fused forward's bound (P1) refuses float scores.
TEST_CASE("GPU pair-by-pair path is accurate for variances over twelve decades and spread means", "[gpu][precision]") {
  std::mt19937 rng(111);
  const int B = 2, N = 300;
  for (auto [lo, hi, scale] : {std::tuple{1e-6, 1e6, 1.0}, std::tuple{0.0026, 6.71, 100.0}}) {
    Beliefs<float> q = wide_beliefs(rng, N, lo, hi);
    for (auto& x : q.mu) x *= float(scale);
    const Beliefs<double> d = q.cast<double>();
    AttentionOptions o;
    o.mask.causal = true;
    o.valid_lengths = {N, 211};
    o.kappa = {0.5};
    const auto want = testing::accurate_mean_messages<specs::Upstream>(B, N, d.mu, d.sigma, d.phi, o);
    const auto g = testing::run_gpu_pairwise("upstream", B, N, Covariance::diagonal, d.mu, d.sigma, d.phi, o, false, false);
    const double error = testing::norm_relative_error(g.mu, want);
    std::printf("pair-by-pair, variances in [%g, %g], means x%g: relative error %.1e\n", lo, hi, scale, error);
    CHECK(error < 1e-10);
  }
}

TEST_CASE("GPU float64 scores match the CPU reference on every named spec and mask", "[gpu][precision]") {
  std::mt19937 rng(110);
  for (auto o : testing::mask_variants(0.8, 17, 40, -0.05, -0.02)) {
    o.scores = Scores::float64;
    compare<specs::Upstream>("upstream", 2, 130, Covariance::full, o, rng);
  }
  AttentionOptions o;
  o.mask.causal = true;
  o.scores = Scores::float64;
  compare<specs::HigherRank>("higher-rank", 1, 200, Covariance::diagonal, o, rng);
  compare<specs::Scaled>("scaled", 1, 77, Covariance::full, o, rng);
  compare<specs::SingleL9>("single-l9", 1, 65, Covariance::diagonal, o, rng);
}

int main(int argc, char** argv) {
  if (gauge_attn::testing::gpu_count() == 0) {
    std::puts("gpu_forward_test: no CUDA device, skipped");
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
