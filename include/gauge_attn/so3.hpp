// gauge_attn/so3.hpp: the real so(3) generators of every spin ℓ in the upstream tesseral
// basis (M1), and the group SO(3) itself through its ℓ = 1 rotation (exp, log, composition).
#pragma once

#include <Eigen/Core>
#include <Eigen/Geometry>
#include <array>
#include <cmath>
#include <complex>
#include <mutex>
#include <vector>

#include "error.hpp"

namespace gauge_attn {

/// Highest spin for which generators and Wigner-D matrices are provided.
inline constexpr int max_supported_l = 24;

/// The three generators G_x, G_y, G_z of one spin, (2ℓ+1, 2ℓ+1) each.
using Generators = std::array<Eigen::MatrixXd, 3>;

namespace detail {

inline void check_spin(int l) {
  require(l >= 0 && l <= max_supported_l, "l", "spin ", l, " is outside [0, ", max_supported_l, "]");
}

/// (M1): G_a = skew(Re(S (i J_a) S†)) with J the complex angular momentum in |ℓ, m⟩ and S the
/// unitary change to the real basis ordered [m = 0, c1, s1, c2, s2, …, cℓ, sℓ].
inline Generators build_generators(int l) {
  using C = std::complex<double>;
  const int K = 2 * l + 1;
  const C i(0.0, 1.0);
  Eigen::MatrixXcd Jz = Eigen::MatrixXcd::Zero(K, K), Jp = Jz, Jm = Jz;
  for (int r = 0; r < K; ++r) {
    const double m = r - l;
    Jz(r, r) = m;
    if (m < l) Jp(r, r + 1) = std::sqrt((l - m) * (l + m + 1));
    if (m > -l) Jm(r, r - 1) = std::sqrt((l + m) * (l - m + 1));
  }
  const Eigen::MatrixXcd Jx = (Jp + Jm) / 2.0;
  const Eigen::MatrixXcd Jy = (Jp - Jm) / (2.0 * i);

  Eigen::MatrixXcd S = Eigen::MatrixXcd::Zero(K, K);
  S(0, l) = 1.0;
  const double r2 = 1.0 / std::sqrt(2.0);
  for (int m = 1; m <= l; ++m) {
    const double p = (m % 2 == 0) ? 1.0 : -1.0;
    const int c = 2 * m - 1, s = 2 * m;
    S(c, l + m) = r2;
    S(c, l - m) = p * r2;
    S(s, l + m) = -i * r2;
    S(s, l - m) = i * p * r2;
  }
  Generators G;
  const Eigen::MatrixXcd* J[3] = {&Jx, &Jy, &Jz};
  for (int a = 0; a < 3; ++a) {
    const Eigen::MatrixXd X = (S * (i * *J[a]) * S.adjoint()).real();
    G[a] = (X - X.transpose()) / 2.0;
  }
  return G;
}

/// Lazily built, thread-safe table of one value per spin 0..max_supported_l.
template <class Value, Value (*Build)(int)>
const Value& per_spin_cache(int l) {
  check_spin(l);
  static std::array<std::once_flag, max_supported_l + 1> once;
  static std::array<Value, max_supported_l + 1> table;
  std::call_once(once[l], [l] { table[l] = Build(l); });
  return table[l];
}

inline Generators build_upstream_generators(int l) {
  Generators G = build_generators(l);
  for (auto& g : G) g = g.cast<float>().cast<double>();
  return G;
}

// The ℓ = 1 generators are the standard ones (L_a)_bc = −ε_abc conjugated by a fixed rotation:
// G_a = P L_a Pᵀ, so exp(φ·G¹) = P R(φ) Pᵀ with R(φ) the rotation by |φ| about φ/|φ|.
inline Eigen::Matrix3d l1_basis() {
  Eigen::Matrix3d P;
  P << 0, 0, 1, -1, 0, 0, 0, -1, 0;
  return P;
}

}  // namespace detail

/// (M1) generators of spin ℓ, exact in double; ℓ = 0 gives three 1×1 zeros.
inline const Generators& generators(int l) {
  return detail::per_spin_cache<Generators, detail::build_generators>(l);
}

/// The generators as the upstream project held them: (M1) rounded to float32 (its √3 and
/// friends are float32 values, which shifts its ℓ ≥ 2 transports by ~1e-8; math.md §6 parity
/// to 1e-10 needs this).
inline const Generators& upstream_generators(int l) {
  return detail::per_spin_cache<Generators, detail::build_upstream_generators>(l);
}

/// φ·G = Σ_a φ_a G_a for spin ℓ, (2ℓ+1, 2ℓ+1).
inline Eigen::MatrixXd algebra_element(const Generators& G, const Eigen::Vector3d& phi) {
  return phi.x() * G[0] + phi.y() * G[1] + phi.z() * G[2];
}

/// The ℓ = 1 rotation exp(φ·G¹) (M2 at ℓ = 1), exact for every φ.
inline Eigen::Matrix3d so3_exp(const Eigen::Vector3d& phi) {
  const double theta = phi.norm();
  if (theta == 0.0) return Eigen::Matrix3d::Identity();
  const Eigen::Matrix3d P = detail::l1_basis();
  return P * Eigen::AngleAxisd(theta, phi / theta).toRotationMatrix() * P.transpose();
}

/// The inverse of so3_exp on rotations: the φ with |φ| ≤ π and so3_exp(φ) = R (R orthogonal, det +1).
inline Eigen::Vector3d so3_log(const Eigen::Matrix3d& R) {
  const Eigen::Matrix3d P = detail::l1_basis();
  const Eigen::AngleAxisd aa(Eigen::Matrix3d(P.transpose() * R * P));
  return aa.angle() * aa.axis();
}

/// The frame of the composed rotation: log(exp(φ) exp(ψ)) through ℓ = 1 (BCH in closed form).
inline Eigen::Vector3d so3_compose(const Eigen::Vector3d& phi, const Eigen::Vector3d& psi) {
  return so3_log(so3_exp(phi) * so3_exp(psi));
}

}  // namespace gauge_attn
