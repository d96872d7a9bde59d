// Tests of gauge_attn/study/study_analysis.hpp: on the study's default synthetic beliefs the analysis
// of a sweep gives statistics near the generating ones, predictions within a few percent of the
// measured values (and far from them when the statistics come from other beliefs), the law of
// large numbers in both its readings, sharp thresholds that agree with each other, and clear
// errors for statistics that do not match the sweep.
#include <gauge_attn/study/study_analysis.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <optional>
#include <string>
#include <vector>

using namespace gauge_attn;
using namespace gauge_attn::study;

namespace {

/// The upstream spec on beliefs `q` at three κ (uniform, the note's, sharp for K ≥ 3), analysed
/// with the statistics of `modelled` (q itself unless given).
Analysis analyse_upstream(const Beliefs<double>& q, const Beliefs<double>* modelled = nullptr) {
  SweepResult r;
  sweep_spec("upstream", q.view(), {0.43, 0.0086, 0.001}, KappaScaling::fixed, r);
  ObservedStatistics observed;
  observed.add("upstream", (modelled ? *modelled : q).view());
  return analyse(observed, r, summarise_by_spin(r.heads));
}

}  // namespace

TEST_CASE("study_analysis: the default synthetic beliefs, predicted against measured", "[study_analysis]") {
  const SyntheticOptions o;  // B = 24, N = 64, the study's default
  const Analysis a = analyse_upstream(synthetic_beliefs(19, o));
  const BeliefStatistics truth = synthetic_statistics(o);

  // The run's statistics: 24 × 64 × 19 values (relative sampling error of s² ≈ 1%, of η ≈ 0.5%).
  CHECK(a.run.spec == "upstream");
  CHECK(a.run.sequences == 24);
  CHECK(a.run.tokens == 64);
  CHECK(a.run.components == 19);
  CHECK(a.run.beliefs.mu_variance == Approx(truth.mu_variance).epsilon(0.05));
  CHECK(a.run.beliefs.log_sigma_std == Approx(truth.log_sigma_std).epsilon(0.05));
  CHECK(a.run.beliefs.phi_std == Approx(truth.phi_std).epsilon(0.05));
  // Per ℓ, sequence 0 only: 64 tokens × (5, 9, 5) components, so about 10% sampling error on
  // s² and η for ℓ2; φ_std is a std of 64 frames per component.
  REQUIRE(a.statistics.size() == 3);
  for (const SpinStatistics& s : a.statistics) {
    CHECK(s.spec == "upstream");
    CHECK(s.heads == (s.l == 0 ? 5 : s.l == 1 ? 3 : 1));
    CHECK(s.beliefs.mu_variance == Approx(truth.mu_variance).epsilon(0.25));
    CHECK(s.beliefs.log_sigma_std == Approx(truth.log_sigma_std).epsilon(0.25));
    CHECK(s.beliefs.phi_std == Approx(truth.phi_std).epsilon(0.15));
    CHECK(s.transport_mixing == Approx(transport_mixing(s.dim(), s.beliefs.phi_std)));
  }
  CHECK(a.statistics[0].transport_mixing == 1);  // ℓ0: no transport

  // KL (P3), (P4): the moments are exact under the model; what remains is the sampling of one
  // sequence (about 2% on the mean, 5% on the std, docs/study.md).
  REQUIRE(a.kl.size() == 3);
  for (const KlComparison& k : a.kl) {
    CHECK(k.exact.mode == Mode::exact);
    CHECK(k.upstream.mode == Mode::upstream);
    CHECK(std::abs(k.mean_error()) < 0.05);
    CHECK(std::abs(k.std_error()) < 0.10);
  }
  // ℓ0: the upstream mode computes the same KL (trivial transport, math.md §6).
  CHECK(a.kl[0].upstream_mean_change() == Approx(0).margin(1e-9));

  // Row statistics (P7), (P8): one row per κ and ℓ, κ as run, within 10% of sequence 0's.
  REQUIRE(a.rows.size() == 3 * 3);
  for (std::size_t i = 0; i < a.rows.size(); ++i) {
    const RowComparison& r = a.rows[i];
    CHECK(r.exact.kappa == std::vector<double>{0.43, 0.0086, 0.001}[i / 3]);
    CHECK(r.exact.l == int(i % 3));
    CHECK(r.upstream.mode == Mode::upstream);
    CHECK(r.upstream.kappa == r.exact.kappa);
    CHECK(r.upstream.l == r.exact.l);
    CHECK(std::abs(r.row_std_error()) < 0.10);
    CHECK(r.predicted.entropy == Approx(r.exact.entropy).margin(0.05));
    CHECK(r.predicted.uniform_row_std == Approx(r.exact.uniform_row_std).epsilon(1e-9));
  }
  CHECK(a.uniform_row_std == Approx(0.02167).epsilon(1e-3));
  CHECK(a.one_hot_row_std == Approx(0.1230).epsilon(1e-3));
  // A prediction error of 10% would be caught: the largest one is the one reported.
  const RowComparison& worst = largest(a.rows, &RowComparison::row_std_error);
  for (const RowComparison& r : a.rows) CHECK(std::abs(r.row_std_error()) <= std::abs(worst.row_std_error()));
}

TEST_CASE("study_analysis: the law of large numbers in both readings", "[study_analysis]") {
  const Analysis a = analyse_upstream(synthetic_beliefs(19));
  REQUIRE(a.concentration.size() == 3);
  for (std::size_t i = 0; i + 1 < a.concentration.size(); ++i) {
    const KlConcentration &lo = a.concentration[i], &hi = a.concentration[i + 1];
    CHECK(lo.dim < hi.dim);
    // KL's relative spread falls with K, its absolute spread grows: measured and predicted.
    CHECK(hi.measured.std / hi.measured.mean < lo.measured.std / lo.measured.mean);
    CHECK(hi.measured.std > lo.measured.std);
    CHECK(hi.predicted.std / hi.predicted.mean < lo.predicted.std / lo.predicted.mean);
    CHECK(hi.predicted.std > lo.predicted.std);
  }
  // Pooled over the heads of one K: all their pairs.
  CHECK(a.concentration[0].heads == 5);
  CHECK(a.concentration[0].measured.count == 5 * 64 * 63);
  CHECK(a.concentration[0].measured.mean == Approx(a.kl[0].exact.kl.mean));
  // The predicted curve covers K = 1, 3, 5 and agrees with the pooled rows.
  REQUIRE(a.kl_curve.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(a.kl_curve[i].first == a.concentration[i].dim);
    CHECK(a.kl_curve[i].second.std == a.concentration[i].predicted.std);
  }
}

TEST_CASE("study_analysis: the sharp thresholds agree with each other", "[study_analysis]") {
  const Analysis a = analyse_upstream(synthetic_beliefs(19));
  REQUIRE(a.min_sharp_dim.size() == 3);
  REQUIRE(a.max_sharp_kappa.size() == 3);
  CHECK_FALSE(a.min_sharp_dim[0].dim);  // κ = 0.43: no K ≤ 49
  REQUIRE(a.min_sharp_dim[2].dim);      // κ = 0.001: a low K already (docs/study.md: 3)
  CHECK(*a.min_sharp_dim[2].dim <= 5);
  // K is SHARP at κ exactly when κ is at most the largest SHARP κ of K (row_std grows with K and
  // falls with κ): the two tables answer the same question from both sides.
  for (const SharpDim& d : a.min_sharp_dim)
    for (const SharpKappa& k : a.max_sharp_kappa) {
      REQUIRE(k.kappa);
      const bool sharp_by_dim = d.dim && *d.dim <= k.dim;
      CHECK(sharp_by_dim == (d.kappa <= *k.kappa));
    }
}

TEST_CASE("study_analysis: statistics of other beliefs give large errors", "[study_analysis]") {
  // The same sweep modelled with μ spread twice as wide: E KL ≈ K s² G₁ grows about fourfold
  // (P3), which the comparison must show.
  SyntheticOptions wide;
  wide.mu_scale *= 2;
  const Beliefs<double> other = synthetic_beliefs(19, wide);
  const Analysis a = analyse_upstream(synthetic_beliefs(19), &other);
  for (const KlComparison& k : a.kl) CHECK(k.mean_error() > 1.5);
  CHECK(largest(a.kl, &KlComparison::mean_error).mean_error() > 1.5);
}

TEST_CASE("study_analysis: pooled statistics and bad input", "[study_analysis]") {
  // Pooling the statistics of two disjoint sets gives those of their union.
  const std::vector<double> x = {0.1, 0.4, 0.2, 0.9, 0.3, 0.05, 0.7};
  detail::RunningMoments all, first, second;
  for (std::size_t i = 0; i < x.size(); ++i) {
    all.add(x[i]);
    (i < 3 ? first : second).add(x[i]);
  }
  const KlStatistics p = internal::pooled({first.statistics(), second.statistics()}), w = all.statistics();
  CHECK(p.count == w.count);
  CHECK(p.mean == Approx(w.mean).epsilon(1e-12));
  CHECK(p.std == Approx(w.std).epsilon(1e-12));
  CHECK(p.min == w.min);
  CHECK(p.max == w.max);

  SyntheticOptions o;
  o.batch = 2;
  o.tokens = 8;
  const Beliefs<double> q = synthetic_beliefs(19, o);
  SweepResult r;
  sweep_spec("upstream", q.view(), {0.1}, KappaScaling::fixed, r);
  const std::vector<SpinSummary> summary = summarise_by_spin(r.heads);
  CHECK_THROWS_WITH(analyse(ObservedStatistics{}, r, summary), Catch::Contains("no belief statistics"));
  ObservedStatistics other;  // statistics of a spec the sweep did not run
  other.add("single-l9", q.view());
  CHECK_THROWS_WITH(analyse(other, r, summary), Catch::Contains("no measured row matches"));
  ObservedStatistics observed;
  CHECK_THROWS_WITH(observed.add("higher-rank", q.view()), Catch::Contains("'higher-rank' has E = 41"));
  CHECK_THROWS_WITH(observed.add("nope", q.view()), Catch::Contains("unknown spec name"));
  o.tokens = 1;
  CHECK_THROWS_WITH(observed.add("upstream", synthetic_beliefs(19, o).view()), Catch::Contains("needs >= 2 tokens"));
}
