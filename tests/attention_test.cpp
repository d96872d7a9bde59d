// Tests of attention.hpp: the factorised CPU forward against a pair-by-pair float64 reference
// of (M3)–(M7), every mask option, the symmetries of math.md §8, float against double, the
// upstream parity fixture (§6) and bad input.
#include <gauge_attn/attention.hpp>
#include <gauge_attn/npy.hpp>
#include <gauge_attn/specs.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "test_support.hpp"

using namespace gauge_attn;
using Eigen::MatrixXd;
using Eigen::VectorXd;

namespace {

/// Allowed keys written out from the definitions, independently of mask.hpp.
bool allowed(const AttentionOptions& o, int i, int j, int n) {
  if (j >= n) return false;
  const auto& m = o.mask;
  auto in_window = [&](int k) {
    if (m.window == 0) return true;
    return m.causal ? (i - m.window < k) : (std::abs(i - k) <= m.window / 2);
  };
  auto base = [&](int k) { return (!m.causal || k <= i) && in_window(k); };
  if (!base(j)) return false;
  if (m.mask_self && j == i) {
    for (int k = 0; k < n; ++k)
      if (k != i && base(k)) return false;
  }
  return true;
}

struct Reference {
  std::vector<double> kl, beta, mu, sigma;  // layouts as AttentionResult
};

/// Pair-by-pair float64 evaluation of (M3)–(M7) with exact transport Ω_ij = R_i R_jᵀ.
template <class Spec>
Reference reference_forward(const Beliefs<double>& q, const AttentionOptions& o) {
  const int B = q.batch, N = q.tokens, E = Spec::embed_dim, H = Spec::num_heads;
  const auto v = q.view();
  Reference r;
  r.kl.assign(std::size_t(B) * H * N * N, 0);
  r.beta = r.kl;
  r.mu.assign(std::size_t(B) * N * E, 0);
  r.sigma.assign(std::size_t(B) * N * v.sigma_stride(), 0);
  for (int b = 0; b < B; ++b) {
    const int n = o.valid_lengths.empty() ? N : o.valid_lengths[b];
    for (int h = 0; h < H; ++h) {
      const HeadInfo hd = Spec::head(h);
      const int K = hd.dim;
      const double kappa = o.kappa.size() == 1 ? o.kappa[0] : o.kappa[h];
      auto R = [&](int i) {
        return o.identity_transport ? MatrixXd(MatrixXd::Identity(K, K)) : wigner_d(hd.l, v.frame(b, i));
      };
      for (int i = 0; i < n; ++i) {
        std::vector<double> logits(n, -std::numeric_limits<double>::infinity());
        for (int j = 0; j < n; ++j) {
          const MatrixXd Om = R(i) * R(j).transpose();
          const double kl = kl_direct(v.mean(b, i, hd.offset, K), v.covariance_block(b, i, hd.offset, K),
                                      v.mean(b, j, hd.offset, K), v.covariance_block(b, j, hd.offset, K), Om);
          r.kl[((std::size_t(b) * H + h) * N + i) * N + j] = kl;
          if (allowed(o, i, j, n)) logits[j] = -kl / kappa + o.mask.alibi_slope * (i - j);
        }
        const double top = *std::max_element(logits.begin(), logits.end());
        double total = 0;
        for (double x : logits) total += std::exp(x - top);
        VectorXd m = VectorXd::Zero(K);
        MatrixXd second = MatrixXd::Zero(K, K);
        for (int j = 0; j < n; ++j) {
          const double beta = std::exp(logits[j] - top) / total;
          r.beta[((std::size_t(b) * H + h) * N + i) * N + j] = beta;
          const MatrixXd Om = R(i) * R(j).transpose();
          const VectorXd mt = Om * v.mean(b, j, hd.offset, K);
          m += beta * mt;
          second += beta * (Om * v.covariance_block(b, j, hd.offset, K) * Om.transpose() + mt * mt.transpose());
        }
        const MatrixXd C = second - m * m.transpose();  // (M7)
        const std::size_t t = std::size_t(b) * N + i;
        for (int k = 0; k < K; ++k) r.mu[t * E + hd.offset + k] = m(k);
        for (int p = 0; p < K; ++p)
          for (int c = 0; c < K; ++c) {
            if (q.covariance == Covariance::diagonal) {
              if (p == c) r.sigma[t * E + hd.offset + p] = C(p, p);
            } else {
              r.sigma[(t * E + hd.offset + p) * E + hd.offset + c] = C(p, c);
            }
          }
      }
    }
  }
  return r;
}

template <class A, class B>
double max_abs_diff(const A& a, const B& b) {
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (std::size_t k = 0; k < a.size(); ++k) worst = std::max(worst, std::abs(double(a[k]) - double(b[k])));
  return worst;
}

template <class Spec>
void check_against_reference(std::mt19937& rng, Covariance kind, const AttentionOptions& base, int B, int N) {
  const auto q = testing::random_beliefs<Spec>(rng, B, N, kind);
  AttentionOptions o = base;
  o.return_matrices = true;
  o.covariance_message = true;
  const auto r = attention_forward<Spec>(q.view(), o);
  const auto ref = reference_forward<Spec>(q, o);
  // Double throughout; the factorised KL subtracts terms of size ~|ν|²‖Λ‖ ≈ 10², so 1e-9
  // absolute leaves three orders of magnitude of headroom over the rounding seen (~1e-13).
  CHECK(max_abs_diff(r.kl, ref.kl) < 1e-9);
  CHECK(max_abs_diff(r.beta, ref.beta) < 1e-10);
  CHECK(max_abs_diff(r.mu, ref.mu) < 1e-10);
  CHECK(max_abs_diff(r.sigma, ref.sigma) < 1e-9);
}

}  // namespace

TEMPLATE_TEST_CASE("attention matches the pair-by-pair reference for every named spec", "[attention]",
                   specs::Upstream, specs::MoreTensor, specs::HigherRank, specs::Scaled, specs::SingleL9) {
  std::mt19937 rng(11);
  AttentionOptions o;
  o.mask.causal = true;
  o.kappa = {0.9};
  const int N = std::is_same_v<TestType, specs::Scaled> ? 5 : 9;
  for (Covariance kind : {Covariance::diagonal, Covariance::full}) {
    INFO("covariance " << (kind == Covariance::full ? "full" : "diagonal"));
    check_against_reference<TestType>(rng, kind, o, 2, N);
  }
}

TEST_CASE("attention matches the reference under every mask option", "[attention][mask]") {
  std::mt19937 rng(12);
  for (const auto& o : testing::mask_variants(0.7, 3, 4, -0.3, -0.2)) {
    INFO("causal " << o.mask.causal << " self " << o.mask.mask_self << " window " << o.mask.window << " alibi "
                   << o.mask.alibi_slope << " identity " << o.identity_transport);
    for (Covariance kind : {Covariance::diagonal, Covariance::full})
      check_against_reference<specs::Upstream>(rng, kind, o, 2, 11);
  }
}

TEST_CASE("attention takes one temperature per head", "[attention]") {
  std::mt19937 rng(13);
  AttentionOptions o;
  o.mask.causal = true;
  for (int h = 0; h < specs::Upstream::num_heads; ++h) o.kappa.push_back(0.2 + 0.3 * h);
  o.kappa.erase(o.kappa.begin());
  check_against_reference<specs::Upstream>(rng, Covariance::full, o, 1, 10);
}

TEST_CASE("valid lengths equal running the truncated sequence, and padded rows are zero", "[attention]") {
  std::mt19937 rng(14);
  using Spec = specs::Upstream;
  const auto q = testing::random_beliefs<Spec>(rng, 2, 12, Covariance::full);
  AttentionOptions o;
  o.mask.causal = true;
  o.covariance_message = true;
  o.return_matrices = true;
  o.valid_lengths = {12, 7};
  auto padded = q;  // padding may hold anything: it is never read
  const std::size_t E = Spec::embed_dim;
  for (std::size_t k = (12 + 7) * E; k < 24 * E; ++k) padded.mu[k] = std::numeric_limits<double>::quiet_NaN();
  for (std::size_t k = (12 + 7) * E * E; k < 24 * E * E; ++k) padded.sigma[k] = 0.0;
  const auto r = attention_forward<Spec>(padded.view(), o);
  check_against_reference<Spec>(rng, Covariance::diagonal, o, 2, 12);
  // Sequence 1 alone, cut to 7 tokens.
  Beliefs<double> cut(1, 7, Spec::embed_dim, Covariance::full);
  const auto v = q.view();
  for (int i = 0; i < 7; ++i) {
    std::copy_n(v.mu + v.token_index(1, i) * Spec::embed_dim, Spec::embed_dim, cut.mu.begin() + i * Spec::embed_dim);
    std::copy_n(v.phi + v.token_index(1, i) * 3, 3, cut.phi.begin() + i * 3);
    std::copy_n(v.sigma + v.token_index(1, i) * v.sigma_stride(), v.sigma_stride(),
                cut.sigma.begin() + i * v.sigma_stride());
  }
  AttentionOptions oc = o;
  oc.valid_lengths.clear();
  const auto rc = attention_forward<Spec>(cut.view(), oc);
  for (int i = 0; i < 12; ++i)
    for (int e = 0; e < Spec::embed_dim; ++e) {
      const double got = r.mu[(std::size_t(12) + i) * Spec::embed_dim + e];
      if (i < 7)
        CHECK(got == Approx(rc.mu[std::size_t(i) * Spec::embed_dim + e]).margin(1e-12));
      else
        CHECK(got == 0.0);
    }
  for (int h = 0; h < Spec::num_heads; ++h)
    CHECK(r.statistics(1, h).row_std == Approx(rc.statistics(0, h).row_std).margin(1e-12));
}

TEST_CASE("attention rows sum to one over the allowed keys under every mask", "[attention][mask]") {
  std::mt19937 rng(15);
  using Spec = specs::HigherRank;
  const int N = 17;
  const auto q = testing::random_beliefs<Spec>(rng, 1, N, Covariance::diagonal);
  for (auto o : testing::mask_variants(0.7, 3, 4, -0.3, -0.2)) {
    o.return_matrices = true;
    o.valid_lengths = {13};
    const auto r = attention_forward<Spec>(q.view(), o);
    for (int h = 0; h < Spec::num_heads; ++h)
      for (int i = 0; i < 13; ++i) {
        double sum = 0;
        for (int j = 0; j < N; ++j) {
          const double beta = r.beta[r.pair_index(0, h, i, j)];
          if (!allowed(o, i, j, 13)) CHECK(beta == 0.0);
          sum += beta;
        }
        CHECK(sum == Approx(1.0).margin(1e-13));
      }
  }
}

TEST_CASE("KL is non-negative and vanishes on the diagonal", "[attention][symmetry]") {
  std::mt19937 rng(16);
  using Spec = specs::Scaled;
  for (Covariance kind : {Covariance::diagonal, Covariance::full}) {
    const auto q = testing::random_beliefs<Spec>(rng, 1, 8, kind, 2.5);
    AttentionOptions o;
    o.return_matrices = true;
    const auto r = attention_forward<Spec>(q.view(), o);
    for (int h = 0; h < Spec::num_heads; ++h)
      for (int i = 0; i < 8; ++i)
        for (int j = 0; j < 8; ++j) {
          const double kl = r.kl[r.pair_index(0, h, i, j)];
          // KL_ii cancels terms of size ~10 in (M8): 1e-11 absolute is rounding.
          if (i == j)
            CHECK(std::abs(kl) < 1e-11);
          else
            CHECK(kl > 0.0);
        }
  }
}

TEST_CASE("local gauge transformations leave KL and β unchanged and rotate the messages", "[attention][symmetry]") {
  // math.md §8: μ_i → D(g_i)μ_i, Σ_i → D(g_i)Σ_iD(g_i)ᵀ, R_i → D(g_i)R_i (φ'_i = log(exp g_i exp φ_i)).
  std::mt19937 rng(17);
  std::normal_distribution<double> normal(0.0, 1.5);
  using Spec = specs::MoreTensor;
  const int N = 10, E = Spec::embed_dim;
  for (bool global : {false, true})
    for (Covariance kind : {Covariance::diagonal, Covariance::full}) {
      INFO("global " << global << " full " << (kind == Covariance::full));
      // The transformed beliefs of a diagonal input are full in general: test them as full.
      const auto q0 = testing::random_beliefs<Spec>(rng, 1, N, kind);
      Beliefs<double> q(1, N, E, Covariance::full), g(1, N, E, Covariance::full);
      Eigen::Vector3d shared(normal(rng), normal(rng), normal(rng));
      std::vector<Eigen::Vector3d> gs(N);
      for (int i = 0; i < N; ++i) gs[i] = global ? shared : Eigen::Vector3d(normal(rng), normal(rng), normal(rng));
      const auto v0 = q0.view();
      for (int i = 0; i < N; ++i) {
        const Eigen::Vector3d phi = v0.frame(0, i), phi_g = so3_compose(gs[i], phi);
        for (int a = 0; a < 3; ++a) {
          q.phi[i * 3 + a] = phi(a);
          g.phi[i * 3 + a] = phi_g(a);
        }
        for (int h = 0; h < Spec::num_heads; ++h) {
          const HeadInfo hd = Spec::head(h);
          const MatrixXd D = wigner_d(hd.l, gs[i]);
          const VectorXd mu = v0.mean(0, i, hd.offset, hd.dim);
          const MatrixXd S = v0.covariance_block(0, i, hd.offset, hd.dim);
          const VectorXd gmu = D * mu;
          const MatrixXd gS = D * S * D.transpose();
          for (int r = 0; r < hd.dim; ++r) {
            q.mu[i * E + hd.offset + r] = mu(r);
            g.mu[i * E + hd.offset + r] = gmu(r);
            for (int c = 0; c < hd.dim; ++c) {
              q.sigma[(std::size_t(i) * E + hd.offset + r) * E + hd.offset + c] = S(r, c);
              g.sigma[(std::size_t(i) * E + hd.offset + r) * E + hd.offset + c] = gS(r, c);
            }
          }
        }
      }
      AttentionOptions o;
      o.mask.causal = true;
      o.return_matrices = true;
      o.covariance_message = true;
      o.kappa = {0.8};
      const auto r = attention_forward<Spec>(q.view(), o);
      const auto rg = attention_forward<Spec>(g.view(), o);
      CHECK(max_abs_diff(r.kl, rg.kl) < 1e-9);
      CHECK(max_abs_diff(r.beta, rg.beta) < 1e-10);
      for (int i = 0; i < N; ++i)
        for (int h = 0; h < Spec::num_heads; ++h) {
          const HeadInfo hd = Spec::head(h);
          const MatrixXd D = wigner_d(hd.l, gs[i]);
          const VectorXd m = Eigen::Map<const VectorXd>(&r.mu[i * E + hd.offset], hd.dim);
          const VectorXd mg = Eigen::Map<const VectorXd>(&rg.mu[i * E + hd.offset], hd.dim);
          const VectorXd rotated = D * m - mg;
          CHECK(rotated.cwiseAbs().maxCoeff() < 1e-10);
          MatrixXd C(hd.dim, hd.dim), Cg(hd.dim, hd.dim);
          for (int a = 0; a < hd.dim; ++a)
            for (int c = 0; c < hd.dim; ++c) {
              C(a, c) = r.sigma[(std::size_t(i) * E + hd.offset + a) * E + hd.offset + c];
              Cg(a, c) = rg.sigma[(std::size_t(i) * E + hd.offset + a) * E + hd.offset + c];
            }
          CHECK((D * C * D.transpose() - Cg).cwiseAbs().maxCoeff() < 1e-9);
        }
    }
}

TEST_CASE("scalar heads ignore the frames", "[attention][symmetry]") {
  std::mt19937 rng(18);
  using Spec = IrrepSpec<Irrep<0, 3>>;
  auto q = testing::random_beliefs<Spec>(rng, 2, 9, Covariance::diagonal);
  AttentionOptions o;
  o.mask.causal = true;
  const auto r = attention_forward<Spec>(q.view(), o);
  for (auto& x : q.phi) x = 3 * x + 1;
  const auto r2 = attention_forward<Spec>(q.view(), o);
  CHECK(max_abs_diff(r.mu, r2.mu) < 1e-14);
}

TEST_CASE("float computes what double computes", "[attention][precision]") {
  std::mt19937 rng(19);
  using Spec = specs::HigherRank;
  for (Covariance kind : {Covariance::diagonal, Covariance::full}) {
    const auto q = testing::random_beliefs<Spec>(rng, 2, 40, kind);
    AttentionOptions o;
    o.mask.causal = true;
    o.kappa = {2.0};
    o.covariance_message = true;
    o.return_matrices = true;
    const auto rd = attention_forward<Spec>(q.view(), o);
    const auto rf = attention_forward<Spec>(q.cast<float>().view(), o);
    // Inputs rounded to float (relative 6e-8) move KL values of size ~10–50 by ~1e-5, so β
    // and the messages by ~1e-5 relative: the tolerances are 10× that.
    double num = 0, den = 0;
    for (std::size_t k = 0; k < rd.mu.size(); ++k) {
      num += std::pow(rd.mu[k] - rf.mu[k], 2);
      den += std::pow(rd.mu[k], 2);
    }
    CHECK(std::sqrt(num / den) < 1e-4);
    CHECK(max_abs_diff(rd.beta, rf.beta) < 1e-4);
    double worst_kl = 0;
    for (std::size_t k = 0; k < rd.kl.size(); ++k)
      worst_kl = std::max(worst_kl, std::abs(rd.kl[k] - rf.kl[k]) / (1 + std::abs(rd.kl[k])));
    CHECK(worst_kl < 1e-4);
  }
}

TEST_CASE("row statistics and KL statistics match the returned matrices", "[attention][diagnostics]") {
  std::mt19937 rng(20);
  using Spec = specs::Upstream;
  const int N = 16;
  for (Mode mode : {Mode::exact, Mode::upstream})
    for (bool self : {false, true}) {
      INFO("upstream mode " << (mode == Mode::upstream) << " mask_self " << self);
      const auto q = testing::random_beliefs<Spec>(rng, 2, N, Covariance::diagonal);
      AttentionOptions o;
      o.mode = mode;
      o.mask.causal = true;
      o.mask.mask_self = self;
      o.kappa = {0.3};
      o.return_matrices = true;
      o.kl_statistics = true;
      const auto r = attention_forward<Spec>(q.view(), o);
      double kl_sum = 0, kl_sq = 0;
      double kl_min = 1e300, kl_max = -1e300;
      for (int i = 0; i < N; ++i)
        for (int j = 0; j < N; ++j) {
          if (i == j) continue;
          double avg = 0;
          for (int h = 0; h < Spec::num_heads; ++h) avg += r.kl[r.pair_index(0, h, i, j)] / Spec::num_heads;
          kl_sum += avg;
          kl_sq += avg * avg;
          kl_min = std::min(kl_min, avg);
          kl_max = std::max(kl_max, avg);
        }
      const double count = N * (N - 1.0), mean = kl_sum / count;
      CHECK(r.kl_statistics.count == N * (N - 1));
      CHECK(r.kl_statistics.mean == Approx(mean).epsilon(1e-12));
      CHECK(r.kl_statistics.std == Approx(std::sqrt(kl_sq / count - mean * mean)).epsilon(1e-8));
      CHECK(r.kl_statistics.min == Approx(kl_min).epsilon(1e-12));
      CHECK(r.kl_statistics.max == Approx(kl_max).epsilon(1e-12));
      for (int b = 0; b < 2; ++b)
        for (int h = 0; h < Spec::num_heads; ++h) {
          // Upstream row_std: population std over j ≠ i of the stored β, mean over rows.
          double row_std = 0;
          for (int i = 0; i < N; ++i) {
            double s = 0, s2 = 0;
            for (int j = 0; j < N; ++j)
              if (j != i) s += r.beta[r.pair_index(b, h, i, j)];
            const double m = s / (N - 1);
            for (int j = 0; j < N; ++j)
              if (j != i) s2 += std::pow(r.beta[r.pair_index(b, h, i, j)] - m, 2);
            row_std += std::sqrt(s2 / (N - 1)) / N;
          }
          CHECK(r.statistics(b, h).row_std == Approx(row_std).epsilon(1e-9));
          CHECK(r.statistics(b, h).entropy > 0.0);
          CHECK(r.statistics(b, h).entropy <= 1.0 + 1e-12);
        }
    }
}

TEST_CASE("the upstream-compatible mode reproduces the upstream parity fixture", "[attention][upstream]") {
  using Spec = specs::Upstream;
  const auto mu = read_npy(testing::fixture("mu.npy"));
  const auto phi = read_npy(testing::fixture("phi.npy"));
  REQUIRE(mu.shape == std::vector<std::size_t>{1, 16, 19});
  struct Case {
    const char* name;
    bool full, taylor, self, covariance;
    double kl_tol, beta_tol, mu_tol;
  };
  // Tolerances from the fixture's README: 1e-10 for the diagonal cases; full mode 1e-4 in KL
  // and 1e-5 in β (the upstream CPU path regularised with its own tiny epsilons). Messages of
  // the full case inherit β's tolerance.
  const Case cases[] = {{"diag_exact", false, false, true, true, 1e-10, 1e-10, 1e-10},
                        {"diag_taylor", false, true, true, false, 1e-10, 1e-10, 1e-10},
                        {"full_exact", true, false, false, true, 1e-4, 1e-5, 1e-5}};
  for (const Case& c : cases) {
    INFO(c.name);
    Beliefs<double> q(1, 16, 19, c.full ? Covariance::full : Covariance::diagonal);
    q.mu = mu.data;
    q.phi = phi.data;
    q.sigma = read_npy(testing::fixture(c.full ? "sigma_full.npy" : "sigma_diag.npy")).data;
    AttentionOptions o;
    o.mode = Mode::upstream;
    o.exponential = c.taylor ? UpstreamExponential::taylor4 : UpstreamExponential::pade;
    o.kappa = {0.43};
    o.mask.causal = true;
    o.mask.mask_self = c.self;
    o.covariance_message = c.covariance;
    o.return_matrices = true;
    const auto r = attention_forward<Spec>(q.view(), o);
    const std::string n = c.name;
    CHECK(max_abs_diff(r.kl, read_npy(testing::fixture(n + "_kl.npy")).data) < c.kl_tol);
    CHECK(max_abs_diff(r.beta, read_npy(testing::fixture(n + "_beta.npy")).data) < c.beta_tol);
    CHECK(max_abs_diff(r.mu, read_npy(testing::fixture(n + "_mu_out.npy")).data) < c.mu_tol);
    if (c.covariance)
      CHECK(max_abs_diff(r.sigma, read_npy(testing::fixture(n + "_sigma_out.npy")).data) < c.mu_tol);
  }
}

TEST_CASE("the exact mode differs from the upstream diagonal approximation as math.md §6 says",
          "[attention][upstream]") {
  Beliefs<double> q(1, 16, 19, Covariance::diagonal);
  q.mu = read_npy(testing::fixture("mu.npy")).data;
  q.phi = read_npy(testing::fixture("phi.npy")).data;
  q.sigma = read_npy(testing::fixture("sigma_diag.npy")).data;
  AttentionOptions o;
  o.kappa = {0.43};
  o.mask.causal = true;
  o.return_matrices = true;
  const auto exact = attention_forward<specs::Upstream>(q.view(), o);
  o.mode = Mode::upstream;
  const auto upstream = attention_forward<specs::Upstream>(q.view(), o);
  double scalar_heads = 0, other_heads = 0;
  for (int h = 0; h < 9; ++h)
    for (int i = 0; i < 16; ++i)
      for (int j = 0; j < 16; ++j) {
        const double d = std::abs(exact.kl[exact.pair_index(0, h, i, j)] - upstream.kl[exact.pair_index(0, h, i, j)]);
        (h < 5 ? scalar_heads : other_heads) = std::max(h < 5 ? scalar_heads : other_heads, d);
      }
  CHECK(scalar_heads < 1e-12);  // ℓ0: transport is trivial, the approximation is exact
  CHECK(other_heads > 0.5);     // ℓ ≥ 1: up to ~1.8 nats on upstream inputs (math.md §6)
  CHECK(other_heads < 3.0);
}

TEST_CASE("bad input raises an error naming the argument", "[attention][errors]") {
  using Spec = specs::Upstream;
  std::mt19937 rng(21);
  const auto good = testing::random_beliefs<Spec>(rng, 1, 6, Covariance::diagonal);
  const auto good_full = testing::random_beliefs<Spec>(rng, 1, 6, Covariance::full);
  AttentionOptions o;
  auto fails_with = [](auto&& run, const std::string& argument) {
    try {
      run();
    } catch (const InvalidArgument& e) {
      CHECK(e.argument() == argument);
      CHECK(std::string(e.what()).find(argument) != std::string::npos);
      return;
    }
    FAIL("no InvalidArgument for " << argument);
  };
  auto run_with = [&](const Beliefs<double>& q, const AttentionOptions& opt) {
    return [&q, opt] { attention_forward<Spec>(q.view(), opt); };
  };
  {
    auto q = good;
    q.sigma[7] = 0.0;
    fails_with(run_with(q, o), "sigma");
    q.sigma[7] = -0.5;
    fails_with(run_with(q, o), "sigma");
  }
  {
    auto q = good;
    q.mu[3] = std::numeric_limits<double>::quiet_NaN();
    fails_with(run_with(q, o), "mu");
  }
  {
    auto q = good;
    q.phi[4] = std::numeric_limits<double>::infinity();
    fails_with(run_with(q, o), "phi");
  }
  {
    auto q = good_full;  // head 8 (ℓ2) of token 2 gets a negative eigenvalue
    const int E = Spec::embed_dim, off = Spec::head(8).offset;
    for (int r = 0; r < 5; ++r)
      for (int c = 0; c < 5; ++c) q.sigma[(std::size_t(2) * E + off + r) * E + off + c] = (r == c ? 1.0 : 0.0);
    q.sigma[(std::size_t(2) * E + off + 1) * E + off + 1] = -0.1;
    fails_with(run_with(q, o), "sigma");
  }
  {
    auto q = good_full;  // an asymmetric block (head 6, ℓ1, token 4): both modes would read it differently
    const int E = Spec::embed_dim, off = Spec::head(6).offset;
    q.sigma[(std::size_t(4) * E + off + 0) * E + off + 2] += 0.25;
    fails_with(run_with(q, o), "sigma");
    auto up = o;
    up.mode = Mode::upstream;
    fails_with(run_with(q, up), "sigma");
  }
  {
    auto q = good_full;  // a non-finite covariance entry
    q.sigma[5] = std::numeric_limits<double>::quiet_NaN();
    fails_with(run_with(q, o), "sigma");
  }
  for (double k : {0.0, -1.0, std::numeric_limits<double>::infinity()}) {
    auto bad = o;
    bad.kappa = {k};
    fails_with(run_with(good, bad), "kappa");
  }
  {
    auto bad = o;
    bad.kappa = {1.0, 2.0};
    fails_with(run_with(good, bad), "kappa");
    bad = o;
    bad.valid_lengths = {0};
    fails_with(run_with(good, bad), "valid_lengths");
    bad.valid_lengths = {7};
    fails_with(run_with(good, bad), "valid_lengths");
    bad.valid_lengths = {3, 3};
    fails_with(run_with(good, bad), "valid_lengths");
    bad = o;
    bad.mask.window = -2;
    fails_with(run_with(good, bad), "window");
    bad = o;
    bad.mask.alibi_slope = std::numeric_limits<double>::quiet_NaN();
    fails_with(run_with(good, bad), "alibi_slope");
  }
  {
    auto view = good.view();
    view.embed_dim = 18;
    fails_with([&] { attention_forward<Spec>(view, o); }, "embed_dim");
    view = good.view();
    view.tokens = 0;
    fails_with([&] { attention_forward<Spec>(view, o); }, "tokens");
    view = good.view();
    view.batch = 0;
    fails_with([&] { attention_forward<Spec>(view, o); }, "batch");
    view = good.view();
    view.mu = nullptr;
    fails_with([&] { attention_forward<Spec>(view, o); }, "mu");
  }
  {
    auto q = good;  // the upstream mode checks the same things
    q.sigma[2] = -1.0;
    auto up = o;
    up.mode = Mode::upstream;
    fails_with(run_with(q, up), "sigma");
  }
}
