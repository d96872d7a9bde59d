// The a-priori bound on the float scores' rounding (precision.hpp, (P1), (P2)): it holds on random
// inputs across variance ranges, means' scales and κ; the check raises for the wide range, naming
// the argument, and not for the upstream note's range; the double paths are accurate everywhere.
#include <gauge_attn/attention.hpp>
#include <gauge_attn/specs.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include "accurate_reference.hpp"
#include "test_support.hpp"

using namespace gauge_attn;
using Spec = specs::Upstream;

namespace {

/// Diagonal beliefs of the upstream spec: variances log-uniform in [lo, hi], μ ~ N(0, scale²).
Beliefs<float> wide_beliefs(std::mt19937& rng, int N, double lo, double hi, double mu_scale) {
  std::normal_distribution<double> normal(0, 1);
  std::uniform_real_distribution<double> log_variance(std::log(lo), std::log(hi));
  Beliefs<float> q(2, N, Spec::embed_dim, Covariance::diagonal);
  for (auto& x : q.mu) x = float(mu_scale * normal(rng));
  for (auto& x : q.sigma) x = float(std::exp(log_variance(rng)));
  for (auto& x : q.phi) x = float(0.5 * normal(rng));
  return q;
}

/// max_i ‖m_i(got) − m_i(ref)‖ / D per (sequence, head): the quantity (P2) bounds.
double worst_relative_to_spread(const AttentionResult<float>& got, const AttentionResult<double>& ref, int b, int h) {
  const HeadInfo head = Spec::head(h);
  double worst = 0;
  for (int i = 0; i < got.tokens; ++i) {
    double d2 = 0;
    for (int k = 0; k < head.dim; ++k) {
      const std::size_t e = (std::size_t(b) * got.tokens + i) * got.embed_dim + head.offset + k;
      d2 += (got.mu[e] - ref.mu[e]) * (got.mu[e] - ref.mu[e]);
    }
    worst = std::max(worst, std::sqrt(d2));
  }
  return worst / ref.precision[std::size_t(b) * Spec::num_heads + h].mean_spread;
}

}  // namespace

TEST_CASE("the message error of the float path stays within the bound (P2)", "[precision]") {
  std::mt19937 rng(41);
  struct Case {
    double lo, hi, mu_scale, kappa;
  };
  const Case cases[] = {{0.5, 2, 1, 1},       {0.0026, 6.71, 1, 1},   {0.0026, 6.71, 0.08, 0.0086},
                        {1e-3, 1e3, 1, 1},    {0.3, 3, 3, 0.2},       {0.0026, 6.71, 1, 20}};
  for (const Case& c : cases) {
    const Beliefs<float> q = wide_beliefs(rng, 97, c.lo, c.hi, c.mu_scale);
    AttentionOptions o;
    o.mask.causal = true;
    o.mask.alibi_slope = -0.01;
    o.kappa = {c.kappa};
    o.precision_check = PrecisionCheck::report;
    const auto ref = attention_forward<Spec>(q.cast<double>().view(), o);
    const auto got = attention_forward<Spec>(q.view(), o);
    REQUIRE(got.precision.size() == std::size_t(2 * Spec::num_heads));
    for (int b = 0; b < 2; ++b)
      for (int h = 0; h < Spec::num_heads; ++h) {
        const HeadPrecision& p = got.precision[std::size_t(b) * Spec::num_heads + h];
        INFO("variances [" << c.lo << ", " << c.hi << "] mu " << c.mu_scale << " kappa " << c.kappa << " b " << b
                           << " h " << h << " delta " << p.score_bound);
        // The float64 reference sees the same lift, so its own δ (u = 2⁻⁵³) is negligible beside it.
        CHECK(ref.precision[std::size_t(b) * Spec::num_heads + h].score_bound < 1e-6 + 1e-9 * p.score_bound);
        // (P2) with D = max ‖ν_j − ν̄‖, plus the float rounding of the sums and of the final
        // rotation (≤ 1e-5 of D at N = 97, whatever the variances).
        CHECK(worst_relative_to_spread(got, ref, b, h) <= p.message_bound + 1e-5);
      }
  }
}

TEST_CASE("the precision check raises for the wide range, naming the argument, not for the note's", "[precision]") {
  std::mt19937 rng(42);
  AttentionOptions o;
  o.mask.causal = true;
  const Beliefs<float> note = wide_beliefs(rng, 64, 0.0026, 6.71, 1);
  for (double kappa : {1.0, 0.0086, 0.00043}) {  // the note's temperatures
    o.kappa = {kappa};
    CHECK_NOTHROW(attention_forward<Spec>(note.view(), o));
  }
  o.kappa = {1.0};
  const Beliefs<float> wide = wide_beliefs(rng, 64, 1e-6, 1e6, 1);
  try {
    attention_forward<Spec>(wide.view(), o);
    FAIL("no InvalidArgument for variances in [1e-6, 1e6]");
  } catch (const InvalidArgument& e) {
    CHECK(e.argument() == "sigma");
    CHECK_THAT(e.what(), Catch::Contains("score_error_tolerance") && Catch::Contains("Scores::float64"));
  }
  const Beliefs<float> far = wide_beliefs(rng, 64, 0.5, 2, 1e4);  // means far apart, variances tame
  try {
    attention_forward<Spec>(far.view(), o);
    FAIL("no InvalidArgument for means of scale 1e4");
  } catch (const InvalidArgument& e) {
    CHECK(e.argument() == "mu");
  }
  // Reported, not raised, on request; a tolerance that is not > 0 is itself refused.
  o.precision_check = PrecisionCheck::report;
  const auto reported = attention_forward<Spec>(wide.view(), o);
  double worst = 0;
  for (const HeadPrecision& p : reported.precision) worst = std::max(worst, p.score_bound);
  CHECK(worst > o.score_error_tolerance);
  o.score_error_tolerance = 0;
  try {
    attention_forward<Spec>(note.view(), o);
    FAIL("no InvalidArgument for score_error_tolerance = 0");
  } catch (const InvalidArgument& e) {
    CHECK(e.argument() == "score_error_tolerance");
  }
}

TEST_CASE("float64 scores are accurate for the wide range", "[precision]") {
  std::mt19937 rng(43);
  const Beliefs<float> wide = wide_beliefs(rng, 64, 1e-6, 1e6, 1);
  AttentionOptions o;
  o.mask.causal = true;
  o.scores = Scores::float64;
  const auto ref = attention_forward<Spec>(wide.cast<double>().view(), o);
  const auto got = attention_forward<Spec>(wide.view(), o);  // no throw: the double path's δ is small
  double num = 0, den = 0;
  for (std::size_t k = 0; k < ref.mu.size(); ++k) {
    num += (got.mu[k] - ref.mu[k]) * (got.mu[k] - ref.mu[k]);
    den += ref.mu[k] * ref.mu[k];
  }
  CHECK(std::sqrt(num / den) < 1e-7);  // the double result rounded to float
  for (const HeadPrecision& p : got.precision) CHECK(p.score_bound < 1);
}

// The reference of the accuracy tests (accurate_reference.hpp) is the exact forward's maths: on
// beliefs the double forward handles well (variances in [0.3, 3], δ64 ~ 1e-13) both agree to 1e-11
// under every mask, valid lengths and identity transport; a wrong sign, index or transport moves
// the messages by O(1). On the wide range the lifted double forward is off it by its (P1) rounding
// (1e-7 to 1e-5 measured, below 1e-4), which is what the pair-by-pair GPU path avoids.
TEST_CASE("the long-double pair-by-pair reference equals the exact forward in double", "[precision]") {
  std::mt19937 rng(47);
  const int B = 2, N = 19;
  for (AttentionOptions o : testing::mask_variants(0.7, 5, 8, -0.1, -0.05)) {
    o.valid_lengths = {N, 13};
    const auto q = testing::random_beliefs<Spec>(rng, B, N, Covariance::diagonal);
    const auto want = attention_forward<Spec>(q.view(), o);
    CAPTURE(o.mask.causal, o.mask.mask_self, o.mask.window, o.mask.alibi_slope, o.identity_transport);
    CHECK(testing::norm_relative_error(testing::accurate_mean_messages<Spec>(B, N, q.mu, q.sigma, q.phi, o), want.mu) < 1e-11);
  }
  const Beliefs<double> wide = wide_beliefs(rng, 64, 1e-6, 1e6, 1).cast<double>();
  AttentionOptions o;
  o.mask.causal = true;
  const auto lifted = attention_forward<Spec>(wide.view(), o);
  const double error = testing::norm_relative_error(lifted.mu, testing::accurate_mean_messages<Spec>(2, 64, wide.mu, wide.sigma, wide.phi, o));
  UNSCOPED_INFO("lifted double forward against the reference, variances in [1e-6, 1e6]: " << error);
  CHECK(error < 1e-4);
}
