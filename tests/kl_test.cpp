// Tests of gauge_attn/kl.hpp: the exact KL of a transported belief (M4) and the two upstream
// variants of math.md §6 (diagonal with its 1e-6 clamps, full with ε·I), plus the properties of
// math.md §8 (KL ≥ 0, KL_ii = 0, KL = 0 iff the transported beliefs coincide, gauge invariance).
//
// Inputs: heads of K = 1..9 (ℓ = 0..4); means N(0, 1); full covariances Σ = AAᵀ + 0.5 I with
// A ~ N(0, 1); diagonal variances uniform in [0.3, 3]; transports Ω = R_i R_jᵀ (M3) with
// R = wigner_d(ℓ, φ), |φ| ∈ [0, 6].
//
// Tolerances (KL values here are O(1)..O(100)):
//  - kl_direct against the independent references (eigen-decomposition with ln det from an LU
//    determinant, or closed forms): 1e-11·max(1, KL). Both sides round ~K²·eps·cond(Σ) ≈ 1e-13
//    relative at K = 9, cond ≤ ~10²; observed ≤ 7e-15.
//  - KL(q‖q) = 0 and KL of exactly coinciding transported beliefs: 1e-12 absolute (the trace term
//    is K up to rounding ~K·eps·cond; observed ≤ 1e-15).
//  - gauge invariance: 1e-11·max(1, KL) (the rotated inputs are rounded once more).
//  - upstream diagonal KL against §6 written out here: 1e-13·max(1, KL) (same formula, other
//    summation order).
//  - upstream full KL with ε = 1e-8 against kl_direct, on well-conditioned covariances
//    (AAᵀ/K + I, eigenvalues ≥ 1): < 1e-6 as the brief bounds it (dKL/dε ≤ ~tr(Σ⁻¹) + |d|²‖Σ⁻¹‖² ≲ 30
//    here, so the shift is ≲ 3e-7), and > 1e-12 so that ε is seen to act; against the eigen
//    reference with ε·I added: 1e-11·max(1, KL).
#include <gauge_attn/detail/kl_factors.hpp>
#include <gauge_attn/kl.hpp>
#include <gauge_attn/lifted.hpp>
#include <gauge_attn/so3.hpp>
#include <gauge_attn/wigner.hpp>

#include <catch2/catch.hpp>

#include <Eigen/Eigenvalues>
#include <Eigen/LU>
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

namespace {

using gauge_attn::kl_direct;
using gauge_attn::kl_upstream_diagonal;
using gauge_attn::kl_upstream_full;
using gauge_attn::wigner_d;
using Eigen::MatrixXd;
using Eigen::Vector3d;
using Eigen::VectorXd;

Vector3d random_frame(std::mt19937& rng, double max_norm = 6.0) {
  std::normal_distribution<double> normal;
  Vector3d v(normal(rng), normal(rng), normal(rng));
  return v * (std::uniform_real_distribution<double>(0.0, max_norm)(rng) / v.norm());
}

VectorXd random_mean(std::mt19937& rng, int K) {
  std::normal_distribution<double> normal;
  VectorXd mu(K);
  for (int k = 0; k < K; ++k) mu(k) = normal(rng);
  return mu;
}

VectorXd random_variances(std::mt19937& rng, int K, double lo = 0.3, double hi = 3.0) {
  std::uniform_real_distribution<double> u(lo, hi);
  VectorXd v(K);
  for (int k = 0; k < K; ++k) v(k) = u(rng);
  return v;
}

MatrixXd random_spd(std::mt19937& rng, int K) {
  std::normal_distribution<double> normal;
  MatrixXd A(K, K);
  for (int r = 0; r < K; ++r)
    for (int c = 0; c < K; ++c) A(r, c) = normal(rng);
  return A * A.transpose() + 0.5 * MatrixXd::Identity(K, K);
}

/// Well conditioned: AAᵀ/K + I, eigenvalues in [1, ~5].
MatrixXd random_well_conditioned_spd(std::mt19937& rng, int K) {
  std::normal_distribution<double> normal;
  MatrixXd A(K, K);
  for (int r = 0; r < K; ++r)
    for (int c = 0; c < K; ++c) A(r, c) = normal(rng);
  return A * A.transpose() / double(K) + MatrixXd::Identity(K, K);
}

/// KL(N(μ_i, Σ_i) ‖ N(μ_t, Σ_t)) evaluated without Cholesky: Σ_t⁻¹ from its eigen-decomposition,
/// ln det Σ_t from its eigenvalues, ln det Σ_i from an LU determinant.
double kl_reference(const VectorXd& mu_i, const MatrixXd& Sigma_i, const VectorXd& mu_t, const MatrixXd& Sigma_t) {
  const Eigen::SelfAdjointEigenSolver<MatrixXd> eig(Sigma_t);
  const VectorXd lambda = eig.eigenvalues();
  const MatrixXd V = eig.eigenvectors();
  const MatrixXd inv = V * lambda.cwiseInverse().asDiagonal() * V.transpose();
  const VectorXd d = mu_t - mu_i;
  const double logdet_t = lambda.array().log().sum();
  const double logdet_i = std::log(Sigma_i.determinant());
  return 0.5 * ((inv * Sigma_i).trace() + d.dot(inv * d) - double(mu_i.size()) + logdet_t - logdet_i);
}

/// (M4) through the reference: the transported belief is N(Ω μ_j, Ω Σ_j Ωᵀ).
double kl_transported_reference(const VectorXd& mu_i, const MatrixXd& Sigma_i, const VectorXd& mu_j,
                                const MatrixXd& Sigma_j, const MatrixXd& Omega) {
  return kl_reference(mu_i, Sigma_i, Omega * mu_j, Omega * Sigma_j * Omega.transpose());
}

/// math.md §6 diagonal mode, written out term by term.
double upstream_diagonal_formula(const VectorXd& mu_i, const VectorXd& sigma_i, const VectorXd& mu_j,
                                 const VectorXd& sigma_j, const MatrixXd& Omega, bool clamp = true) {
  const int K = int(mu_i.size());
  double kl = 0;
  for (int k = 0; k < K; ++k) {
    double sp = 0, mt = 0;
    for (int l = 0; l < K; ++l) {
      sp += Omega(k, l) * Omega(k, l) * sigma_j(l);
      mt += Omega(k, l) * mu_j(l);
    }
    double si = sigma_i(k);
    if (clamp) {
      sp = std::max(sp, 1e-6);
      si = std::max(si, 1e-6);
    }
    const double d = mt - mu_i(k);
    kl += 0.5 * (si / sp + d * d / sp - 1.0 + std::log(sp) - std::log(si));
  }
  return clamp ? std::max(kl, 0.0) : kl;
}

MatrixXd transport(std::mt19937& rng, int l) {
  return wigner_d(l, random_frame(rng)) * wigner_d(l, random_frame(rng)).transpose();  // R_i R_jᵀ (M3)
}

double rel_tol(double tol, double value) { return tol * std::max(1.0, std::abs(value)); }

/// (M4) through kl_from_factors (kl_factors.hpp) in precision T, the factors by lifted::cholesky.
template <class T, int K>
T kl_by_factors(const VectorXd& mu_i, const MatrixXd& Sigma_i, const VectorXd& mu_j, const MatrixXd& Sigma_j,
                const MatrixXd& Omega, bool diagonal) {
  T O[K * K], L_i[K][K], L_j[K][K], m_i[K], m_j[K];
  for (int r = 0; r < K; ++r) {
    m_i[r] = T(mu_i(r));
    m_j[r] = T(mu_j(r));
    for (int c = 0; c < K; ++c) {
      O[r * K + c] = T(Omega(r, c));
      L_i[r][c] = T(Sigma_i(r, c));
      L_j[r][c] = T(Sigma_j(r, c));
    }
  }
  REQUIRE(gauge_attn::lifted::cholesky(L_i));
  REQUIRE(gauge_attn::lifted::cholesky(L_j));
  T half_logdet_i = 0;
  for (int r = 0; r < K; ++r) half_logdet_i += std::log(L_i[r][r]);
  return gauge_attn::detail::kl_from_factors<T, K>(O, m_i, &L_i[0][0], half_logdet_i, m_j, &L_j[0][0], diagonal);
}

/// (M4) the direct way (Cholesky of the transported ΩΣ_jΩᵀ) in long double: 11 more bits than
/// double, so its error, ~cond(Σ_j)·2⁻⁶⁴ relative, stays below 1e-7 for cond ≤ 1e12.
long double kl_long_double(const VectorXd& mu_i, const MatrixXd& Sigma_i, const VectorXd& mu_j,
                           const MatrixXd& Sigma_j, const MatrixXd& Omega) {
  using M = Eigen::Matrix<long double, Eigen::Dynamic, Eigen::Dynamic>;
  using V = Eigen::Matrix<long double, Eigen::Dynamic, 1>;
  const M O = Omega.cast<long double>(), S_i = Sigma_i.cast<long double>();
  const M S_t = O * Sigma_j.cast<long double>() * O.transpose();
  const V d = O * mu_j.cast<long double>() - mu_i.cast<long double>();
  const Eigen::LLT<M> lt(S_t), li(S_i);
  const long double logdet_t = 2 * lt.matrixLLT().diagonal().array().log().sum();
  const long double logdet_i = 2 * li.matrixLLT().diagonal().array().log().sum();
  return 0.5L * (lt.solve(S_i).trace() + d.dot(lt.solve(d)) - mu_i.size() + logdet_t - logdet_i);
}

/// Σ = Q diag(λ) Qᵀ, λ log-uniform in [lo, hi], Q a Wigner-D of a random frame.
MatrixXd random_spread_spd(std::mt19937& rng, int l, double lo, double hi, bool diagonal) {
  std::uniform_real_distribution<double> u(std::log(lo), std::log(hi));
  VectorXd lambda(2 * l + 1);
  for (auto& x : lambda) x = std::exp(u(rng));
  if (diagonal) return lambda.asDiagonal();
  const MatrixXd Q = wigner_d(l, random_frame(rng));
  return Q * lambda.asDiagonal() * Q.transpose();
}

/// Runs f(std::integral_constant<int, ℓ>) for ℓ = 0..4.
template <class F>
void for_spins(F&& f) {
  f(std::integral_constant<int, 0>{});
  f(std::integral_constant<int, 1>{});
  f(std::integral_constant<int, 2>{});
  f(std::integral_constant<int, 3>{});
  f(std::integral_constant<int, 4>{});
}

}  // namespace

// kl_from_factors (the pair-by-pair GPU path's exact KL, kl_factors.hpp) on the same inputs and at
// the same tolerance: both round ~K²·u·cond(Σ) ≈ 1e-13 relative.
TEST_CASE("kl: kl_direct and kl_from_factors equal an eigen-decomposition evaluation of (M4)", "[kl]") {
  std::mt19937 rng(401);
  for_spins([&](auto spin) {
    constexpr int l = decltype(spin)::value, K = 2 * l + 1;
    for (int t = 0; t < 6; ++t) {
      const bool diagonal = t % 2 == 1;
      const VectorXd mu_i = random_mean(rng, K), mu_j = random_mean(rng, K);
      const MatrixXd Sigma_i = diagonal ? MatrixXd(random_variances(rng, K).asDiagonal()) : random_spd(rng, K);
      const MatrixXd Sigma_j = diagonal ? MatrixXd(random_variances(rng, K).asDiagonal()) : random_spd(rng, K);
      const MatrixXd Omega = transport(rng, l);
      const double want = kl_transported_reference(mu_i, Sigma_i, mu_j, Sigma_j, Omega);
      CAPTURE(l, t, want);
      CHECK(std::abs(kl_direct(mu_i, Sigma_i, mu_j, Sigma_j, Omega) - want) <= rel_tol(1e-11, want));
      CHECK(std::abs(kl_by_factors<double, K>(mu_i, Sigma_i, mu_j, Sigma_j, Omega, diagonal) - want) <=
            rel_tol(1e-11, want));
      CHECK(std::abs(kl_by_factors<double, K>(mu_i, Sigma_i, mu_i, Sigma_i, MatrixXd::Identity(K, K), diagonal)) <=
            1e-12);
      // kl_gaussian is the untransported KL that kl_direct is built on.
      const double plain = kl_reference(mu_i, Sigma_i, mu_j, Sigma_j);
      CHECK(std::abs(gauge_attn::kl_gaussian(mu_i, Sigma_i, mu_j, Sigma_j) - plain) <= rel_tol(1e-11, plain));
      // Ω matters: the transport is applied (and not its transpose) unless it is trivial.
      if (l > 0) {
        const double transposed = kl_transported_reference(mu_i, Sigma_i, mu_j, Sigma_j, Omega.transpose());
        CHECK(std::abs(transposed - want) > 1e-6);
      }
    }
  });
}

TEST_CASE("kl: kl_direct equals closed forms for 1-D and for diagonal beliefs under signed permutations",
          "[kl]") {
  std::mt19937 rng(402);
  // K = 1: ½[σ_i/σ_j + (μ_j − μ_i)²/σ_j − 1 + ln σ_j − ln σ_i]; Ω = ±1.
  for (int t = 0; t < 10; ++t) {
    const double mi = random_mean(rng, 1)(0), mj = random_mean(rng, 1)(0);
    const double si = random_variances(rng, 1, 0.05, 5.0)(0), sj = random_variances(rng, 1, 0.05, 5.0)(0);
    const double omega = t % 2 ? -1.0 : 1.0;
    const double d = omega * mj - mi;
    const double want = 0.5 * (si / sj + d * d / sj - 1.0 + std::log(sj) - std::log(si));
    CAPTURE(mi, mj, si, sj, omega);
    CHECK(std::abs(kl_direct(VectorXd::Constant(1, mi), MatrixXd::Constant(1, 1, si), VectorXd::Constant(1, mj),
                             MatrixXd::Constant(1, 1, sj), MatrixXd::Constant(1, 1, omega)) -
                   want) <= rel_tol(1e-13, want));
  }
  // Diagonal beliefs and Ω a signed permutation (orthogonal, keeps covariances diagonal):
  // (Ω μ)_k = s_k μ_{π(k)}, (Ω Σ Ωᵀ)_kk = σ_{π(k)}.
  for (int K : {3, 5, 7}) {
    for (int t = 0; t < 4; ++t) {
      std::vector<int> perm(K);
      std::iota(perm.begin(), perm.end(), 0);
      std::shuffle(perm.begin(), perm.end(), rng);
      MatrixXd Omega = MatrixXd::Zero(K, K);
      VectorXd sign(K);
      for (int k = 0; k < K; ++k) {
        sign(k) = (rng() % 2) ? 1.0 : -1.0;
        Omega(k, perm[k]) = sign(k);
      }
      const VectorXd mu_i = random_mean(rng, K), mu_j = random_mean(rng, K);
      const VectorXd s_i = random_variances(rng, K), s_j = random_variances(rng, K);
      double want = 0;
      for (int k = 0; k < K; ++k) {
        const double sj = s_j(perm[k]), d = sign(k) * mu_j(perm[k]) - mu_i(k);
        want += 0.5 * (s_i(k) / sj + d * d / sj - 1.0 + std::log(sj) - std::log(s_i(k)));
      }
      CAPTURE(K, t);
      CHECK(std::abs(kl_direct(mu_i, s_i.asDiagonal(), mu_j, s_j.asDiagonal(), Omega) - want) <=
            rel_tol(1e-13, want));
    }
  }
}

TEST_CASE("kl: KL >= 0 and KL(q||q) = 0 with Omega = I (§8)", "[kl]") {
  std::mt19937 rng(403);
  for (int l = 0; l <= 4; ++l) {
    const int K = 2 * l + 1;
    for (int t = 0; t < 6; ++t) {
      const VectorXd mu_i = random_mean(rng, K), mu_j = random_mean(rng, K);
      const MatrixXd Sigma_i = random_spd(rng, K), Sigma_j = random_spd(rng, K);
      const MatrixXd I = MatrixXd::Identity(K, K);
      CAPTURE(l, t);
      CHECK(kl_direct(mu_i, Sigma_i, mu_j, Sigma_j, transport(rng, l)) > 0.0);
      CHECK(std::abs(kl_direct(mu_i, Sigma_i, mu_i, Sigma_i, I)) <= 1e-12);
    }
  }
}

TEST_CASE("kl: KL = 0 exactly when the transported beliefs coincide (§8)", "[kl]") {
  std::mt19937 rng(404);
  for (int l = 0; l <= 4; ++l) {
    const int K = 2 * l + 1;
    for (int t = 0; t < 4; ++t) {
      const VectorXd mu_i = random_mean(rng, K);
      const MatrixXd Sigma_i = random_spd(rng, K);
      const MatrixXd Omega = transport(rng, l);
      // μ_j, Σ_j chosen so that the transport maps them back: Ω μ_j = μ_i, Ω Σ_j Ωᵀ = Σ_i.
      const VectorXd mu_j = Omega.transpose() * mu_i;
      const MatrixXd Sigma_j = Omega.transpose() * Sigma_i * Omega;
      CAPTURE(l, t);
      CHECK(std::abs(kl_direct(mu_i, Sigma_i, mu_j, Sigma_j, Omega)) <= 1e-12);

      // Move the mean only: with equal covariances (M4) reduces exactly to ½ dᵀ Σ_i⁻¹ d > 0.
      const VectorXd delta = 1e-3 * random_mean(rng, K);
      const double quad = 0.5 * delta.dot(Sigma_i.inverse() * delta);
      const double moved = kl_direct(mu_i, Sigma_i, VectorXd(mu_j + Omega.transpose() * delta), Sigma_j, Omega);
      CHECK(moved > 0.0);
      CHECK(std::abs(moved - quad) <= 1e-12 + 1e-6 * quad);
      // Move the covariance only: KL > 0 again.
      const MatrixXd bumped = Sigma_j + 1e-2 * MatrixXd::Identity(K, K);
      CHECK(kl_direct(mu_i, Sigma_i, mu_j, bumped, Omega) > 1e-8);
      // And with a wrong transport (l ≥ 1), the beliefs no longer coincide.
      if (l > 0) CHECK(kl_direct(mu_i, Sigma_i, mu_j, Sigma_j, transport(rng, l)) > 1e-6);
    }
  }
}

TEST_CASE("kl: kl_direct is invariant under local gauge transformations (§8)", "[kl]") {
  std::mt19937 rng(405);
  for (int l = 0; l <= 4; ++l) {
    const int K = 2 * l + 1;
    for (int t = 0; t < 5; ++t) {
      const bool diagonal = t % 2 == 1;
      const VectorXd mu_i = random_mean(rng, K), mu_j = random_mean(rng, K);
      const MatrixXd Sigma_i = diagonal ? MatrixXd(random_variances(rng, K).asDiagonal()) : random_spd(rng, K);
      const MatrixXd Sigma_j = diagonal ? MatrixXd(random_variances(rng, K).asDiagonal()) : random_spd(rng, K);
      const Vector3d phi_i = random_frame(rng), phi_j = random_frame(rng);
      const Vector3d g_i = random_frame(rng), g_j = t == 4 ? g_i : random_frame(rng);  // t = 4: global g
      const MatrixXd Omega = wigner_d(l, phi_i) * wigner_d(l, phi_j).transpose();
      const double kl = kl_direct(mu_i, Sigma_i, mu_j, Sigma_j, Omega);

      // μ → D(g)μ, Σ → D(g)ΣD(g)ᵀ, and new frames φ' = log(exp(g) exp(φ)) through ℓ = 1.
      const MatrixXd Gi = wigner_d(l, g_i), Gj = wigner_d(l, g_j);
      const MatrixXd Omega_new =
          wigner_d(l, gauge_attn::so3_compose(g_i, phi_i)) * wigner_d(l, gauge_attn::so3_compose(g_j, phi_j)).transpose();
      CHECK((Omega_new - Gi * Omega * Gj.transpose()).cwiseAbs().maxCoeff() <= 1e-12);  // Ω' = g_i Ω g_jᵀ
      const double kl_new = kl_direct(Gi * mu_i, Gi * Sigma_i * Gi.transpose(), Gj * mu_j,
                                      Gj * Sigma_j * Gj.transpose(), Omega_new);
      CAPTURE(l, t, kl);
      CHECK(std::abs(kl_new - kl) <= rel_tol(1e-11, kl));
      // Rotating only token i's belief (no new frame) does change the KL for ℓ ≥ 1.
      if (l > 0) CHECK(std::abs(kl_direct(Gi * mu_i, Gi * Sigma_i * Gi.transpose(), mu_j, Sigma_j, Omega) - kl) > 1e-6);
    }
  }
}

TEST_CASE("kl: kl_upstream_diagonal equals the §6 formula written out", "[kl]") {
  std::mt19937 rng(406);
  for (int l = 0; l <= 4; ++l) {
    const int K = 2 * l + 1;
    for (int t = 0; t < 6; ++t) {
      const VectorXd mu_i = random_mean(rng, K), mu_j = random_mean(rng, K);
      const VectorXd s_i = random_variances(rng, K), s_j = random_variances(rng, K);
      const MatrixXd Omega = transport(rng, l);
      const double want = upstream_diagonal_formula(mu_i, s_i, mu_j, s_j, Omega);
      CAPTURE(l, t, want);
      CHECK(std::abs(kl_upstream_diagonal(mu_i, s_i, mu_j, s_j, Omega) - want) <= rel_tol(1e-13, want));
      // For ℓ = 0 (Ω = ±1) the diagonal approximation is exact.
      if (l == 0)
        CHECK(std::abs(want - kl_direct(mu_i, s_i.asDiagonal(), mu_j, s_j.asDiagonal(), Omega)) <= rel_tol(1e-13, want));
    }
  }
}

TEST_CASE("kl: kl_upstream_diagonal clamps both variances at 1e-6 (§6)", "[kl]") {
  std::mt19937 rng(407);
  for (int l = 0; l <= 3; ++l) {
    const int K = 2 * l + 1;
    const MatrixXd Omega = transport(rng, l);
    const VectorXd mu_i = random_mean(rng, K), mu_j = random_mean(rng, K);
    CAPTURE(l);

    // σ_i clamp: one tiny variance (1e-9 and, just under the floor, 5e-7).
    for (double tiny : {1e-9, 5e-7}) {
      VectorXd s_i = random_variances(rng, K);
      const VectorXd s_j = random_variances(rng, K);
      s_i(K / 2) = tiny;
      const double got = kl_upstream_diagonal(mu_i, s_i, mu_j, s_j, Omega);
      CAPTURE(tiny);
      CHECK(std::abs(got - upstream_diagonal_formula(mu_i, s_i, mu_j, s_j, Omega)) <= rel_tol(1e-13, got));
      // The clamp is active: without it ½(−ln σ_i) would add ½ ln(1e-6/tiny) more.
      const double unclamped = upstream_diagonal_formula(mu_i, s_i, mu_j, s_j, Omega, false);
      CHECK(unclamped - got > 0.4 * std::log(1e-6 / tiny));
    }
    // Just above the floor nothing is clamped.
    {
      VectorXd s_i = random_variances(rng, K);
      s_i(0) = 2e-6;
      const VectorXd s_j = random_variances(rng, K);
      const double got = kl_upstream_diagonal(mu_i, s_i, mu_j, s_j, Omega);
      CHECK(std::abs(got - upstream_diagonal_formula(mu_i, s_i, mu_j, s_j, Omega, false)) <= rel_tol(1e-13, got));
    }
    // σ' clamp: all of σ_j tiny, so every σ'_k = Σ_l Ω_kl² σ_j,l < 1e-6.
    {
      const VectorXd s_i = random_variances(rng, K);
      const VectorXd s_j = random_variances(rng, K, 1e-9, 5e-8);
      const double got = kl_upstream_diagonal(mu_i, s_i, mu_j, s_j, Omega);
      CHECK(std::abs(got - upstream_diagonal_formula(mu_i, s_i, mu_j, s_j, Omega)) <= rel_tol(1e-13, got));
      CHECK(std::abs(got - upstream_diagonal_formula(mu_i, s_i, mu_j, s_j, Omega, false)) > 1.0);
    }
  }
}

TEST_CASE("kl: kl_upstream_diagonal clamps rounding negatives to exactly 0 (§6)", "[kl]") {
  // Beliefs whose diagonal-mode KL is 0 up to rounding: μ_i = Ω μ_j and σ_i one ulp away from σ'.
  // The unclamped sum then comes out as ±1e-16, negative for a fair share of the draws (checked
  // below with the formula written out), and the clamp must return 0 for those, never < 0.
  std::mt19937 rng(408);
  int raw_negative = 0;
  for (int t = 0; t < 400; ++t) {
    const int l = 1 + t % 3, K = 2 * l + 1;
    const MatrixXd Omega = transport(rng, l);
    const VectorXd mu_j = random_mean(rng, K), s_j = random_variances(rng, K, 0.05, 5.0);
    const VectorXd mu_i = Omega * mu_j;
    const VectorXd sp = Omega.array().square().matrix() * s_j;
    VectorXd s_i(K);
    for (int k = 0; k < K; ++k) s_i(k) = std::nextafter(sp(k), (rng() % 2) ? 10.0 : 0.0);
    if (upstream_diagonal_formula(mu_i, s_i, mu_j, s_j, Omega, false) < 0) ++raw_negative;
    const double got = kl_upstream_diagonal(mu_i, s_i, mu_j, s_j, Omega);
    CAPTURE(t);
    CHECK(got >= 0.0);
    CHECK(got <= 1e-14);
  }
  CHECK(raw_negative > 0);  // the draws did reach the regime the clamp is for
}

TEST_CASE("kl: kl_upstream_full with eps = 0 equals kl_direct, with eps = 1e-8 within 1e-6 (§6)", "[kl]") {
  std::mt19937 rng(409);
  for (int l = 0; l <= 4; ++l) {
    const int K = 2 * l + 1;
    const MatrixXd I = MatrixXd::Identity(K, K);
    for (int t = 0; t < 4; ++t) {
      const VectorXd mu_i = random_mean(rng, K), mu_j = random_mean(rng, K);
      const MatrixXd Sigma_i = random_well_conditioned_spd(rng, K), Sigma_j = random_well_conditioned_spd(rng, K);
      const MatrixXd Omega = transport(rng, l);
      const double exact = kl_direct(mu_i, Sigma_i, mu_j, Sigma_j, Omega);
      CAPTURE(l, t, exact);
      CHECK(std::abs(kl_upstream_full(mu_i, Sigma_i, mu_j, Sigma_j, Omega, 0.0) - exact) <= rel_tol(1e-13, exact));
      const double regularised = kl_upstream_full(mu_i, Sigma_i, mu_j, Sigma_j, Omega);  // default ε = 1e-8
      CHECK(std::abs(regularised - exact) < 1e-6);
      CHECK(std::abs(regularised - exact) > 1e-12);  // ε really is applied
      // Both covariances regularised (Σ_i + εI and ΩΣ_jΩᵀ + εI), checked against the reference.
      for (double eps : {1e-8, 1e-6, 1e-2}) {
        const double want = kl_reference(mu_i, Sigma_i + eps * I, Omega * mu_j, Omega * Sigma_j * Omega.transpose() + eps * I);
        CAPTURE(eps);
        CHECK(std::abs(kl_upstream_full(mu_i, Sigma_i, mu_j, Sigma_j, Omega, eps) - want) <= rel_tol(1e-11, want));
      }
    }
    // The KL ≥ 0 clamp: identical beliefs give 0 up to rounding, never below 0.
    for (int t = 0; t < 20; ++t) {
      const VectorXd mu = random_mean(rng, K);
      const MatrixXd Sigma = random_spd(rng, K);
      const double got = kl_upstream_full(mu, Sigma, mu, Sigma, I);
      CHECK(got >= 0.0);
      CHECK(got <= 1e-12);
    }
  }
}

TEST_CASE("kl: a non-SPD covariance throws InvalidArgument naming it", "[kl]") {
  std::mt19937 rng(410);
  for (int l = 0; l <= 3; ++l) {
    const int K = 2 * l + 1;
    const VectorXd mu_i = random_mean(rng, K), mu_j = random_mean(rng, K);
    const MatrixXd good = random_spd(rng, K);
    const MatrixXd Omega = transport(rng, l);
    // A negative eigenvalue hidden by a rotation, and an exactly singular (zero) matrix.
    VectorXd lambda = random_variances(rng, K);
    lambda(K - 1) = -0.3;
    const MatrixXd Q = wigner_d(l, random_frame(rng));
    const MatrixXd indefinite = Q * lambda.asDiagonal() * Q.transpose();
    const MatrixXd zero = MatrixXd::Zero(K, K);
    for (const MatrixXd& bad : {indefinite, zero}) {
      CAPTURE(l);
      auto argument_of = [](auto&& call) -> std::string {
        try {
          call();
        } catch (const gauge_attn::InvalidArgument& e) {
          CHECK(std::string(e.what()).find("'" + e.argument() + "'") != std::string::npos);
          return e.argument();
        }
        return "<no exception>";
      };
      CHECK(argument_of([&] { kl_direct(mu_i, bad, mu_j, good, Omega); }) == "Sigma_i");
      // Σ_j reaches kl_gaussian transported, as its Sigma_t.
      CHECK(argument_of([&] { kl_direct(mu_i, good, mu_j, bad, Omega); }) == "Sigma_t");
      CHECK(argument_of([&] { gauge_attn::kl_gaussian(mu_i, bad, mu_j, good); }) == "Sigma_i");
      CHECK(argument_of([&] { gauge_attn::kl_gaussian(mu_i, good, mu_j, bad); }) == "Sigma_t");
      CHECK(argument_of([&] { kl_upstream_full(mu_i, bad, mu_j, good, Omega, 0.0); }) == "Sigma_i");
      CHECK(argument_of([&] { kl_upstream_full(mu_i, good, mu_j, bad, Omega, 0.0); }) == "Sigma_t");
    }
  }
}

// What kl_factors.hpp is for: variances log-uniform in [1e-6, 1e6] (cond 1e12, the range issue 9
// tried). Two references: the direct form (Cholesky of the transported ΩΣ_jΩᵀ) in long double,
// whose own error is ~cond(Σ_j)·2⁻⁶⁴ ≤ 5e-8 relative (observed 1.5e-9), hence 1e-7; and the same
// sum-of-squares form in long double, which leaves only the double rounding: positive terms, a few
// u each over K² terms, hence 1e-13. The direct form in double (kl_direct) has no such bound (its
// error grows as cond(Σ_j)·u, 3e-5 here) and is only reported. Full covariances of cond 1e6 check
// the triangular solves (there both forms lose ~cond·u ≈ 1e-10, inside both tolerances).
TEST_CASE("kl: kl_from_factors keeps double accuracy across twelve decades of variance", "[kl]") {
  std::mt19937 rng(419);
  double worst_factors = 0, worst_direct = 0;
  for_spins([&](auto spin) {
    constexpr int l = decltype(spin)::value, K = 2 * l + 1;
    for (int t = 0; t < 40; ++t) {
      const bool diagonal = t % 4 != 3;
      const double lo = diagonal ? 1e-6 : 1e-3, hi = 1 / lo;
      const VectorXd mu_i = random_mean(rng, K), mu_j = random_mean(rng, K);
      const MatrixXd Sigma_i = random_spread_spd(rng, l, lo, hi, diagonal);
      const MatrixXd Sigma_j = random_spread_spd(rng, l, lo, hi, diagonal);
      const MatrixXd Omega = t % 5 == 0 ? MatrixXd::Identity(K, K) : transport(rng, l);
      const long double direct = kl_long_double(mu_i, Sigma_i, mu_j, Sigma_j, Omega);
      const long double factors = kl_by_factors<long double, K>(mu_i, Sigma_i, mu_j, Sigma_j, Omega, diagonal);
      const double got = kl_by_factors<double, K>(mu_i, Sigma_i, mu_j, Sigma_j, Omega, diagonal);
      CAPTURE(l, t, diagonal, double(direct), double(factors), got);
      CHECK(double(std::abs((got - direct) / direct)) <= 1e-7);
      const double error = double(std::abs((got - factors) / factors));
      CHECK(error <= (diagonal ? 1e-13 : 1e-9));
      if (diagonal) worst_factors = std::max(worst_factors, error);
      if (diagonal)
        worst_direct = std::max(
            worst_direct, double(std::abs((kl_direct(mu_i, Sigma_i, mu_j, Sigma_j, Omega) - factors) / factors)));
    }
  });
  UNSCOPED_INFO("diagonal, largest relative error: kl_from_factors " << worst_factors << ", kl_direct "
                                                                     << worst_direct);
  CHECK(worst_factors <= 1e-13);
}
