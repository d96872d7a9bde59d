// gauge_attn/so3.hpp: the real so(3) generators of every spin ℓ in the upstream tesseral
// basis (M1), and the group SO(3) itself through its ℓ = 1 rotation (exp, log, composition).
#pragma once

#include <Eigen/Core>
#include <Eigen/Geometry>
#include <array>

#include "detail/so3_tables.hpp"
#include "error.hpp"

namespace gauge_attn {

/// The three generators G_x, G_y, G_z of one spin, (2ℓ+1, 2ℓ+1) each.
using Generators = std::array<Eigen::MatrixXd, 3>;

namespace detail {

inline Generators to_eigen(const GeneratorTables& t, int l) {
  const int K = 2 * l + 1;
  Generators G;
  for (int a = 0; a < 3; ++a)
    G[a] = Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(t[a].data(), K, K);
  return G;
}

inline Generators build_generators(int l) { return to_eigen(generator_tables(l), l); }

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
