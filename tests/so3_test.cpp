// Tests of gauge_attn/so3.hpp: the real so(3) generators of (M1) in the upstream tesseral basis,
// their float32-rounded upstream copies, and the group through the ℓ = 1 rotation (exp, log,
// composition) that math.md §3 and §8 use for frames.
//
// Tolerances, all absolute on matrices whose entries are O(ℓ):
//  - fixtures: 1e-15. (M1) evaluated in double gives the integer entries 1 ulp off (for instance
//    1 − 2.2e-16, because (1/√2)² ≠ 1/2 in double) and √3 to 2.2e-16, so bitwise equality is not a
//    property of (M1) in double; 1e-15 is ~4 ulp of the largest entry (2) and far below any sign or
//    basis-order mistake (errors of ≥ 0.2).
//  - algebra identities (commutators, Casimir) for ℓ ≤ 10: 1e-13·max(1, ℓ²). Products of two K×K
//    matrices with entries ≤ ℓ+1 round to ~ℓ²·eps per entry; observed ≤ 7e-16·ℓ², so the bound
//    leaves >100× headroom for other compilers (FMA contraction) while any wrong sign or
//    normalisation shows up at O(1).
//  - exp/compose of the ℓ = 1 rotation: 1e-14·(1 + |φ|) (an orthogonal 3×3 with O(1) entries; |φ|
//    enters through the rounding of the cos/sin arguments; observed ≤ 4e-16·(1 + |φ|)).
//  - log round trips: 1e-13 absolute for |φ| up to π (observed ≤ 1.3e-15, also at 3.14159 where the
//    axis comes from the symmetric part), 1e-14 relative for tiny |φ| (observed 1.5e-16: the log
//    must not lose the axis of a 1e-10 rotation), 1e-14·(1 + θ) for θ > π (θ − 2πk rounds ~θ·eps).
#include <gauge_attn/so3.hpp>
#include <gauge_attn/wigner.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <random>
#include <string>

namespace {

using gauge_attn::generators;
using gauge_attn::Generators;
using gauge_attn::so3_compose;
using gauge_attn::so3_exp;
using gauge_attn::so3_log;
using gauge_attn::upstream_generators;
using Eigen::Matrix3d;
using Eigen::MatrixXd;
using Eigen::Vector3d;

constexpr double pi = 3.14159265358979323846;

double max_abs(const MatrixXd& m) { return m.size() == 0 ? 0.0 : m.cwiseAbs().maxCoeff(); }

/// A direction drawn uniformly on the sphere, times `norm`.
Vector3d random_vector(std::mt19937& rng, double norm) {
  std::normal_distribution<double> normal;
  Vector3d v(normal(rng), normal(rng), normal(rng));
  return v * (norm / v.norm());
}

MatrixXd rows(int n, std::initializer_list<double> values) {
  MatrixXd m(n, n);
  auto it = values.begin();
  for (int r = 0; r < n; ++r)
    for (int c = 0; c < n; ++c) m(r, c) = *it++;
  return m;
}

}  // namespace

TEST_CASE("so3: l=1 generators equal the math.md §2 fixture (M1)", "[so3]") {
  const Generators& G = generators(1);
  const MatrixXd Gx = rows(3, {0, 0, -1, 0, 0, 0, 1, 0, 0});
  const MatrixXd Gy = rows(3, {0, 1, 0, -1, 0, 0, 0, 0, 0});
  const MatrixXd Gz = rows(3, {0, 0, 0, 0, 0, -1, 0, 1, 0});
  REQUIRE(G[0].rows() == 3);
  REQUIRE(G[0].cols() == 3);
  CHECK(max_abs(G[0] - Gx) <= 1e-15);
  CHECK(max_abs(G[1] - Gy) <= 1e-15);
  CHECK(max_abs(G[2] - Gz) <= 1e-15);
}

TEST_CASE("so3: l=2 generators equal the math.md §2 fixture (M1)", "[so3]") {
  const Generators& G = generators(2);
  const double a = std::sqrt(3.0);
  const MatrixXd Gx = rows(5, {0, 0, -a, 0, 0,  //
                               0, 0, 0, 0, -1,  //
                               a, 0, 0, 1, 0,   //
                               0, 0, -1, 0, 0,  //
                               0, 1, 0, 0, 0});
  const MatrixXd Gy = rows(5, {0, a, 0, 0, 0,   //
                               -a, 0, 0, 1, 0,  //
                               0, 0, 0, 0, 1,   //
                               0, -1, 0, 0, 0,  //
                               0, 0, -1, 0, 0});
  const MatrixXd Gz = rows(5, {0, 0, 0, 0, 0,   //
                               0, 0, -1, 0, 0,  //
                               0, 1, 0, 0, 0,   //
                               0, 0, 0, 0, -2,  //
                               0, 0, 0, 2, 0});
  REQUIRE(G[2].rows() == 5);
  CHECK(max_abs(G[0] - Gx) <= 1e-15);
  CHECK(max_abs(G[1] - Gy) <= 1e-15);
  CHECK(max_abs(G[2] - Gz) <= 1e-15);
  // √3 itself, to 1e-15, where it occurs.
  CHECK(std::abs(G[0](2, 0) - a) <= 1e-15);
  CHECK(std::abs(G[1](0, 1) - a) <= 1e-15);
}

TEST_CASE("so3: l=0 generators are three 1x1 zeros", "[so3]") {
  const Generators& G = generators(0);
  for (int a = 0; a < 3; ++a) {
    REQUIRE(G[a].rows() == 1);
    REQUIRE(G[a].cols() == 1);
    CHECK(G[a](0, 0) == 0.0);
  }
}

TEST_CASE("so3: generators are antisymmetric, (2l+1)-square, for l = 0..10", "[so3]") {
  for (int l = 0; l <= 10; ++l) {
    CAPTURE(l);
    const Generators& G = generators(l);
    for (int a = 0; a < 3; ++a) {
      REQUIRE(G[a].rows() == 2 * l + 1);
      REQUIRE(G[a].cols() == 2 * l + 1);
      CHECK(max_abs(G[a] + G[a].transpose()) == 0.0);  // skew() makes this exact
      if (l > 0) CHECK(max_abs(G[a]) > 0.5);           // not trivially zero
    }
  }
}

TEST_CASE("so3: commutators [Gx,Gy]=Gz, [Gy,Gz]=Gx, [Gz,Gx]=Gy for l = 0..10", "[so3]") {
  for (int l = 0; l <= 10; ++l) {
    CAPTURE(l);
    const Generators& G = generators(l);
    const double tol = 1e-13 * std::max(1, l * l);
    for (int a = 0; a < 3; ++a) {
      const int b = (a + 1) % 3, c = (a + 2) % 3;
      const MatrixXd commutator = G[a] * G[b] - G[b] * G[a];
      CAPTURE(a);
      CHECK(max_abs(commutator - G[c]) <= tol);
    }
  }
}

TEST_CASE("so3: Casimir -sum G_a^2 = l(l+1) I for l = 0..10", "[so3]") {
  for (int l = 0; l <= 10; ++l) {
    CAPTURE(l);
    const Generators& G = generators(l);
    const int K = 2 * l + 1;
    const MatrixXd casimir = -(G[0] * G[0] + G[1] * G[1] + G[2] * G[2]);
    CHECK(max_abs(casimir - double(l * (l + 1)) * MatrixXd::Identity(K, K)) <= 1e-13 * std::max(1, l * l));
  }
}

TEST_CASE("so3: algebra_element is phi_x Gx + phi_y Gy + phi_z Gz", "[so3]") {
  std::mt19937 rng(101);
  for (int l = 0; l <= 4; ++l) {
    const Generators& G = generators(l);
    const Vector3d phi = random_vector(rng, 1.7);
    MatrixXd want = MatrixXd::Zero(2 * l + 1, 2 * l + 1);
    for (int r = 0; r < want.rows(); ++r)
      for (int c = 0; c < want.cols(); ++c) want(r, c) = phi[0] * G[0](r, c) + phi[1] * G[1](r, c) + phi[2] * G[2](r, c);
    CAPTURE(l);
    CHECK(max_abs(gauge_attn::algebra_element(G, phi) - want) <= 1e-15 * (1 + l));
  }
}

TEST_CASE("so3: upstream_generators are the generators rounded to float32", "[so3]") {
  for (int l = 0; l <= 10; ++l) {
    CAPTURE(l);
    const Generators& exact = generators(l);
    const Generators& up = upstream_generators(l);
    for (int a = 0; a < 3; ++a) {
      REQUIRE(up[a].rows() == 2 * l + 1);
      for (int r = 0; r < up[a].rows(); ++r)
        for (int c = 0; c < up[a].cols(); ++c)
          CHECK(up[a](r, c) == double(static_cast<float>(exact[a](r, c))));  // exact: that is the definition
    }
  }
  // ℓ = 2 holds √3, which float32 rounds by ~3.1e-8 (1.7320508f = 1.73205077648…): the rounding
  // really happens. Its integer entries round to exact integers.
  const double diff2 = max_abs(upstream_generators(2)[0] - generators(2)[0]);
  CHECK(diff2 > 1e-9);
  CHECK(diff2 < 1e-7);
  CHECK(upstream_generators(2)[0](2, 3) == 1.0);
  CHECK(upstream_generators(2)[2](4, 3) == 2.0);
}

TEST_CASE("so3: so3_exp equals wigner_d(1, phi) and a Padé exponential (M2, l = 1)", "[so3]") {
  std::mt19937 rng(102);
  const Vector3d axes[] = {Vector3d::UnitX(), Vector3d::UnitY(), Vector3d::UnitZ(), -Vector3d::UnitZ()};
  for (double norm : {1e-12, 1e-6, 0.4, 1.9, pi, 3.5, 8.0, 20.0}) {
    for (int t = 0; t < 6; ++t) {
      const Vector3d phi = t < 4 ? Vector3d(axes[t] * norm) : random_vector(rng, norm);
      CAPTURE(norm, t);
      const Matrix3d R = so3_exp(phi);
      const MatrixXd pade = gauge_attn::expm_pade(gauge_attn::algebra_element(generators(1), phi));
      CHECK(max_abs(R - pade) <= 1e-14 * (1 + norm));
      CHECK(max_abs(R - gauge_attn::wigner_d(1, phi)) <= 1e-14 * (1 + norm));
      CHECK(max_abs(R * R.transpose() - Matrix3d::Identity()) <= 1e-15 * 4);
      CHECK(std::abs(R.determinant() - 1.0) <= 1e-14);
    }
  }
  CHECK(so3_exp(Vector3d::Zero()) == Matrix3d::Identity());
}

TEST_CASE("so3: so3_log inverts so3_exp for |phi| < pi (random, tiny, near pi)", "[so3]") {
  std::mt19937 rng(103);
  std::uniform_real_distribution<double> angle(0.05, pi - 0.05);
  for (int t = 0; t < 40; ++t) {
    const Vector3d phi = random_vector(rng, angle(rng));
    CAPTURE(phi.transpose());
    CHECK((so3_log(so3_exp(phi)) - phi).norm() <= 1e-13);
  }
  // Tiny rotations: the log must keep relative precision, not return zero or lose the axis.
  for (double norm : {1e-10, 1e-7}) {
    for (int t = 0; t < 8; ++t) {
      const Vector3d phi = random_vector(rng, norm);
      CAPTURE(norm, phi.transpose());
      CHECK((so3_log(so3_exp(phi)) - phi).norm() <= 1e-14 * norm);
    }
  }
  // Near π (3.14159 = π − 2.65e-6), where sin θ is small and the axis comes from the symmetric part.
  for (int t = 0; t < 12; ++t) {
    const Vector3d phi = random_vector(rng, 3.14159);
    CAPTURE(phi.transpose());
    const Vector3d back = so3_log(so3_exp(phi));
    CHECK((back - phi).norm() <= 1e-13);
    CHECK(back.norm() <= pi);
  }
  CHECK(so3_log(Matrix3d::Identity()).norm() == 0.0);
}

TEST_CASE("so3: so3_log of a rotation by more than pi gives the equivalent angle <= pi", "[so3]") {
  std::mt19937 rng(104);
  std::uniform_real_distribution<double> angle(pi + 0.01, 20.0);
  for (int t = 0; t < 40; ++t) {
    const double theta = t == 0 ? 2 * pi - 0.5 : angle(rng);
    const Vector3d n = random_vector(rng, 1.0);
    const Vector3d phi = theta * n;
    // The same rotation by theta' = theta − 2πk ∈ [−π, π] about n.
    const double theta_equiv = std::remainder(theta, 2 * pi);
    CAPTURE(theta, theta_equiv);
    const Vector3d back = so3_log(so3_exp(phi));
    CHECK(back.norm() <= pi + 1e-12);
    CHECK((back - theta_equiv * n).norm() <= 1e-14 * (1 + theta));
    CHECK(max_abs(so3_exp(back) - so3_exp(phi)) <= 1e-13 * (1 + theta));
  }
}

TEST_CASE("so3: so3_compose matches exp(phi) exp(psi)", "[so3]") {
  std::mt19937 rng(105);
  std::uniform_real_distribution<double> angle(0.0, 6.0);
  for (int t = 0; t < 40; ++t) {
    const Vector3d phi = random_vector(rng, angle(rng)), psi = random_vector(rng, angle(rng));
    const Vector3d c = so3_compose(phi, psi);
    CAPTURE(phi.transpose(), psi.transpose());
    CHECK(c.norm() <= pi + 1e-12);
    CHECK(max_abs(so3_exp(c) - so3_exp(phi) * so3_exp(psi)) <= 1e-13);
    // Order matters (the group is not abelian): compose(ψ, φ) is exp(ψ)exp(φ), another rotation.
    CHECK(max_abs(so3_exp(so3_compose(psi, phi)) - so3_exp(psi) * so3_exp(phi)) <= 1e-13);
  }
  // Rotations about one axis add their angles.
  const Vector3d n = random_vector(rng, 1.0);
  CHECK((so3_compose(0.7 * n, 1.1 * n) - 1.8 * n).norm() <= 1e-13);
  CHECK((so3_compose(2.5 * n, 1.5 * n) - (4.0 - 2 * pi) * n).norm() <= 1e-13);  // wraps past π
  CHECK(so3_compose(0.9 * n, -0.9 * n).norm() <= 1e-13);
}

TEST_CASE("so3: a spin outside [0, max_supported_l] throws InvalidArgument naming 'l'", "[so3]") {
  CHECK(gauge_attn::max_supported_l >= 10);  // math.md §3: at least ℓ = 10
  CHECK(generators(gauge_attn::max_supported_l)[2].rows() == 2 * gauge_attn::max_supported_l + 1);
  const int bad_spins[] = {-1, gauge_attn::max_supported_l + 1, 1000};
  for (int l : bad_spins) {
    CAPTURE(l);
    CHECK_THROWS_AS(generators(l), gauge_attn::InvalidArgument);
    CHECK_THROWS_AS(upstream_generators(l), gauge_attn::InvalidArgument);
    CHECK_THROWS_AS(gauge_attn::wigner_d(l, Vector3d(0.1, 0.2, 0.3)), gauge_attn::InvalidArgument);
    try {
      generators(l);
      FAIL("no exception");
    } catch (const gauge_attn::InvalidArgument& e) {
      CHECK(e.argument() == "l");
      const std::string what = e.what();
      CHECK(what.find("'l'") != std::string::npos);
      CHECK(what.find(std::to_string(l)) != std::string::npos);
    }
  }
}
