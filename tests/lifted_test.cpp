// Tests of gauge_attn/lifted.hpp: the pull-back to the identity frame and the lifted query/key
// vectors of the factorised KL (M8), checked against the direct (M4) of kl.hpp in float64.
//
// Inputs: heads of K = 1, 3, 5, 7 (ℓ = 0..3); means N(0, 1) plus a common offset of 4 (so that
// the pulled-back ν sit far from the origin, where (M8) cancels); full covariances Σ = AAᵀ + 0.5 I
// with A ~ N(0, 1) (condition numbers up to ~100 at K = 7); diagonal variances uniform in [0.3, 3];
// frames φ of random direction and |φ| ∈ [0, 6], R = wigner_d(ℓ, φ).
//
// Tolerances:
//  - score a_i·b_j against −(KL_ij + ½ ln det Σ_i)/κ: 1e-11·max(1, |reference|). The terms of (M8)
//    are ≤ ~10³ before they cancel into KL, so double rounding leaves ~eps·10³ ≈ 2e-13; observed
//    ≤ 1.5e-14 relative.
//  - the same with float32 lifting: 2e-4·max(1, |reference|) (float eps 6e-8 on the same ~10³
//    terms; observed ≤ 2.4e-5).
//  - independence of the centring vector c, |c| ≤ 10: 1e-11·max(1, |reference|) (|c|² = 100 adds
//    terms of ~10² that cancel; observed ≤ 6e-14).
//  - pull-back quantities and Cholesky factors against Eigen: 1e-12 relative to the largest entry
//    (a few K-term dot products and one triangular solve; observed ~1e-15).
//  - the column steps (detail/columns.hpp) with the columns taken in reverse order: bitwise equal,
//    but for the sums over columns (ln det Σ), which may round differently: 1e-14 relative.
//  - a row's own score bounds the row (KL ≥ 0, KL_ii = 0): in double, s_ij − s_ii ≤ 1e-11·max(1, |s_ii|)
//    (the rounding above); in float, summed as the GPU's FP32 path sums them, ≤ 2δ of (P1).
#include <gauge_attn/detail/so3_tables.hpp>
#include <gauge_attn/detail/wigner_factorised.hpp>
#include <gauge_attn/kl.hpp>
#include <gauge_attn/lifted.hpp>
#include <gauge_attn/precision.hpp>
#include <gauge_attn/wigner.hpp>

#include <catch2/catch.hpp>

#include <Eigen/Cholesky>
#include <Eigen/LU>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace {

using gauge_attn::LiftedWidths;
using gauge_attn::lifted::cholesky;
using gauge_attn::lifted::pack_key;
using gauge_attn::lifted::pack_query;
using gauge_attn::lifted::pull_back;
using gauge_attn::lifted::PulledBack;
using gauge_attn::lifted::sym_index;

static_assert(LiftedWidths<5>::sym == 15 && LiftedWidths<5>::values == 20 && LiftedWidths<5>::lifted == 21,
              "K = 5: sym 15, values 20, P 21");
static_assert(LiftedWidths<1>::sym == 1 && LiftedWidths<1>::values == 2 && LiftedWidths<1>::lifted == 3, "K = 1");
static_assert(LiftedWidths<3>::sym == 6 && LiftedWidths<3>::values == 9 && LiftedWidths<3>::lifted == 10, "K = 3");
static_assert(LiftedWidths<7>::sym == 28 && LiftedWidths<7>::values == 35 && LiftedWidths<7>::lifted == 36, "K = 7");
static_assert(LiftedWidths<19>::lifted == 19 * 20 / 2 + 19 + 1, "P = K(K+1)/2 + K + 1 (M8)");
static_assert(sym_index(5, 0, 0) == 0 && sym_index(5, 0, 4) == 4 && sym_index(5, 1, 1) == 5 &&
                  sym_index(5, 2, 2) == 9 && sym_index(5, 4, 4) == 14,
              "row-major packed upper triangle");

constexpr double pi = 3.14159265358979323846;

template <int K>
using Mat = Eigen::Matrix<double, K, K>;
template <int K>
using Vec = Eigen::Matrix<double, K, 1>;

Eigen::Vector3d random_frame(std::mt19937& rng) {
  std::normal_distribution<double> normal;
  Eigen::Vector3d v(normal(rng), normal(rng), normal(rng));
  return v * (std::uniform_real_distribution<double>(0.0, 6.0)(rng) / v.norm());
}

/// One token of one head: belief N(μ, Σ) in the frame R = wigner_d(ℓ, φ).
template <int K>
struct Token {
  Vec<K> mu;
  Mat<K> Sigma;      // dense, also when diagonal
  Vec<K> variances;  // when diagonal
  Mat<K> R;
  bool diagonal = false;

  /// Row-major copies, the layout lifted.hpp reads.
  std::vector<double> R_rows() const { return row_major(R); }
  std::vector<double> sigma_data() const {
    return diagonal ? std::vector<double>(variances.data(), variances.data() + K) : row_major(Sigma);
  }
  static std::vector<double> row_major(const Mat<K>& m) {
    std::vector<double> out(K * K);
    for (int r = 0; r < K; ++r)
      for (int c = 0; c < K; ++c) out[r * K + c] = m(r, c);
    return out;
  }
};

template <int K>
Mat<K> random_spd(std::mt19937& rng) {
  std::normal_distribution<double> normal;
  Mat<K> A;
  for (int r = 0; r < K; ++r)
    for (int c = 0; c < K; ++c) A(r, c) = normal(rng);
  return A * A.transpose() + 0.5 * Mat<K>::Identity();
}

template <int K>
Token<K> random_token(std::mt19937& rng, bool diagonal) {
  std::normal_distribution<double> normal;
  Token<K> t;
  for (int k = 0; k < K; ++k) t.mu(k) = 4.0 + normal(rng);
  t.diagonal = diagonal;
  if (diagonal) {
    std::uniform_real_distribution<double> variance(0.3, 3.0);
    for (int k = 0; k < K; ++k) t.variances(k) = variance(rng);
    t.Sigma = t.variances.asDiagonal();
  } else {
    t.Sigma = random_spd<K>(rng);
  }
  t.R = gauge_attn::wigner_d((K - 1) / 2, random_frame(rng));
  return t;
}

/// A PulledBack with every field NaN, so that a field pull_back fails to write poisons the checks.
template <class T, int K>
PulledBack<T, K> poisoned() {
  const T nan = std::numeric_limits<T>::quiet_NaN();
  PulledBack<T, K> p;
  for (int r = 0; r < K; ++r) {
    p.nu[r] = nan;
    for (int c = 0; c < K; ++c) p.S[r][c] = p.Lambda[r][c] = nan;
  }
  p.logdet = nan;
  return p;
}

template <class T, int K>
PulledBack<T, K> pulled_back(const Token<K>& t) {
  const std::vector<double> R = t.R_rows(), sigma = t.sigma_data();
  std::vector<T> Rt(R.begin(), R.end()), mut(t.mu.data(), t.mu.data() + K), sigmat(sigma.begin(), sigma.end());
  PulledBack<T, K> out = poisoned<T, K>();
  REQUIRE(pull_back<T, K>(Rt.data(), mut.data(), sigmat.data(), K, t.diagonal, out));
  return out;
}

/// −(KL_ij + ½ ln det Σ_i)/κ from the direct (M4), Ω_ij = R_i R_jᵀ (M3), and a log-determinant
/// from Eigen's LU (independent of the Cholesky inside pull_back).
template <int K>
double reference_score(const Token<K>& i, const Token<K>& j, double kappa) {
  const Eigen::MatrixXd Omega = i.R * j.R.transpose();
  const double kl = gauge_attn::kl_direct(i.mu, i.Sigma, j.mu, j.Sigma, Omega);
  return -(kl + 0.5 * std::log(i.Sigma.determinant())) / kappa;
}

/// a_i·b_j with the ν of both tokens centred on c, lifted in precision T.
template <class T, int K>
double lifted_score(const PulledBack<T, K>& qi, const PulledBack<T, K>& kj, const Vec<K>& c, double kappa) {
  constexpr int P = LiftedWidths<K>::lifted;
  T nu_i[K], nu_j[K];
  for (int k = 0; k < K; ++k) {
    nu_i[k] = T(double(qi.nu[k]) - c(k));
    nu_j[k] = T(double(kj.nu[k]) - c(k));
  }
  T a[P], b[P];
  pack_query(qi, nu_i, a);
  pack_key(kj, nu_j, T(kappa), b);
  double s = 0;
  for (int p = 0; p < P; ++p) s += double(a[p]) * double(b[p]);
  return s;
}

template <int K>
Vec<K> mean_nu(const std::vector<PulledBack<double, K>>& pbs) {
  Vec<K> c = Vec<K>::Zero();
  for (const auto& pb : pbs)
    for (int k = 0; k < K; ++k) c(k) += pb.nu[k];
  return c / double(pbs.size());
}

template <int L>
void check_score_equals_direct_kl(bool diagonal, std::uint32_t seed) {
  constexpr int K = 2 * L + 1;
  std::mt19937 rng(seed);
  constexpr int N = 5;
  std::vector<Token<K>> tokens;
  std::vector<PulledBack<double, K>> pbs;
  for (int n = 0; n < N; ++n) {
    tokens.push_back(random_token<K>(rng, diagonal));
    pbs.push_back(pulled_back<double, K>(tokens.back()));
  }
  const Vec<K> c = mean_nu<K>(pbs);  // the per-sequence mean of §5
  const double kappa = std::uniform_real_distribution<double>(0.2, 2.0)(rng);
  for (int i = 0; i < N; ++i)
    for (int j = 0; j < N; ++j) {
      const double want = reference_score(tokens[i], tokens[j], kappa);
      CAPTURE(K, diagonal, i, j, kappa, want);
      CHECK(std::abs(lifted_score(pbs[i], pbs[j], c, kappa) - want) <= 1e-11 * std::max(1.0, std::abs(want)));
    }
}

template <int L>
void check_centring_invariance(std::uint32_t seed) {
  constexpr int K = 2 * L + 1;
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal;
  for (bool diagonal : {false, true}) {
    std::vector<Token<K>> tokens;
    std::vector<PulledBack<double, K>> pbs;
    for (int n = 0; n < 4; ++n) {
      tokens.push_back(random_token<K>(rng, diagonal));
      pbs.push_back(pulled_back<double, K>(tokens.back()));
    }
    Vec<K> far;
    for (int k = 0; k < K; ++k) far(k) = normal(rng);
    far *= 10.0 / far.norm();
    Vec<K> first;
    for (int k = 0; k < K; ++k) first(k) = pbs[1].nu[k];
    const Vec<K> centres[] = {Vec<K>::Zero(), mean_nu<K>(pbs), first, far};
    const double kappa = 0.7;
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j) {
        const double want = reference_score(tokens[i], tokens[j], kappa);
        const double base = lifted_score(pbs[i], pbs[j], centres[1], kappa);
        for (const Vec<K>& c : centres) {
          CAPTURE(K, diagonal, i, j, c.transpose());
          CHECK(std::abs(lifted_score(pbs[i], pbs[j], c, kappa) - base) <= 1e-11 * std::max(1.0, std::abs(want)));
        }
      }
  }
}

template <int L>
void check_float_lift(std::uint32_t seed) {
  constexpr int K = 2 * L + 1;
  std::mt19937 rng(seed);
  for (bool diagonal : {false, true}) {
    std::vector<Token<K>> tokens;
    std::vector<PulledBack<float, K>> pbs;
    std::vector<PulledBack<double, K>> pbs_double;
    for (int n = 0; n < 4; ++n) {
      tokens.push_back(random_token<K>(rng, diagonal));
      pbs.push_back(pulled_back<float, K>(tokens.back()));
      pbs_double.push_back(pulled_back<double, K>(tokens.back()));
    }
    const Vec<K> c = mean_nu<K>(pbs_double);
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j) {
        const double want = reference_score(tokens[i], tokens[j], 0.5);
        CAPTURE(K, diagonal, i, j, want);
        CHECK(std::abs(lifted_score(pbs[i], pbs[j], c, 0.5) - want) <= 2e-4 * std::max(1.0, std::abs(want)));
      }
  }
}

double max_rel(const Eigen::MatrixXd& got, const Eigen::MatrixXd& want) {
  return (got - want).cwiseAbs().maxCoeff() / std::max(1.0, want.cwiseAbs().maxCoeff());
}

template <int L>
void check_pull_back(std::uint32_t seed) {
  constexpr int K = 2 * L + 1;
  constexpr int pad = 3, E = K + 2 * pad;  // the block sits inside a larger row-major matrix
  std::mt19937 rng(seed);
  for (bool diagonal : {false, true}) {
    for (int t = 0; t < 4; ++t) {
      const Token<K> tok = random_token<K>(rng, diagonal);
      const std::vector<double> R = tok.R_rows();
      std::vector<double> sigma;
      int ld = K;
      if (diagonal) {
        sigma = tok.sigma_data();
      } else {
        // Everything outside the K×K block is NaN: reading it would poison the result.
        sigma.assign(E * E, std::numeric_limits<double>::quiet_NaN());
        for (int r = 0; r < K; ++r)
          for (int c = 0; c < K; ++c) sigma[(pad + r) * E + pad + c] = tok.Sigma(r, c);
        ld = E;
      }
      PulledBack<double, K> pb = poisoned<double, K>();
      const double* block = diagonal ? sigma.data() : sigma.data() + pad * E + pad;
      REQUIRE(pull_back<double, K>(R.data(), tok.mu.data(), block, ld, diagonal, pb));

      const Vec<K> nu = tok.R.transpose() * tok.mu;
      const Mat<K> S = tok.R.transpose() * tok.Sigma * tok.R;
      const Mat<K> Lambda = tok.R.transpose() * tok.Sigma.inverse() * tok.R;
      Vec<K> got_nu;
      Mat<K> got_S, got_Lambda;
      for (int r = 0; r < K; ++r) {
        got_nu(r) = pb.nu[r];
        for (int c = 0; c < K; ++c) got_S(r, c) = pb.S[r][c], got_Lambda(r, c) = pb.Lambda[r][c];
      }
      CAPTURE(K, diagonal, t);
      CHECK(max_rel(got_nu, nu) <= 1e-12);
      CHECK(max_rel(got_S, S) <= 1e-12);
      CHECK(max_rel(got_Lambda, Lambda) <= 1e-12);
      CHECK(std::abs(pb.logdet - std::log(tok.Sigma.determinant())) <= 1e-12 * std::max(1.0, std::abs(pb.logdet)));
    }
  }
}

template <int L>
void check_packing_layout(std::uint32_t seed) {
  constexpr int K = 2 * L + 1;
  using W = LiftedWidths<K>;
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal;
  for (bool diagonal : {false, true}) {
    const Token<K> tok = random_token<K>(rng, diagonal);
    const PulledBack<double, K> pb = pulled_back<double, K>(tok);
    Vec<K> c;
    for (int k = 0; k < K; ++k) c(k) = normal(rng);
    const Vec<K> nu = tok.R.transpose() * tok.mu - c;  // centred ν, computed here independently
    double nu_arr[K];
    for (int k = 0; k < K; ++k) nu_arr[k] = pb.nu[k] - c(k);
    const double kappa = 0.8;
    const double sentinel = -12345.0;
    std::vector<double> a(W::lifted + 1, sentinel), b(W::lifted + 1, sentinel);
    pack_query(pb, nu_arr, a.data());
    pack_key(pb, nu_arr, kappa, b.data());
    CHECK(a[W::lifted] == sentinel);  // exactly P entries written
    CHECK(b[W::lifted] == sentinel);

    const Mat<K> second_moment = tok.R.transpose() * tok.Sigma * tok.R + nu * nu.transpose();
    const Mat<K> Lambda = tok.R.transpose() * tok.Sigma.inverse() * tok.R;
    const double scale = std::max(1.0, second_moment.cwiseAbs().maxCoeff());
    CAPTURE(K, diagonal);
    // a = [sym(S + ννᵀ), ν, 1]: unpack the first `values` entries with sym_index.
    for (int r = 0; r < K; ++r)
      for (int q = r; q < K; ++q) {
        CAPTURE(r, q);
        CHECK(std::abs(a[sym_index(K, r, q)] - second_moment(r, q)) <= 1e-12 * scale);
        CHECK(std::abs(b[sym_index(K, r, q)] - (-0.5 / kappa) * (r == q ? 1 : 2) * Lambda(r, q)) <=
              1e-12 * std::max(1.0, Lambda.cwiseAbs().maxCoeff()));
      }
    const Vec<K> Lnu = Lambda * nu;
    for (int r = 0; r < K; ++r) {
      CHECK(std::abs(a[W::sym + r] - nu(r)) <= 1e-12 * std::max(1.0, nu.norm()));
      CHECK(std::abs(b[W::sym + r] - Lnu(r) / kappa) <= 1e-12 * std::max(1.0, Lnu.norm()));
    }
    CHECK(W::values == W::sym + K);
    CHECK(a[W::values] == 1.0);
    const double last = (-0.5 / kappa) * (nu.dot(Lnu) + std::log(tok.Sigma.determinant()) - K);
    CHECK(std::abs(b[W::values] - last) <= 1e-12 * std::max(1.0, std::abs(last)));
  }
}

template <int L>
void check_non_spd_rejected(std::uint32_t seed) {
  constexpr int K = 2 * L + 1;
  std::mt19937 rng(seed);
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  const Token<K> tok = random_token<K>(rng, false);
  const std::vector<double> R = tok.R_rows();
  PulledBack<double, K> pb = poisoned<double, K>();
  auto full_ok = [&](const Mat<K>& Sigma) {
    const std::vector<double> s = Token<K>::row_major(Sigma);
    return pull_back<double, K>(R.data(), tok.mu.data(), s.data(), K, false, pb);
  };
  auto diag_ok = [&](const Vec<K>& v) { return pull_back<double, K>(R.data(), tok.mu.data(), v.data(), K, true, pb); };

  REQUIRE(full_ok(tok.Sigma));  // the control
  for (int k = 0; k < K; ++k) {
    CAPTURE(K, k);
    // A negative eigenvalue, hidden by a rotation: Σ = Q diag(λ) Qᵀ with λ_k = −0.5.
    Vec<K> lambda;
    for (int m = 0; m < K; ++m) lambda(m) = std::uniform_real_distribution<double>(0.3, 3.0)(rng);
    const Mat<K> Q = gauge_attn::wigner_d(L, random_frame(rng));
    REQUIRE(full_ok(Q * lambda.asDiagonal() * Q.transpose()));
    lambda(k) = -0.5;
    CHECK_FALSE(full_ok(Q * lambda.asDiagonal() * Q.transpose()));
    // A zero variance (singular, exactly).
    Mat<K> zero = tok.Sigma;
    zero.row(k).setZero();
    zero.col(k).setZero();
    CHECK_FALSE(full_ok(zero));
    // Non-finite entries: NaN and +inf on the diagonal, NaN off the diagonal (symmetric).
    Mat<K> bad = tok.Sigma;
    bad(k, k) = nan;
    CHECK_FALSE(full_ok(bad));
    bad(k, k) = inf;
    CHECK_FALSE(full_ok(bad));
    if (K > 1) {
      bad = tok.Sigma;
      const int other = (k + 1) % K;
      bad(k, other) = bad(other, k) = nan;
      CHECK_FALSE(full_ok(bad));
    }
    // Diagonal covariances: zero, negative and NaN variances.
    Vec<K> v = tok.Sigma.diagonal();
    REQUIRE(diag_ok(v));
    for (double value : {0.0, -0.2, nan}) {
      v = tok.Sigma.diagonal();
      v(k) = value;
      CAPTURE(value);
      CHECK_FALSE(diag_ok(v));
    }
  }
}

/// The column executor of detail/columns.hpp with the columns of each step taken last to first. A
/// step that read a column another worker writes in the same step (a race when the GPU gives every
/// column its own lane) would see new values in one order and old ones in the other.
template <int K>
struct ReversedColumns {
  template <class F>
  void each(F&& f) const {
    for (int c = K - 1; c >= 0; --c) f(c);
  }
  void sync() const {}
  template <class T>
  T total(T x) const {
    return x;
  }
};

/// D^ℓ(φ), the pull-back and the packed a, b of one token through the column steps of `cols`.
template <int K, class Columns>
void lift_by_columns(const Columns& cols, const Token<K>& tok, const double phi[3], std::vector<double>& D,
                     std::vector<double>& a, std::vector<double>& b, double& logdet, bool& ok) {
  using W = LiftedWidths<K>;
  const int l = (K - 1) / 2;
  const std::vector<double>& X = gauge_attn::detail::quarter_turn_table(l);
  std::vector<double> T(K * K), ZY(K * K), L(K * K), Y(K * K), nu(K);
  D.assign(K * K, 0.0);
  gauge_attn::detail::wigner_d_columns<K>(cols, X.data(), phi, T.data(), ZY.data(), [&](int c, const double(&d)[K]) {
    for (int r = 0; r < K; ++r) D[r * K + c] = d[r];
  });
  const std::vector<double> sigma = tok.sigma_data();
  ok = gauge_attn::lifted::pull_back_prepare<double, K>(cols, D.data(), sigma.data(), K, tok.diagonal, L.data(),
                                                        Y.data(), logdet);
  cols.each([&](int q) { nu[q] = gauge_attn::lifted::pulled_mean<double, K>(q, D.data(), tok.mu.data()) - 1.5; });
  a.assign(W::lifted, 0.0);
  b.assign(W::lifted, 0.0);
  double quadratic = 0;
  cols.each([&](int q) {
    double S[K], Lambda[K];
    gauge_attn::lifted::pulled_covariance_column<double, K>(q, D.data(), sigma.data(), K, tok.diagonal, S);
    gauge_attn::lifted::pulled_precision_column<double, K>(q, D.data(), tok.diagonal, L.data(), Y.data(), Lambda);
    gauge_attn::lifted::pack_query_column<double, K>(q, S, nu.data(), [&](int i, double v) { a[i] = v; });
    quadratic += gauge_attn::lifted::pack_key_column<double, K>(q, Lambda, nu.data(), -0.5,
                                                                [&](int i, double v) { b[i] = v; });
  });
  b[W::values] = gauge_attn::lifted::key_constant<double, K>(cols.total(quadratic), logdet, -0.5);
}

template <int L>
void check_column_order(std::uint32_t seed) {
  constexpr int K = 2 * L + 1;
  std::mt19937 rng(seed);
  for (bool diagonal : {true, false}) {
    const Token<K> tok = random_token<K>(rng, diagonal);
    const Eigen::Vector3d phi = random_frame(rng);
    std::vector<double> D1, a1, b1, D2, a2, b2;
    double logdet1 = 0, logdet2 = 0;
    bool ok1 = false, ok2 = false;
    lift_by_columns<K>(gauge_attn::detail::SerialColumns<K>{}, tok, phi.data(), D1, a1, b1, logdet1, ok1);
    lift_by_columns<K>(ReversedColumns<K>{}, tok, phi.data(), D2, a2, b2, logdet2, ok2);
    CAPTURE(K, diagonal);
    REQUIRE(ok1);
    REQUIRE(ok2);
    CHECK(D1 == D2);
    CHECK((Eigen::Map<const Mat<K>>(D1.data()).transpose() - gauge_attn::wigner_d(L, phi)).cwiseAbs().maxCoeff() <= 1e-12);
    CHECK(std::abs(logdet1 - logdet2) <= 1e-14 * std::max(1.0, std::abs(logdet1)));
    CHECK(a1 == a2);
    for (int i = 0; i + 1 < LiftedWidths<K>::lifted; ++i) CHECK(b1[i] == b2[i]);  // the last entry sums ln det Σ
    CHECK(std::abs(b1.back() - b2.back()) <= 1e-13 * std::max(1.0, std::abs(b1.back())));
  }
}

template <int K>
void check_cholesky(std::uint32_t seed) {
  std::mt19937 rng(seed);
  for (int t = 0; t < 5; ++t) {
    const Mat<K> Sigma = random_spd<K>(rng);
    double A[K][K];
    for (int r = 0; r < K; ++r)
      for (int c = 0; c < K; ++c) A[r][c] = Sigma(r, c);
    REQUIRE(cholesky(A));
    const Mat<K> L = Eigen::LLT<Mat<K>>(Sigma).matrixL();
    double worst = 0;
    for (int r = 0; r < K; ++r)
      for (int c = 0; c <= r; ++c) worst = std::max(worst, std::abs(A[r][c] - L(r, c)));
    CAPTURE(K, t);
    CHECK(worst <= 1e-12 * L.cwiseAbs().maxCoeff());
    for (int r = 0; r < K; ++r)
      for (int c = r + 1; c < K; ++c) CHECK(A[r][c] == Sigma(r, c));  // strict upper triangle untouched
  }
  // Not positive definite: −I, and an indefinite matrix with positive diagonal.
  double neg[K][K] = {};
  for (int k = 0; k < K; ++k) neg[k][k] = -1.0;
  CHECK_FALSE(cholesky(neg));
  if (K > 1) {
    Mat<K> indefinite = random_spd<K>(rng);
    indefinite(0, 1) = indefinite(1, 0) = 2.0 * std::sqrt(indefinite(0, 0) * indefinite(1, 1));
    double B[K][K];
    for (int r = 0; r < K; ++r)
      for (int c = 0; c < K; ++c) B[r][c] = indefinite(r, c);
    CHECK_FALSE(cholesky(B));
  }
}

/// a·b summed as the GPU's FP32 tile path sums a score: an FMA chain in float from 0.
template <std::size_t P>
float float_chain(const std::array<float, P>& a, const std::array<float, P>& b) {
  float s = 0;
  for (std::size_t p = 0; p < P; ++p) s = std::fma(a[p], b[p], s);
  return s;
}

/// Row i's own score s_ii = −½ ln det Σ_i / κ is the largest of its row (KL_ij ≥ 0 = KL_ii): what
/// lets the GPU's softmax start from it (precision.hpp, own_score_bounds_row). In double to the
/// rounding of (M8); in float, from float-stored vectors, to 2δ of (P1).
template <int L>
void check_own_score_bounds_row(bool diagonal, std::uint32_t seed) {
  constexpr int K = 2 * L + 1, P = LiftedWidths<K>::lifted;
  std::mt19937 rng(seed);
  constexpr int N = 48;
  std::vector<PulledBack<double, K>> pbs;
  for (int n = 0; n < N; ++n) pbs.push_back(pulled_back<double, K>(random_token<K>(rng, diagonal)));
  const Vec<K> c = mean_nu<K>(pbs);
  const double kappa = std::uniform_real_distribution<double>(0.2, 2.0)(rng);
  std::vector<std::array<float, P>> a(N), b(N);
  double A = 0, B = 0;
  for (int i = 0; i < N; ++i) {
    double nu[K], ad[P], bd[P];
    for (int k = 0; k < K; ++k) nu[k] = pbs[i].nu[k] - c(k);
    pack_query(pbs[i], nu, ad);
    pack_key(pbs[i], nu, kappa, bd);
    double a2 = 0, b2 = 0;
    for (int p = 0; p < P; ++p) {
      a[i][p] = float(ad[p]);
      b[i][p] = float(bd[p]);
      a2 += double(a[i][p]) * a[i][p];
      b2 += double(b[i][p]) * b[i][p];
    }
    A = std::max(A, std::sqrt(a2));
    B = std::max(B, std::sqrt(b2));
  }
  const double delta = gauge_attn::score_error_bound(gauge_attn::fma_score_roundings(P), gauge_attn::score_unit(false), A, B, 0);
  double worst_double = -1e300, worst_float = -1e300;
  for (int i = 0; i < N; ++i) {
    const double own = lifted_score(pbs[i], pbs[i], c, kappa);
    const float own_float = float_chain(a[i], b[i]);
    for (int j = 0; j < N; ++j) {
      worst_double = std::max(worst_double, (lifted_score(pbs[i], pbs[j], c, kappa) - own) / std::max(1.0, std::abs(own)));
      worst_float = std::max(worst_float, double(float_chain(a[i], b[j])) - own_float);
    }
  }
  CAPTURE(K, diagonal, kappa, delta, worst_double, worst_float);
  CHECK(worst_double <= 1e-11);
  CHECK(worst_float <= 2 * delta);
  CHECK(worst_float >= 0);  // j = i itself
}

}  // namespace

TEST_CASE("lifted: a_i·b_j = -(KL_ij + ½ ln det Sigma_i)/kappa for full covariances (M8)", "[lifted]") {
  check_score_equals_direct_kl<0>(false, 301);
  check_score_equals_direct_kl<1>(false, 302);
  check_score_equals_direct_kl<2>(false, 303);
  check_score_equals_direct_kl<3>(false, 304);
}

TEST_CASE("lifted: a_i·b_j = -(KL_ij + ½ ln det Sigma_i)/kappa for diagonal covariances (M8)", "[lifted]") {
  check_score_equals_direct_kl<0>(true, 311);
  check_score_equals_direct_kl<1>(true, 312);
  check_score_equals_direct_kl<2>(true, 313);
  check_score_equals_direct_kl<3>(true, 314);
}

TEST_CASE("lifted: the score does not depend on the centring vector of nu (§5)", "[lifted]") {
  check_centring_invariance<0>(321);
  check_centring_invariance<1>(322);
  check_centring_invariance<2>(323);
  check_centring_invariance<3>(324);
}

TEST_CASE("lifted: a float32 lift matches the float64 direct KL to 2e-4", "[lifted]") {
  check_float_lift<1>(331);
  check_float_lift<2>(332);
  check_float_lift<3>(333);
}

TEST_CASE("lifted: pull_back gives nu = R^T mu, S = R^T Sigma R, Lambda = R^T Sigma^-1 R, ln det Sigma",
          "[lifted]") {
  check_pull_back<0>(341);
  check_pull_back<1>(342);
  check_pull_back<2>(343);
  check_pull_back<3>(344);
}

TEST_CASE("lifted: query and key packing layout [sym(S+nu nu^T), nu, 1] unpacked with sym_index", "[lifted]") {
  check_packing_layout<0>(351);
  check_packing_layout<1>(352);
  check_packing_layout<2>(353);
  check_packing_layout<3>(354);
}

TEST_CASE("lifted: pull_back returns false for non-SPD covariances", "[lifted]") {
  check_non_spd_rejected<0>(361);
  check_non_spd_rejected<1>(362);
  check_non_spd_rejected<2>(363);
  check_non_spd_rejected<3>(364);
}

TEST_CASE("lifted: the column steps give the same lift in any column order (no step reads what it writes)", "[lifted]") {
  check_column_order<0>(381);
  check_column_order<1>(382);
  check_column_order<2>(383);
  check_column_order<4>(384);
  check_column_order<8>(385);
}

TEST_CASE("lifted: cholesky matches Eigen's LLT and rejects non-PD matrices", "[lifted]") {
  check_cholesky<1>(371);
  check_cholesky<2>(372);
  check_cholesky<3>(373);
  check_cholesky<5>(374);
  check_cholesky<7>(375);
}

TEST_CASE("lifted: sym_index enumerates the packed upper triangle row by row, and LiftedWidths", "[lifted]") {
  for (int K = 1; K <= 9; ++K) {
    int n = 0;
    for (int r = 0; r < K; ++r)
      for (int c = r; c < K; ++c) {
        CAPTURE(K, r, c);
        CHECK(sym_index(K, r, c) == n++);
      }
    CHECK(n == K * (K + 1) / 2);
  }
  CHECK(LiftedWidths<5>::dim == 5);
  CHECK(LiftedWidths<5>::sym == 15);
  CHECK(LiftedWidths<5>::values == 20);
  CHECK(LiftedWidths<5>::lifted == 21);
}

TEST_CASE("lifted: a row's own score is the largest of its row, to the rounding bound (P1) in float", "[lifted]") {
  for (bool diagonal : {false, true}) {
    check_own_score_bounds_row<0>(diagonal, 341);
    check_own_score_bounds_row<1>(diagonal, 342);
    check_own_score_bounds_row<2>(diagonal, 343);
    check_own_score_bounds_row<4>(diagonal, 344);
  }
  // The GPU takes it as the softmax reference only where it holds: the own key allowed, no bias,
  // and every weight e^(s_ij − s_ii) ≤ e^{2δ} within 2^8.
  gauge_attn::MaskSpec mask;
  mask.causal = true;
  CHECK(gauge_attn::own_score_bounds_row(mask, 1e-4, 8));
  CHECK(gauge_attn::own_score_bounds_row(mask, 2.77, 8));
  CHECK_FALSE(gauge_attn::own_score_bounds_row(mask, 2.78, 8));  // 2δ > 8 ln 2
  mask.mask_self = true;
  CHECK_FALSE(gauge_attn::own_score_bounds_row(mask, 1e-4, 8));
  mask.mask_self = false;
  mask.alibi_slope = -0.01;
  CHECK_FALSE(gauge_attn::own_score_bounds_row(mask, 1e-4, 8));
}
