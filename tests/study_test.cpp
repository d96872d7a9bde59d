// Tests of gauge_attn/study/study.hpp: the synthetic beliefs match the upstream diversity (math.md §7),
// the sweep gives one row per (κ, mode, head), its summaries and the real-data loader.
#include <gauge_attn/study/study.hpp>

#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

using namespace gauge_attn;
using namespace gauge_attn::study;

TEST_CASE("study: synthetic beliefs match the upstream diversity at B = 24, N = 64, E = 19", "[study]") {
  // Sequence 0 has 64 tokens: its φ_std is a std of 64 draws per component (relative sampling std
  // 1/√128 ≈ 9% per component, ≈ 5% for the mean of 3), its μ_dist a mean over 4032 correlated pairs
  // (≈ 3%): tolerances of about 2 sampling std, checked on several seeds.
  for (std::uint32_t seed : {1u, 2u, 3u, 20251227u}) {
    SyntheticOptions o;
    o.seed = seed;
    const Beliefs<double> q = synthetic_beliefs(19, o);
    REQUIRE(q.batch == 24);
    REQUIRE(q.tokens == 64);
    const Diversity d = diversity(q.view(), KlStatistics{});
    CHECK(d.mu_dist == Approx(UpstreamDiversity::mu_dist).margin(0.04));
    CHECK(d.phi_std == Approx(UpstreamDiversity::phi_std).margin(0.05));
    CHECK(d.sigma_mean == Approx(UpstreamDiversity::sigma_mean).margin(0.02));
    CHECK(d.sigma_min >= UpstreamDiversity::sigma_min);
    CHECK(d.sigma_max <= UpstreamDiversity::sigma_max);
  }
}

TEST_CASE("study: mu_scale_for gives the expected mu_dist", "[study]") {
  // Over many independent pairs the mean distance is the expectation the scale was solved for.
  for (int E : {1, 3, 19, 108}) {
    SyntheticOptions o;
    o.batch = 1;
    o.tokens = 1000;
    o.mu_scale = mu_scale_for(0.5, E);
    const Diversity d = diversity(synthetic_beliefs(E, o).view(), KlStatistics{});
    CHECK(d.mu_dist == Approx(0.5).epsilon(0.05));
  }
}

TEST_CASE("study: the KL of the synthetic upstream-spec beliefs has the upstream scale", "[study]") {
  // Not a calibration target, a consequence: the upstream KL mean 0.0192 within a factor 2.
  SweepResult r;
  sweep_spec("upstream", synthetic_beliefs(19).view(), {0.0086}, KappaScaling::fixed, r);
  REQUIRE(r.diversity.size() == 2);
  for (const DiversityRow& d : r.diversity) {
    CHECK(d.diversity.kl.mean > UpstreamDiversity::kl_mean / 2);
    CHECK(d.diversity.kl.mean < UpstreamDiversity::kl_mean * 2);
    CHECK(d.diversity.kl.count == 64 * 63);
  }
}

TEST_CASE("study: the sweep of a tiny case has one row per kappa, mode and head", "[study]") {
  SyntheticOptions o;
  o.batch = 2;
  o.tokens = 7;
  const Beliefs<double> q = synthetic_beliefs(19, o);
  const std::vector<double> kappas = {1e6, 0.0086};
  SweepResult r;
  sweep_spec("upstream", q.view(), kappas, KappaScaling::embed_dim, r);
  REQUIRE(r.heads.size() == 2 * 2 * 9);
  REQUIRE(r.diversity.size() == 2);
  CHECK(r.diversity[0].mode == Mode::exact);
  CHECK(r.diversity[1].mode == Mode::upstream);
  for (std::size_t i = 0; i < r.heads.size(); ++i) {
    const HeadRow& row = r.heads[i];
    CHECK(row.spec == "upstream");
    CHECK(row.mode == (i < 18 ? Mode::exact : Mode::upstream));
    CHECK(row.kappa_base == kappas[(i / 9) % 2]);
    CHECK(row.kappa == Approx(row.kappa_base * 19 / 11.0));
    CHECK(row.head.head == int(i % 9));
    CHECK(row.head.l == specs::Upstream::head(int(i % 9)).l);
    CHECK(row.head.rows.uniform_row_std > 0);
    if (row.kappa_base == 1e6) {  // κ → ∞: uniform attention, the baseline itself
      CHECK(row.head.rows.entropy == Approx(1).margin(1e-6));
      CHECK(row.head.rows.row_std == Approx(row.head.rows.uniform_row_std).margin(1e-6));
    }
  }
  // ℓ0 heads: transport is trivial and the diagonal approximation exact (math.md §6).
  for (std::size_t i = 0; i < 18; ++i)
    if (r.heads[i].head.l == 0)
      CHECK(r.heads[i].head.rows.row_std == Approx(r.heads[18 + i].head.rows.row_std).margin(1e-6));

  const std::vector<SpinSummary> summary = summarise_by_spin(r.heads);
  REQUIRE(summary.size() == 2 * 2 * 3);
  for (const SpinSummary& s : summary) {
    CHECK(s.heads == (s.l == 0 ? 5 : s.l == 1 ? 3 : 1));
    CHECK(s.uniform + s.medium + s.sharp == s.heads);
  }
  CHECK(summary[1].row_std == Approx((r.heads[5].head.rows.row_std + r.heads[6].head.rows.row_std +
                                      r.heads[7].head.rows.row_std) / 3));
}

TEST_CASE("study: the KL per head dimension and the attention maps of sequence 0", "[study]") {
  SyntheticOptions o;
  o.batch = 3;
  o.tokens = 9;
  const Beliefs<double> q = synthetic_beliefs(19, o);
  SweepResult r;
  int runs = 0;
  sweep_spec("upstream", q.view(), {0.43, 0.0086}, KappaScaling::embed_dim, r, 0.02, [&] { ++runs; });
  CHECK(runs == int(sweep_runs(2)));
  REQUIRE(r.kl_by_dim.size() == 2 * 3);
  REQUIRE(r.maps.size() == 2);
  for (std::size_t m = 0; m < 2; ++m) {
    // The [DIVERSITY] KL averages the heads pair by pair over the same pairs: its mean is the
    // head-weighted mean of the per-ℓ means (to rounding).
    double weighted = 0;
    for (std::size_t k = 3 * m; k < 3 * m + 3; ++k) {
      const KlByDim& row = r.kl_by_dim[k];
      CHECK(row.mode == r.diversity[m].mode);
      CHECK(row.l == int(k % 3));
      CHECK(row.heads == (row.l == 0 ? 5 : row.l == 1 ? 3 : 1));
      CHECK(row.kl.count == row.heads * 9 * 8);
      CHECK(row.kl.min >= 0);
      CHECK(row.kl.std > 0);
      weighted += row.heads * row.kl.mean / 9;
    }
    CHECK(weighted == Approx(r.diversity[m].diversity.kl.mean).epsilon(1e-9));

    // β of every head of sequence 0 at κ base 0.02: a distribution over the allowed keys of each
    // row, and nothing (exact) or the upstream floor 1e-8 (upstream) on the masked ones.
    const AttentionMaps& maps = r.maps[m];
    CHECK(maps.mode == r.diversity[m].mode);
    CHECK(maps.kappa == Approx(0.02 * 19 / 11.0));
    REQUIRE(maps.beta.size() == 9u * 9 * 9);
    for (int h = 0; h < 9; ++h) {
      CHECK(maps.l[h] == specs::Upstream::head(h).l);
      for (int i = 0; i < 9; ++i) {
        const KeyRange keys = key_range(maps.mask, i, 9);
        double allowed = 0;
        for (int j = 0; j < 9; ++j) {
          if (keys.allows(j))
            allowed += maps.at(h, i, j);
          else
            CHECK(maps.at(h, i, j) <= 1e-8);
        }
        CHECK(allowed == Approx(1).margin(1e-6));  // upstream: the 1e-8 floor moves it by < 1e-7
      }
    }
  }
  // ℓ0 heads: the two modes compute the same KL (trivial transport, exact diagonal, math.md §6).
  CHECK(r.kl_by_dim[0].kl.mean == Approx(r.kl_by_dim[3].kl.mean).epsilon(1e-9));
  CHECK(r.kl_by_dim[0].kl.std == Approx(r.kl_by_dim[3].kl.std).epsilon(1e-9));
}

TEST_CASE("study: specs are chosen by name or inferred from the embed dim", "[study]") {
  using V = std::vector<std::string>;
  CHECK(specs_for_embed_dim({}, 41) == V{"higher-rank"});
  CHECK(specs_for_embed_dim({"all"}, 108) == V{"scaled"});
  CHECK(specs_for_embed_dim({"single-l9"}, 19) == V{"single-l9"});
  CHECK_THROWS_WITH(specs_for_embed_dim({"all"}, 19), Catch::Contains("fits several specs"));
  CHECK_THROWS_WITH(specs_for_embed_dim({}, 20), Catch::Contains("no named spec has E = 20"));
  CHECK_THROWS_WITH(specs_for_embed_dim({"upstream"}, 41), Catch::Contains("'upstream' has E = 19"));
  CHECK_THROWS_WITH(specs_for_embed_dim({"nope"}, 41), Catch::Contains("unknown spec name"));
  CHECK(describe_spec("upstream") == "\u21130\u00d75 \u21131\u00d73 \u21132\u00d71, E = 19, 9 heads");
}

TEST_CASE("study: load_beliefs reads float32 and float64 files and rejects bad ones", "[study]") {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "gauge_attn_study_test";
  std::filesystem::create_directories(dir);
  const std::string mu = (dir / "mu.npy").string(), sigma = (dir / "sigma.npy").string(),
                    phi = (dir / "phi.npy").string(), bad = (dir / "bad.npy").string();
  SyntheticOptions o;
  o.batch = 2;
  o.tokens = 3;
  const Beliefs<double> q = synthetic_beliefs(19, o);
  const std::vector<float> mu32(q.mu.begin(), q.mu.end());
  write_npy(mu, mu32.data(), {2, 3, 19});
  write_npy(sigma, q.sigma.data(), {2, 3, 19});
  write_npy(phi, q.phi.data(), {2, 3, 3});
  const Beliefs<double> loaded = load_beliefs(mu, sigma, phi);
  CHECK(loaded.covariance == Covariance::diagonal);
  CHECK(loaded.sigma == q.sigma);
  CHECK(loaded.mu[5] == double(mu32[5]));

  write_npy(bad, q.phi.data(), {2, 9});
  CHECK_THROWS_WITH(load_beliefs(mu, sigma, bad), Catch::Contains("phi must have shape (B, N, 3)"));
  CHECK_THROWS_WITH(load_beliefs(mu, bad, phi), Catch::Contains("sigma must have shape"));
  std::vector<double> nan_phi = q.phi;
  nan_phi[4] = std::numeric_limits<double>::infinity();
  write_npy(bad, nan_phi.data(), {2, 3, 3});
  CHECK_THROWS_WITH(load_beliefs(mu, sigma, bad), Catch::Contains("non-finite value inf at flat index 4"));
  std::vector<double> negative = q.sigma;
  negative[7] = -1;
  write_npy(bad, negative.data(), {2, 3, 19});
  CHECK_THROWS_WITH(load_beliefs(mu, bad, phi), Catch::Contains("variance -1 <= 0"));
  CHECK_THROWS_AS(load_beliefs(mu, (dir / "missing.npy").string(), phi), NpyError);
  std::filesystem::remove_all(dir);
}
