// Tests of gauge_attn/wigner.hpp: the exact Wigner-D matrices D^ℓ(φ) = exp(φ·G^ℓ) (M2), the
// compile-time overload, and the two other exponentials (Padé for checks, the upstream 4th-order
// Taylor series of math.md §3).
//
// Angles: for every ℓ = 0..12, random directions at |φ| = 1e-12, 1e-8, 0.3, 1.7, π, random
// |φ| ∈ [π, 20] and 20, plus φ along ±x, ±y, ±z (including a half turn about z).
//
// Tolerances (absolute, on matrices of size K = 2ℓ+1 ≤ 25 whose entries are ≤ 1, or ≤ ℓ+1 for
// the generators):
//  - orthogonality ‖DDᵀ − I‖_max ≤ 1e-13 (math.md §3; observed ≤ 3e-15 up to ℓ = 12);
//    |det D − 1| ≤ 1e-12 (an LU of a 25×25 orthogonal matrix rounds to ~K·eps).
//  - D against Padé: 1e-13·(1 + |φ|). The Padé exponential of a matrix of norm ~ℓ|φ| ≤ 240 squares
//    its rounding error, and D's cos(mθ) rounds ~m·|φ|·eps; observed ≤ 2e-15·(1 + |φ|).
//  - homomorphism through so3_compose: 1e-12 (observed ≤ 1.6e-14 at ℓ = 12, |φ|, |ψ| up to 20).
//  - D(−φ) = D(φ)ᵀ and the compile-time overload: 1e-13·(1 + |φ|) (same algorithm, other
//    rounding; observed ~1e-15).
//  - adjoint action of D on the generators: 1e-13·(1 + ℓ)·(1 + |φ|) (entries of G are ≤ ℓ+1).
//  - expm_taylor4 against the series written out here: 1e-14·K·max(1, ‖T‖_max) (same polynomial,
//    other evaluation order: Horner vs powers).
#include <gauge_attn/so3.hpp>
#include <gauge_attn/wigner.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <random>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

using gauge_attn::algebra_element;
using gauge_attn::generators;
using gauge_attn::Generators;
using gauge_attn::so3_compose;
using gauge_attn::wigner_d;
using Eigen::Matrix3d;
using Eigen::MatrixXd;
using Eigen::Vector3d;

constexpr double pi = 3.14159265358979323846;
constexpr int max_l_tested = 12;

double max_abs(const MatrixXd& m) { return m.cwiseAbs().maxCoeff(); }

Vector3d random_vector(std::mt19937& rng, double norm) {
  std::normal_distribution<double> normal;
  Vector3d v(normal(rng), normal(rng), normal(rng));
  return v * (norm / v.norm());
}

/// The angle set described at the top of the file (fresh random directions on each call).
std::vector<Vector3d> test_angles(std::mt19937& rng) {
  std::vector<Vector3d> out;
  for (double norm : {1e-12, 1e-8, 0.3, 1.7, pi, 20.0})
    for (int k = 0; k < 2; ++k) out.push_back(random_vector(rng, norm));
  std::uniform_real_distribution<double> beyond_pi(pi, 20.0);
  for (int k = 0; k < 3; ++k) out.push_back(random_vector(rng, beyond_pi(rng)));
  out.push_back(1.3 * Vector3d::UnitX());
  out.push_back(-4.1 * Vector3d::UnitX());
  out.push_back(2.2 * Vector3d::UnitY());
  out.push_back(-0.6 * Vector3d::UnitY());
  out.push_back(0.9 * Vector3d::UnitZ());
  out.push_back(pi * Vector3d::UnitZ());
  out.push_back(-5.0 * Vector3d::UnitZ());
  out.push_back(-1e-9 * Vector3d::UnitZ());
  return out;
}

/// (L_a)_bc = −ε_abc: the Cartesian so(3) generators, L_a v = e_a × v.
std::array<Matrix3d, 3> cartesian_generators() {
  std::array<Matrix3d, 3> L;
  for (auto& m : L) m.setZero();
  L[0](1, 2) = -1, L[0](2, 1) = 1;
  L[1](2, 0) = -1, L[1](0, 2) = 1;
  L[2](0, 1) = -1, L[2](1, 0) = 1;
  return L;
}

/// The right-handed rotation by |φ| about φ/|φ| in Cartesian (x, y, z) coordinates (Rodrigues),
/// written independently of the library: exp(φ·L).
Matrix3d rodrigues(const Vector3d& phi) {
  const double theta = phi.norm();
  if (theta == 0) return Matrix3d::Identity();
  const Vector3d n = phi / theta;
  Matrix3d N;
  N << 0, -n.z(), n.y(), n.z(), 0, -n.x(), -n.y(), n.x(), 0;
  return Matrix3d::Identity() + std::sin(theta) * N + (1 - std::cos(theta)) * N * N;
}

/// The tesseral ℓ = 1 basis [m=0, c1, s1] in Cartesian terms (Condon–Shortley signs): z, −x, −y.
/// Row k of P holds tesseral basis vector k; the test below checks G¹_a = P L_a Pᵀ from the
/// math.md §2 fixture, which is what fixes this P.
Matrix3d tesseral_from_cartesian() {
  Matrix3d P;
  P << 0, 0, 1, -1, 0, 0, 0, -1, 0;
  return P;
}

template <int... Ls>
void check_fixed_size_overload(std::integer_sequence<int, Ls...>, const std::vector<Vector3d>& angles) {
  (
      [&] {
        constexpr int L = Ls;
        for (const Vector3d& phi : angles) {
          const auto D = wigner_d<L>(phi);
          static_assert(std::is_same_v<std::decay_t<decltype(D)>, Eigen::Matrix<double, 2 * L + 1, 2 * L + 1>>,
                        "wigner_d<L> returns a fixed-size matrix");
          CAPTURE(L, phi.transpose());
          CHECK(max_abs(MatrixXd(D) - wigner_d(L, phi)) <= 1e-13 * (1 + phi.norm()));
        }
      }(),
      ...);
}

}  // namespace

TEST_CASE("wigner: D is orthogonal with det +1 for l = 0..12 and every kind of phi (M2)", "[wigner]") {
  std::mt19937 rng(201);
  for (int l = 0; l <= max_l_tested; ++l) {
    const int K = 2 * l + 1;
    for (const Vector3d& phi : test_angles(rng)) {
      CAPTURE(l, phi.transpose());
      const MatrixXd D = wigner_d(l, phi);
      REQUIRE(D.rows() == K);
      REQUIRE(D.cols() == K);
      CHECK(max_abs(D * D.transpose() - MatrixXd::Identity(K, K)) <= 1e-13);
      CHECK(std::abs(D.determinant() - 1.0) <= 1e-12);
    }
  }
}

TEST_CASE("wigner: D equals the Padé exponential of phi·G for l = 0..12 (M2)", "[wigner]") {
  std::mt19937 rng(202);
  for (int l = 0; l <= max_l_tested; ++l) {
    for (const Vector3d& phi : test_angles(rng)) {
      CAPTURE(l, phi.transpose());
      const MatrixXd pade = gauge_attn::expm_pade(algebra_element(generators(l), phi));
      const MatrixXd D = wigner_d(l, phi);
      CHECK(max_abs(D - pade) <= 1e-13 * (1 + phi.norm()));
      // Not vacuous: away from the identity D really moves (a rotation by |φ| mod 2π).
      if (l > 0 && std::abs(std::remainder(phi.norm(), 2 * pi)) > 0.1)
        CHECK(max_abs(D - MatrixXd::Identity(2 * l + 1, 2 * l + 1)) > 0.01);
    }
  }
  // |φ| → 0 keeps full precision: D − I − φ·G is second order (|φ|²ℓ² ≤ 1.5e-14 at |φ| = 1e-9).
  for (int l = 1; l <= max_l_tested; ++l) {
    const Vector3d phi = random_vector(rng, 1e-9);
    const int K = 2 * l + 1;
    CAPTURE(l);
    CHECK(max_abs(wigner_d(l, phi) - MatrixXd::Identity(K, K) - algebra_element(generators(l), phi)) <= 5e-15 * K);
  }
}

TEST_CASE("wigner: D(phi) D(psi) = D(so3_compose(phi, psi)) for l = 0..12", "[wigner]") {
  std::mt19937 rng(203);
  for (int l = 0; l <= max_l_tested; ++l) {
    const std::vector<Vector3d> phis = test_angles(rng), psis = test_angles(rng);
    for (std::size_t k = 0; k < phis.size(); ++k) {
      const Vector3d& phi = phis[k];
      const Vector3d& psi = psis[(k * 7 + 3) % psis.size()];  // mix the kinds of angle
      CAPTURE(l, phi.transpose(), psi.transpose());
      CHECK(max_abs(wigner_d(l, phi) * wigner_d(l, psi) - wigner_d(l, so3_compose(phi, psi))) <= 1e-12);
    }
  }
}

TEST_CASE("wigner: D(-phi) = D(phi)^T for l = 0..12", "[wigner]") {
  std::mt19937 rng(204);
  for (int l = 0; l <= max_l_tested; ++l)
    for (const Vector3d& phi : test_angles(rng)) {
      CAPTURE(l, phi.transpose());
      const MatrixXd D = wigner_d(l, phi);
      CHECK(max_abs(wigner_d(l, -phi) - D.transpose()) <= 1e-13 * (1 + phi.norm()));
    }
}

// The index convention of the adjoint action. Since [G_x, G_y] = G_z and cyclic (M1), v ↦ v·G^ℓ is
// a Lie-algebra map from (ℝ³, ×) and exp (M2) intertwines it with the Cartesian rotation:
//   D^ℓ(φ) (v·G^ℓ) D^ℓ(φ)ᵀ = (R(φ) v)·G^ℓ,   R(φ) = exp(φ·L) (Rodrigues, (L_a)_bc = −ε_abc),
// i.e. D G_a Dᵀ = Σ_b R_ba G_b with R the Cartesian rotation. wigner_d(1, φ) is NOT that R: it is
// R in the tesseral basis, R¹ = P R Pᵀ with P = rows (z, −x, −y). In tesseral terms, with the
// relabelled generators T_k = Σ_a P_ka G_a = (G_z, −G_x, −G_y), D T_k Dᵀ = Σ_m R¹_mk T_m.
TEST_CASE("wigner: at l = 1 the tesseral basis is (z, -x, -y) and R1 = P R_cartesian P^T", "[wigner]") {
  const Matrix3d P = tesseral_from_cartesian();
  const auto L = cartesian_generators();
  const Generators& G1 = generators(1);
  for (int a = 0; a < 3; ++a) CHECK(max_abs(G1[a] - P * L[a] * P.transpose()) <= 1e-15);

  std::mt19937 rng(205);
  for (const Vector3d& phi : test_angles(rng)) {
    CAPTURE(phi.transpose());
    const Matrix3d R1 = wigner_d(1, phi);
    CHECK(max_abs(R1 - P * rodrigues(phi) * P.transpose()) <= 1e-14 * (1 + phi.norm()));
    // ℓ = 1 adjoint action in both conventions.
    for (int a = 0; a < 3; ++a) {
      Matrix3d want = Matrix3d::Zero();
      for (int b = 0; b < 3; ++b) want += rodrigues(phi)(b, a) * G1[b];
      CHECK(max_abs(R1 * G1[a] * R1.transpose() - want) <= 1e-14 * (1 + phi.norm()));
    }
  }
  // The literal Σ_b R¹_ba G_b is not the adjoint action (the two bases differ): at a generic φ it
  // misses by O(1). This documents why the convention above is needed.
  const Vector3d phi(0.3, -0.7, 1.1);
  const Matrix3d R1 = wigner_d(1, phi);
  Matrix3d literal = Matrix3d::Zero();
  for (int b = 0; b < 3; ++b) literal += R1(b, 0) * G1[b];
  CHECK(max_abs(R1 * G1[0] * R1.transpose() - literal) > 0.1);
}

TEST_CASE("wigner: generators transform in the adjoint representation, D G_a D^T = sum_b R_ba G_b", "[wigner]") {
  const Matrix3d P = tesseral_from_cartesian();
  std::mt19937 rng(206);
  for (int l = 0; l <= max_l_tested; ++l) {
    const Generators& G = generators(l);
    const int K = 2 * l + 1;
    // Tesseral relabelling T_k = Σ_a P_ka G_a.
    std::array<MatrixXd, 3> T;
    for (int k = 0; k < 3; ++k) T[k] = P(k, 0) * G[0] + P(k, 1) * G[1] + P(k, 2) * G[2];
    for (const Vector3d& phi : test_angles(rng)) {
      CAPTURE(l, phi.transpose());
      const MatrixXd D = wigner_d(l, phi);
      const Matrix3d R = rodrigues(phi);
      const Matrix3d R1 = wigner_d(1, phi);
      const double tol = 1e-13 * (1 + l) * (1 + phi.norm());
      for (int a = 0; a < 3; ++a) {
        MatrixXd cartesian = MatrixXd::Zero(K, K), tesseral = MatrixXd::Zero(K, K);
        for (int b = 0; b < 3; ++b) {
          cartesian += R(b, a) * G[b];
          tesseral += R1(b, a) * T[b];
        }
        CAPTURE(a);
        CHECK(max_abs(D * G[a] * D.transpose() - cartesian) <= tol);
        CHECK(max_abs(D * T[a] * D.transpose() - tesseral) <= tol);
      }
    }
  }
}

TEST_CASE("wigner: compile-time wigner_d<L> equals the runtime wigner_d for L = 0..12", "[wigner]") {
  std::mt19937 rng(207);
  check_fixed_size_overload(std::make_integer_sequence<int, max_l_tested + 1>{}, test_angles(rng));
}

TEST_CASE("wigner: expm_taylor4 is the upstream 4th-order Taylor series, not orthogonal", "[wigner]") {
  std::mt19937 rng(208);
  for (int l = 0; l <= max_l_tested; ++l) {
    const int K = 2 * l + 1;
    const MatrixXd I = MatrixXd::Identity(K, K);
    for (double norm : {0.05, 1.0, 2.5}) {
      const Vector3d phi = random_vector(rng, norm);
      const MatrixXd A = algebra_element(generators(l), phi);
      const MatrixXd A2 = A * A, A3 = A2 * A, A4 = A3 * A;
      const MatrixXd series = I + A + A2 / 2.0 + A3 / 6.0 + A4 / 24.0;
      const MatrixXd T = gauge_attn::expm_taylor4(A);
      CAPTURE(l, norm);
      CHECK(max_abs(T - series) <= 1e-14 * K * std::max(1.0, max_abs(series)));
      if (l > 0 && norm == 1.0) {
        // The truncation leaves T Tᵀ − I = A⁶/72 + …, ≥ 1/72 at ℓ = 1: an exact exponential would
        // be orthogonal to 1e-15 (see above).
        CHECK(max_abs(T * T.transpose() - I) > 1e-4);
        CHECK(max_abs(T - wigner_d(l, phi)) > 1e-4);
      }
    }
    CHECK(max_abs(gauge_attn::expm_taylor4(MatrixXd::Zero(K, K)) - I) == 0.0);
  }
}
