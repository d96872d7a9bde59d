// gauge_attn/kl.hpp: the KL divergence between a belief and a transported one, pair by pair:
// the exact (M4) as a float64 reference, and the two upstream variants of math.md §6.
// The attention itself never calls the exact one; it uses the factorisation in lifted.hpp.
#pragma once

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <algorithm>
#include <cmath>

#include "error.hpp"

namespace gauge_attn {

namespace detail {
inline constexpr double upstream_variance_floor = 1e-6;  // σ ≥ 1e-6 in the diagonal mode (§6)
inline constexpr double upstream_epsilon = 1e-8;         // ε·I added in the full mode (§6)
}  // namespace detail

/// KL(N(μ_i, Σ_i) ‖ N(μ_t, Σ_t)) between two Gaussians of one head.
inline double kl_gaussian(const Eigen::VectorXd& mu_i, const Eigen::MatrixXd& Sigma_i, const Eigen::VectorXd& mu_t,
                          const Eigen::MatrixXd& Sigma_t) {
  detail::require(Sigma_t.allFinite(), "Sigma_t", "covariance has a non-finite entry (NaN or Inf)");
  detail::require(Sigma_i.allFinite(), "Sigma_i", "covariance has a non-finite entry (NaN or Inf)");
  detail::require(mu_i.allFinite(), "mu_i", "mean has a non-finite entry (NaN or Inf)");
  detail::require(mu_t.allFinite(), "mu_t", "mean has a non-finite entry (NaN or Inf)");
  const Eigen::LLT<Eigen::MatrixXd> lt(Sigma_t), li(Sigma_i);
  detail::require(lt.info() == Eigen::Success, "Sigma_t", "covariance is not positive definite");
  detail::require(li.info() == Eigen::Success, "Sigma_i", "covariance is not positive definite");
  const Eigen::VectorXd d = mu_t - mu_i;
  const double logdet_t = 2 * lt.matrixLLT().diagonal().array().log().sum();
  const double logdet_i = 2 * li.matrixLLT().diagonal().array().log().sum();
  return 0.5 * (lt.solve(Sigma_i).trace() + d.dot(lt.solve(d)) - double(mu_i.size()) + logdet_t - logdet_i);
}

/// (M4): KL(N(μ_i, Σ_i) ‖ N(Ω μ_j, Ω Σ_j Ωᵀ)) for one head, evaluated directly.
inline double kl_direct(const Eigen::VectorXd& mu_i, const Eigen::MatrixXd& Sigma_i, const Eigen::VectorXd& mu_j,
                        const Eigen::MatrixXd& Sigma_j, const Eigen::MatrixXd& Omega) {
  return kl_gaussian(mu_i, Sigma_i, Omega * mu_j, Omega * Sigma_j * Omega.transpose());
}

/// Upstream diagonal mode (§6): the transported covariance is replaced by its diagonal
/// σ'_k = Σ_l Ω_kl² σ_j,l; both variance vectors are clamped to ≥ 1e-6; the KL is clamped ≥ 0.
inline double kl_upstream_diagonal(const Eigen::VectorXd& mu_i, const Eigen::VectorXd& sigma_i,
                                   const Eigen::VectorXd& mu_j, const Eigen::VectorXd& sigma_j,
                                   const Eigen::MatrixXd& Omega) {
  constexpr double floor = detail::upstream_variance_floor;
  const Eigen::ArrayXd si = sigma_i.array().max(floor);
  const Eigen::ArrayXd sp = (Omega.array().square().matrix() * sigma_j).array().max(floor);
  const Eigen::ArrayXd d = (Omega * mu_j - mu_i).array();
  const double kl = 0.5 * (si / sp + d.square() / sp - 1.0 + sp.log() - si.log()).sum();
  return std::max(kl, 0.0);
}

/// Upstream full mode (§6): both covariances regularised by ε·I before a Cholesky-based KL
/// (ε = 1e-8, as the upstream CPU path that made the parity fixture); the KL is clamped ≥ 0.
inline double kl_upstream_full(const Eigen::VectorXd& mu_i, const Eigen::MatrixXd& Sigma_i, const Eigen::VectorXd& mu_j,
                               const Eigen::MatrixXd& Sigma_j, const Eigen::MatrixXd& Omega,
                               double epsilon = detail::upstream_epsilon) {
  const Eigen::MatrixXd I = Eigen::MatrixXd::Identity(mu_i.size(), mu_i.size());
  const Eigen::MatrixXd St = Omega * Sigma_j * Omega.transpose() + epsilon * I;
  return std::max(kl_gaussian(mu_i, Sigma_i + epsilon * I, Omega * mu_j, St), 0.0);
}

}  // namespace gauge_attn
