// Tests of gauge_attn/study/predictor.hpp: the prediction against Monte-Carlo runs of the exact
// attention on beliefs drawn from the model (docs/study.md, "The predictor"), its limits and
// monotonicity, the searches against brute force, the estimator, and bad input.
#include <gauge_attn/study/predictor.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>
#include <string>
#include <vector>

using namespace gauge_attn;
using namespace gauge_attn::study;

namespace {

/// Measured statistics of the heads of one ℓ, pooled over heads and sequences.
struct Measured {
  double kl_mean = 0, kl_std = 0;      // over the ordered pairs i ≠ j of every sequence
  double row_std = 0, row_std_se = 0;  // mean over (sequence, head) and its standard error
  double entropy = 0, entropy_se = 0;
};

/// Measures the heads of spin l in a run of the exact attention on q.
template <class Spec>
Measured measure(const Beliefs<double>& q, const AttentionResult<double>& r, int l) {
  const int N = q.tokens;
  double sum = 0, sum_sq = 0, rs = 0, rs_sq = 0, h = 0, h_sq = 0;
  long long pairs = 0, units = 0;
  for (int head = 0; head < Spec::num_heads; ++head) {
    if (Spec::head(head).l != l) continue;
    for (int b = 0; b < q.batch; ++b) {
      for (int i = 0; i < N; ++i)
        for (int j = 0; j < N; ++j)
          if (i != j) {
            const double kl = r.kl[r.pair_index(b, head, i, j)];
            sum += kl;
            sum_sq += kl * kl;
            ++pairs;
          }
      const RowStatistics& s = r.statistics(b, head);
      rs += s.row_std;
      rs_sq += s.row_std * s.row_std;
      h += s.entropy;
      h_sq += s.entropy * s.entropy;
      ++units;
    }
  }
  Measured m;
  m.kl_mean = sum / pairs;
  m.kl_std = std::sqrt(sum_sq / pairs - m.kl_mean * m.kl_mean);
  m.row_std = rs / units;
  m.row_std_se = std::sqrt((rs_sq / units - m.row_std * m.row_std) / (units - 1));
  m.entropy = h / units;
  m.entropy_se = std::sqrt((h_sq / units - m.entropy * m.entropy) / (units - 1));
  return m;
}

/// Predicted against measured for the heads of each spin in `spins`, from one run of the exact
/// attention of the study (causal, self-masked) at temperature κ. Tolerances: the KL moments are exact
/// under the model, so only the Monte-Carlo error counts (≈ 1% for these samples): 3% on the
/// mean, 4% on the std. The row statistics rest on the mean-field transport (P5): 3% of row_std
/// and 0.025 of the entropy, plus three standard errors of the measurement. A formula that drops
/// the covariance part of KL, the mixing ρ, or the finite row length fails them (docs/study.md).
template <class Spec>
void check_against_monte_carlo(const char* setting, const SyntheticOptions& o, double kappa,
                               const std::vector<int>& spins) {
  const Beliefs<double> q = synthetic_beliefs(Spec::embed_dim, o);
  AttentionOptions options = study_options(kappa, Mode::exact);
  options.return_matrices = true;
  const AttentionResult<double> r = attention_forward<Spec>(q.view(), options);
  for (int l : spins) {
    const Measured m = measure<Spec>(q, r, l);
    const Prediction p = predict(2 * l + 1, kappa, synthetic_statistics(o));
    std::printf("%-22s l=%d kappa=%-7g KL mean %.5f/%.5f (%+.1f%%)  KL std %.5f/%.5f (%+.1f%%)  "
                "row_std %.4f/%.4f (%+.1f%%)  entropy %.3f/%.3f\n",
                setting, l, kappa, p.kl.mean, m.kl_mean, 100 * (p.kl.mean / m.kl_mean - 1), p.kl.std, m.kl_std,
                100 * (p.kl.std / m.kl_std - 1), p.row_std, m.row_std, 100 * (p.row_std / m.row_std - 1), p.entropy,
                m.entropy);
    INFO(setting << ", l = " << l << ", kappa = " << kappa);
    CHECK(p.kl.mean == Approx(m.kl_mean).epsilon(0.03));
    CHECK(p.kl.std == Approx(m.kl_std).epsilon(0.04));
    CHECK(std::abs(p.row_std - m.row_std) <= 0.03 * m.row_std + 3 * m.row_std_se);
    CHECK(std::abs(p.entropy - m.entropy) <= 0.025 + 3 * m.entropy_se);
  }
}

SyntheticOptions calibrated(int batch) {  // the study's synthetic beliefs: s ≈ 0.082, η = 0.1, φ_std = 0.48
  SyntheticOptions o;
  o.batch = batch;
  return o;
}

SyntheticOptions wide(int batch) {  // wider means and variances: the covariance part of KL dominates
  SyntheticOptions o = calibrated(batch);
  o.mu_scale = 0.15;
  o.sigma_log_std = 0.3;
  o.seed = 7;
  return o;
}

}  // namespace

TEST_CASE("predictor: KL statistics and row statistics against Monte-Carlo, upstream spec", "[predictor]") {
  // ℓ0, ℓ1, ℓ2 heads (K = 1, 3, 5), from near-uniform (κ = 0.1) to sharp (κ = 3e-4).
  for (double kappa : {0.1, 0.003, 0.0003})
    check_against_monte_carlo<specs::Upstream>("upstream, calibrated", calibrated(128), kappa, {0, 1, 2});
  check_against_monte_carlo<specs::Upstream>("upstream, wide", wide(128), 0.01, {0, 1, 2});
}

TEST_CASE("predictor: KL statistics and row statistics against Monte-Carlo, K = 19", "[predictor]") {
  for (double kappa : {0.03, 0.003})
    check_against_monte_carlo<specs::SingleL9>("single-l9, calibrated", calibrated(96), kappa, {9});
  check_against_monte_carlo<specs::SingleL9>("single-l9, wide", wide(96), 0.1, {9});
}

TEST_CASE("predictor: the head-averaged KL of the [DIVERSITY] block", "[predictor]") {
  // Head-averaged KL matrices (§7) pooled over 64 sequences against predict_head_average_kl; the
  // library's own statistics (sequence 0 only) within their larger sampling error.
  const SyntheticOptions o = calibrated(64);
  const Beliefs<double> q = synthetic_beliefs(19, o);
  AttentionOptions ao = study_options(0.01, Mode::exact);
  ao.return_matrices = true;
  const AttentionResult<double> r = attention_forward<specs::Upstream>(q.view(), ao);
  const int N = q.tokens, H = specs::Upstream::num_heads;
  double sum = 0, sum_sq = 0;
  long long pairs = 0;
  for (int b = 0; b < q.batch; ++b)
    for (int i = 0; i < N; ++i)
      for (int j = 0; j < N; ++j) {
        if (i == j) continue;
        double avg = 0;
        for (int h = 0; h < H; ++h) avg += r.kl[r.pair_index(b, h, i, j)] / H;
        sum += avg;
        sum_sq += avg * avg;
        ++pairs;
      }
  const double mean = sum / pairs, std = std::sqrt(sum_sq / pairs - mean * mean);
  const KlPrediction p = predict_head_average_kl({1, 1, 1, 1, 1, 3, 3, 3, 5}, synthetic_statistics(o));
  CHECK(p.mean == Approx(mean).epsilon(0.02));
  CHECK(p.std == Approx(std).epsilon(0.04));
  CHECK(p.mean == Approx(r.kl_statistics.mean).epsilon(0.08));
  CHECK(p.std == Approx(r.kl_statistics.std).epsilon(0.15));
  // The average of H heads is not the head of dim E/H: heads are uncorrelated, std / √H.
  const KlPrediction one = predict_kl(5, synthetic_statistics(o));
  CHECK(predict_head_average_kl({5, 5, 5, 5}, synthetic_statistics(o)).std == Approx(one.std / 2).epsilon(1e-12));
}

TEST_CASE("predictor: the kappa -> infinity limit is the library's uniform baseline", "[predictor]") {
  // Under several masks (causal; causal with a window; a two-sided window) and lengths, the
  // prediction at a huge κ equals the library's run at that κ: row_std, its uniform baseline
  // (uniform_row_std_of over the rows) and the entropy (1, or 0 when no row has two keys).
  const BeliefStatistics stats = synthetic_statistics(calibrated(1));
  std::vector<MaskSpec> masks(3);
  masks[0] = {true, true, 0, 0.0};
  masks[1] = {true, true, 9, 0.0};
  masks[2] = {false, true, 12, 0.0};
  for (const MaskSpec& mask : masks)
    for (int N : {2, 17, 64}) {
      PredictorOptions o;
      o.tokens = N;
      o.mask = mask;
      o.queries = 64;
      const Prediction p = predict(3, 1e9, stats, o);
      SyntheticOptions so = calibrated(1);
      so.tokens = N;
      AttentionOptions ao = study_options(1e9, Mode::exact);
      ao.mask = mask;
      const RowStatistics measured =
          attention_forward<specs::Upstream>(synthetic_beliefs(19, so).view(), ao).statistics(0, 5);
      INFO("N = " << N << ", window = " << mask.window << ", causal = " << mask.causal);
      CHECK(p.uniform_row_std == Approx(measured.uniform_row_std).epsilon(1e-12));
      CHECK(p.row_std == Approx(p.uniform_row_std).epsilon(1e-8));
      CHECK(p.row_std == Approx(measured.row_std).epsilon(1e-8));
      CHECK(p.entropy == Approx(measured.entropy).margin(1e-8));
      CHECK(p.entropy == (N > 2 ? Approx(1.0).epsilon(1e-8) : Approx(0.0)));
    }
  // The κ → 0 limit is one-hot rows: ≈ 0.123 at N = 64, below the SHARP threshold from N ≈ 100.
  CHECK(predict(3, 1e-12, stats).row_std == Approx(one_hot_row_std()).epsilon(1e-9));
  const Prediction frozen = predict(3, 1e-300, stats);  // (KL_j − KL_min)/κ overflows to ∞: no NaN
  CHECK(frozen.row_std == Approx(one_hot_row_std()).epsilon(1e-12));
  CHECK(frozen.entropy == 0.0);
  CHECK(one_hot_row_std() == Approx(0.1230).margin(1e-4));
  PredictorOptions long_rows;
  long_rows.tokens = 128;
  CHECK(one_hot_row_std(long_rows) < sharp_row_std);
}

TEST_CASE("predictor: row_std falls with kappa and grows with K", "[predictor]") {
  const BeliefStatistics stats = synthetic_statistics(calibrated(1));
  PredictorOptions o;
  o.queries = 512;
  const HeadPredictor head(5, stats, o);
  double previous = std::numeric_limits<double>::infinity();
  for (double kappa = 1e-5; kappa < 10; kappa *= 1.5) {  // a fixed sample: strictly monotone
    const double r = head.predict(kappa).row_std;
    CHECK(r < previous);
    previous = r;
  }
  // In K the samples are nested (docs/study.md); checked on the unsaturated side of the threshold.
  for (double kappa : {0.03, 0.003}) {
    double last = 0;
    for (int K = 1; K <= 25; K += 2) {
      const double r = predict(K, kappa, stats, o).row_std;
      INFO("K = " << K << ", kappa = " << kappa);
      CHECK(r > last);
      last = r;
    }
  }
}

TEST_CASE("predictor: the minimum K and the maximum kappa against brute force", "[predictor]") {
  const BeliefStatistics stats = synthetic_statistics(calibrated(1));
  PredictorOptions o;
  o.queries = 512;
  for (double kappa : {0.003, 0.001, 0.0001}) {
    const std::optional<int> K = min_sharp_dim(kappa, stats, o);
    REQUIRE(K);
    int first = 1;  // the first K of the scan 1, 3, 5, … with a SHARP prediction
    while (predict(first, kappa, stats, o).row_std <= sharp_row_std) first += 2;
    CHECK(*K == first);
    const std::optional<double> largest = max_sharp_kappa(*K, stats, o);
    REQUIRE(largest);
    CHECK(*largest >= kappa);  // K is sharp at κ, so the largest sharp κ is at least κ
    CHECK(predict(*K, *largest, stats, o).row_std > sharp_row_std);
    CHECK(predict(*K, *largest * 1.002, stats, o).row_std <= sharp_row_std);
  }
  // The largest sharp κ of a scan on a grid of ratio 1.05 brackets the bisection's answer.
  const HeadPredictor head(3, stats, o);
  double grid = 1e-5;
  while (head.predict(grid * 1.05).row_std > sharp_row_std) grid *= 1.05;
  const double kappa3 = *max_sharp_kappa(3, stats, o);
  CHECK(kappa3 >= grid);
  CHECK(kappa3 < grid * 1.05);
  CHECK(*max_sharp_kappa(5, stats, o) > kappa3);  // more K stays sharp at a higher κ
}

TEST_CASE("predictor: the searches say 'never' and 'always'", "[predictor]") {
  const BeliefStatistics stats = synthetic_statistics(calibrated(1));
  PredictorOptions o;
  o.queries = 256;
  // N = 128: even one-hot rows stay below 0.10.
  PredictorOptions long_rows = o;
  long_rows.tokens = 128;
  CHECK_FALSE(min_sharp_dim(1e-4, stats, long_rows));
  CHECK_FALSE(max_sharp_kappa(19, stats, long_rows));
  // No spread in the beliefs: KL ≡ 0, attention uniform at every κ.
  CHECK_FALSE(max_sharp_kappa(3, BeliefStatistics{0, 0, 0, 0.5}, o));
  CHECK_FALSE(min_sharp_dim(1e-4, BeliefStatistics{0, 0, 0, 0.5}, o));
  // κ = 0.03 at N = 64: not even ℓ = 24 (K = 49) is sharp.
  CHECK_FALSE(min_sharp_dim(0.03, stats, o));
  CHECK(predict(49, 0.03, stats, o).row_std <= sharp_row_std);
  // N = 8: the uniform baseline itself exceeds 0.10 (short rows), so every K and κ is "sharp".
  PredictorOptions short_rows = o;
  short_rows.tokens = 8;
  CHECK(min_sharp_dim(10.0, stats, short_rows) == 1);
  CHECK(*max_sharp_kappa(1, stats, short_rows) == std::numeric_limits<double>::infinity());
}

TEST_CASE("predictor: estimate_statistics recovers the generating parameters", "[predictor]") {
  // 64 × 64 tokens × K components: sampling errors of about 1% on s² and η (2% for K = 1).
  const SyntheticOptions o = wide(64);
  const Beliefs<double> q = synthetic_beliefs(19, o);
  const BeliefStatistics truth = synthetic_statistics(o);
  for (int offset : {0, 14}) {  // an ℓ0 head, the ℓ2 head of the upstream spec
    const int K = offset == 0 ? 1 : 5;
    const BeliefStatistics e = estimate_statistics(q.view(), offset, K);
    CHECK(e.mu_variance == Approx(truth.mu_variance * (1 - 1.0 / o.tokens)).epsilon(0.05));  // centred per sequence
    CHECK(e.log_sigma_mean == Approx(truth.log_sigma_mean).margin(0.01));
    CHECK(e.log_sigma_std == Approx(truth.log_sigma_std).epsilon(0.04));
    CHECK(e.phi_std == Approx(truth.phi_std).epsilon(0.03));
  }
  // Full covariance blocks: the log-eigenvalues; a diagonal block gives the diagonal's estimate.
  Beliefs<double> full(q.batch, q.tokens, q.embed_dim, Covariance::full);
  full.mu = q.mu;
  full.phi = q.phi;
  for (int t = 0; t < q.batch * q.tokens; ++t)
    for (int e = 0; e < 19; ++e) full.sigma[(std::size_t(t) * 19 + e) * 19 + e] = q.sigma[std::size_t(t) * 19 + e];
  const BeliefStatistics d = estimate_statistics(q.view(), 14, 5), f = estimate_statistics(full.view(), 14, 5);
  CHECK(f.log_sigma_mean == Approx(d.log_sigma_mean).epsilon(1e-12));
  CHECK(f.log_sigma_std == Approx(d.log_sigma_std).epsilon(1e-12));
  CHECK(f.mu_variance == d.mu_variance);
  CHECK_THROWS_WITH(estimate_statistics(q.view(), 16, 5), Catch::Contains("'dim'"));
}

TEST_CASE("predictor: transport mixing rho", "[predictor]") {
  CHECK(transport_mixing(1, 0.48) == 1.0);
  CHECK(transport_mixing(7, 0.0) == Approx(1.0).epsilon(1e-12));  // Ω = I
  // Uniformly random ℓ = 1 rotations: the entries are coordinates of a random unit vector,
  // E x⁴ = 1/5, so ρ = 9·(1/5)/3 = 3/5 (4096 pairs: sampling error ≈ 0.5%).
  CHECK(transport_mixing(3, 100.0, 4096) == Approx(0.6).epsilon(0.02));
  // Mixing grows with ℓ: ρ falls towards ≈ 3/K.
  CHECK(transport_mixing(5, 0.48) < transport_mixing(3, 0.48));
  CHECK(transport_mixing(19, 0.48) == Approx(3.0 / 19).epsilon(0.1));
}

TEST_CASE("predictor: bad input throws InvalidArgument naming the argument", "[predictor]") {
  const BeliefStatistics stats = synthetic_statistics(calibrated(1));
  auto argument_of = [](auto&& call) {
    try {
      call();
    } catch (const InvalidArgument& e) {
      return e.argument();
    }
    return std::string("(nothing thrown)");
  };
  CHECK(argument_of([&] { predict(0, 0.01, stats); }) == "K");
  CHECK(argument_of([&] { predict(4, 0.01, stats); }) == "K");
  CHECK(argument_of([&] { predict(2 * max_supported_l + 3, 0.01, stats); }) == "K");
  CHECK(argument_of([&] { predict(3, 0.0, stats); }) == "kappa");
  CHECK(argument_of([&] { predict(3, -1.0, stats); }) == "kappa");
  CHECK(argument_of([&] { predict(3, std::numeric_limits<double>::quiet_NaN(), stats); }) == "kappa");
  CHECK(argument_of([&] { min_sharp_dim(0.0, stats); }) == "kappa");
  CHECK(argument_of([&] { max_sharp_kappa(-1, stats); }) == "K");
  PredictorOptions o;
  o.tokens = 1;
  CHECK(argument_of([&] { predict(3, 0.01, stats, o); }) == "tokens");
  CHECK_THROWS_WITH(predict(3, 0.01, stats, o), Catch::Contains("got 1"));
  o = PredictorOptions{};
  o.mask.mask_self = false;
  CHECK(argument_of([&] { predict(3, 0.01, stats, o); }) == "mask");
  o = PredictorOptions{};
  o.mask.alibi_slope = 0.1;
  CHECK(argument_of([&] { predict(3, 0.01, stats, o); }) == "mask");
  o = PredictorOptions{};
  o.queries = 0;
  CHECK(argument_of([&] { predict(3, 0.01, stats, o); }) == "queries");
  BeliefStatistics bad = stats;
  bad.mu_variance = -1;
  CHECK(argument_of([&] { predict(3, 0.01, bad); }) == "mu_variance");
  bad = stats;
  bad.log_sigma_std = std::numeric_limits<double>::infinity();
  CHECK(argument_of([&] { predict_kl(3, bad); }) == "log_sigma_std");
  CHECK(argument_of([&] { predict_head_average_kl({}, stats); }) == "dims");
}
