// gauge_attn/wigner.hpp: Wigner-D matrices D^ℓ(φ) = exp(φ·G^ℓ) (M2), exact, and the two
// exponentials the upstream project used (Padé via Eigen for checks, 4th-order Taylor for
// compatibility).
#pragma once

#include <Eigen/Core>
#include <unsupported/Eigen/MatrixFunctions>
#include <utility>

#include "detail/wigner_factorised.hpp"
#include "so3.hpp"

namespace gauge_attn {

namespace detail {

template <int... Ls>
void wigner_d_dispatch(int l, const double* phi, double* D, std::integer_sequence<int, Ls...>) {
  ((l == Ls ? wigner_d_factorised<2 * Ls + 1>(quarter_turn_table(Ls).data(), phi, D) : void()), ...);
}

}  // namespace detail

/// D^ℓ(φ) = exp(φ·G^ℓ) (M2), (2ℓ+1, 2ℓ+1), orthogonal to ~1e-15 for every φ.
inline Eigen::MatrixXd wigner_d(int l, const Eigen::Vector3d& phi) {
  detail::check_spin(l);
  Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> D(2 * l + 1, 2 * l + 1);
  detail::wigner_d_dispatch(l, phi.data(), D.data(), std::make_integer_sequence<int, max_supported_l + 1>{});
  return D;
}

/// The same with the spin fixed at compile time (fixed-size result, no heap).
template <int L>
Eigen::Matrix<double, 2 * L + 1, 2 * L + 1> wigner_d(const Eigen::Vector3d& phi) {
  static_assert(L >= 0 && L <= max_supported_l, "gauge_attn::wigner_d<L>: L outside [0, max_supported_l]");
  constexpr int K = 2 * L + 1;
  Eigen::Matrix<double, K, K, Eigen::RowMajor> D;
  detail::wigner_d_factorised<K>(detail::quarter_turn_table(L).data(), phi.data(), D.data());
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
