// gauge_attn/wigner.hpp: Wigner-D matrices D^ℓ(φ) = exp(φ·G^ℓ) (M2), exact, and the two
// exponentials the upstream project used (Padé via Eigen for checks, 4th-order Taylor for
// compatibility).
#pragma once

#include <Eigen/Core>
#include <cmath>
#include <unsupported/Eigen/MatrixFunctions>

#include "so3.hpp"

namespace gauge_attn {

namespace detail {

/// exp(t G_z^ℓ): G_z^ℓ only couples (c_m, s_m) with weight ±m, so its exponential is a plane
/// rotation by m·t in each of those planes. Written from G_z's own entries, so the signs are
/// the basis's and not a convention of this file.
template <class Mat>
void exp_gz_into(int l, double t, Mat& Z) {
  const Eigen::MatrixXd& Gz = generators(l)[2];
  Z.setIdentity(2 * l + 1, 2 * l + 1);
  for (int m = 1; m <= l; ++m) {
    const int c = 2 * m - 1, s = 2 * m;
    Z(c, c) = Z(s, s) = std::cos(m * t);
    Z(c, s) = std::sin(m * t) * Gz(c, s) / m;
    Z(s, c) = std::sin(m * t) * Gz(s, c) / m;
  }
}

/// X = exp(−(π/2) G_x^ℓ), the fixed rotation with X G_z Xᵀ = G_y (Ad_{exp(tG_x)} G_z = cos t G_z
/// − sin t G_y), so exp(b G_y) = X exp(b G_z) Xᵀ. Built once per spin by Taylor series with
/// scaling and squaring in long double, which leaves it orthogonal to double rounding.
inline Eigen::MatrixXd build_quarter_turn_x(int l) {
  using LD = long double;
  using MatL = Eigen::Matrix<LD, Eigen::Dynamic, Eigen::Dynamic>;
  const int K = 2 * l + 1;
  const LD pi = 3.141592653589793238462643383279502884L;
  const int squarings = 12;
  const MatL A = generators(l)[0].cast<LD>() * (-pi / 2 / LD(1 << squarings));
  MatL sum = MatL::Identity(K, K), term = MatL::Identity(K, K);
  for (int k = 1; k <= 30; ++k) {
    term = term * A / LD(k);
    sum += term;
  }
  for (int k = 0; k < squarings; ++k) sum = sum * sum;
  return sum.cast<double>();
}

inline const Eigen::MatrixXd& quarter_turn_x(int l) {
  return per_spin_cache<Eigen::MatrixXd, build_quarter_turn_x>(l);
}

/// (M2) through the axis: with φ = θ n̂ and n̂ = (sin b cos a, sin b sin a, cos b),
/// exp(θ n̂·G) = Z(a) Y(b) Z(θ) Y(b)ᵀ Z(a)ᵀ, Z(t) = exp(t G_z), Y(t) = exp(t G_y) = X Z(t) Xᵀ.
/// Every factor is exactly orthogonal up to rounding, for any θ (θ ≥ π included). The angles
/// lose precision only where the result stops depending on them: b → 0 or π makes Z(a) commute
/// with the rest (n̂ → ±z), and θ → 0 makes Z(θ) → I, so no accuracy is lost as |φ| → 0 or near
/// the poles.
template <class Mat>
void wigner_d_into(int l, const Eigen::Vector3d& phi, Mat& D) {
  check_spin(l);
  const int K = 2 * l + 1;
  const double theta = phi.norm();
  if (l == 0 || theta == 0.0) {
    D.setIdentity(K, K);
    return;
  }
  const Eigen::Vector3d n = phi / theta;
  const double a = std::atan2(n.y(), n.x());
  const double b = std::atan2(std::hypot(n.x(), n.y()), n.z());
  const Eigen::MatrixXd& X = quarter_turn_x(l);
  Mat Za, Zb, Zt;
  exp_gz_into(l, a, Za);
  exp_gz_into(l, b, Zb);
  exp_gz_into(l, theta, Zt);
  const Mat ZaY = Za * X * Zb * X.transpose();  // Z(a) Y(b)
  D.noalias() = ZaY * Zt * ZaY.transpose();
}

}  // namespace detail

/// D^ℓ(φ) = exp(φ·G^ℓ) (M2), (2ℓ+1, 2ℓ+1), orthogonal to ~1e-15 for every φ.
inline Eigen::MatrixXd wigner_d(int l, const Eigen::Vector3d& phi) {
  Eigen::MatrixXd D;
  detail::wigner_d_into(l, phi, D);
  return D;
}

/// The same with the spin fixed at compile time (fixed-size result, no heap).
template <int L>
Eigen::Matrix<double, 2 * L + 1, 2 * L + 1> wigner_d(const Eigen::Vector3d& phi) {
  Eigen::Matrix<double, 2 * L + 1, 2 * L + 1> D;
  detail::wigner_d_into(L, phi, D);
  return D;
}

/// exp(A) by Padé approximation with scaling and squaring (Eigen's MatrixFunctions): a general
/// exponential, used by the upstream-compatible mode (whose float32 generators are not an exact
/// representation) and as an independent check of wigner_d.
inline Eigen::MatrixXd expm_pade(const Eigen::MatrixXd& A) { return A.exp(); }

/// The upstream attention heads' exponential: I + A + A²/2 + A³/6 + A⁴/24 (math.md §3). Not
/// orthogonal; offered only to reproduce upstream numbers.
inline Eigen::MatrixXd expm_taylor4(const Eigen::MatrixXd& A) {
  const Eigen::MatrixXd I = Eigen::MatrixXd::Identity(A.rows(), A.cols());
  return I + A * (I + A * (I / 2 + A * (I / 6 + A / 24)));
}

}  // namespace gauge_attn
