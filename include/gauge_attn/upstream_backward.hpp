// gauge_attn/upstream_backward.hpp: the backward pass of Mode::upstream (math.md §6) on the CPU,
// pair by pair: the exact derivative, in double, of what detail::upstream_forward computes
// (docs/gradients.md §7), or with upstream_detached_kl the upstream autograd's full-Σ gradient.
// O(N²K³) per (sequence, head), like the forward: for small N.
#pragma once

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "attention.hpp"
#include "belief.hpp"
#include "detail/parallel.hpp"
#include "gradients.hpp"
#include "irreps.hpp"
#include "kl.hpp"
#include "options.hpp"
#include "so3.hpp"
#include "wigner.hpp"

namespace gauge_attn::detail {

/// The adjoint of the derivative of the exponential at A: the Ā with ⟨Ā, dA⟩_F = ⟨Ē, d exp(A)⟩_F (G18).
/// Padé: the Fréchet derivative's adjoint L(Aᵀ, Ē), the upper-right block of exp([[Aᵀ, Ē], [0, Aᵀ]])
/// (Ē scaled to unit norm there, L being linear in it). Taylor-4: the polynomial's own derivative,
/// Σ_{k=1..4} (1/k!) Σ_{p+q=k−1} (Aᵀ)^p Ē (Aᵀ)^q.
inline Eigen::MatrixXd expm_adjoint(const Eigen::MatrixXd& A, const Eigen::MatrixXd& E_bar, UpstreamExponential kind) {
  using Eigen::MatrixXd;
  const int K = int(A.rows());
  const MatrixXd At = A.transpose();
  if (kind == UpstreamExponential::taylor4) {
    const MatrixXd power[4] = {MatrixXd::Identity(K, K), At, At * At, At * At * At};
    MatrixXd out = MatrixXd::Zero(K, K);
    double factorial = 1;
    for (int k = 1; k <= 4; ++k) {
      factorial *= k;
      for (int p = 0; p < k; ++p) out += power[p] * E_bar * power[k - 1 - p] / factorial;
    }
    return out;
  }
  const double scale = E_bar.norm();
  if (scale == 0) return MatrixXd::Zero(K, K);
  MatrixXd block = MatrixXd::Zero(2 * K, 2 * K);
  block.topLeftCorner(K, K) = At;
  block.bottomRightCorner(K, K) = At;
  block.topRightCorner(K, K) = E_bar / scale;
  const MatrixXd e = expm_pade(block);
  return scale * e.topRightCorner(K, K);
}

/// ∂KL_ij/∂(μ_i, Σ_i, μ_j, Σ_j, Ω_ij) of one pair whose KL ≥ 0 clamp is inactive. For diagonal
/// beliefs the Σ gradients are diagonal matrices (the gradients of the variances on the diagonal).
struct KlGradient {
  Eigen::VectorXd mu_i, mu_j;
  Eigen::MatrixXd cov_i, cov_j, omega;
};

/// Of kl_upstream_diagonal (§6): s = max(σ_i, f), u = (Ω∘Ω)σ_j, s' = max(u, f), d = Ωμ_j − μ_i,
/// KL = ½ Σ_k [s_k/s'_k + d_k²/s'_k − 1 + ln s'_k − ln s_k]; an active floor f passes nothing (G16).
inline KlGradient kl_upstream_diagonal_gradient(const Eigen::VectorXd& mu_i, const Eigen::VectorXd& sigma_i,
                                                const Eigen::VectorXd& mu_j, const Eigen::VectorXd& sigma_j,
                                                const Eigen::MatrixXd& Omega) {
  using Eigen::ArrayXd;
  constexpr double f = upstream_variance_floor;
  const Eigen::MatrixXd Omega2 = Omega.array().square().matrix();
  const ArrayXd s = sigma_i.array().max(f);
  const ArrayXd u = (Omega2 * sigma_j).array();
  const ArrayXd sp = u.max(f);
  const Eigen::VectorXd d = Omega * mu_j - mu_i;
  const ArrayXd s_bar = (sigma_i.array() > f).select(0.5 * (1 / sp - 1 / s), 0.0);
  const ArrayXd u_bar = (u > f).select(0.5 * (1 / sp - (s + d.array().square()) / sp.square()), 0.0);
  const Eigen::VectorXd d_bar = (d.array() / sp).matrix();
  KlGradient g;
  g.mu_i = -d_bar;
  g.mu_j = Omega.transpose() * d_bar;
  g.cov_i = s_bar.matrix().asDiagonal();
  g.cov_j = (Omega2.transpose() * u_bar.matrix()).asDiagonal();
  g.omega = d_bar * mu_j.transpose() + 2 * u_bar.matrix().asDiagonal() * Omega * sigma_j.asDiagonal();
  return g;
}

/// Of kl_upstream_full (§6): with S = Σ_i + εI, T = ΩΣ_jΩᵀ + εI, P = T⁻¹, y = P d,
/// KL = ½[tr(P S) + dᵀy − K + ln det T − ln det S], so S̄ = ½(P − S⁻¹), T̄ = ½(P − PSP − yyᵀ),
/// d̄ = y (G17).
inline KlGradient kl_upstream_full_gradient(const Eigen::VectorXd& mu_i, const Eigen::MatrixXd& Sigma_i,
                                            const Eigen::VectorXd& mu_j, const Eigen::MatrixXd& Sigma_j,
                                            const Eigen::MatrixXd& Omega) {
  using Eigen::MatrixXd;
  const MatrixXd I = MatrixXd::Identity(mu_i.size(), mu_i.size());
  const MatrixXd S = Sigma_i + upstream_epsilon * I;
  const Eigen::LLT<MatrixXd> lt(Omega * Sigma_j * Omega.transpose() + upstream_epsilon * I), ls(S);
  const MatrixXd P = lt.solve(I);
  const Eigen::VectorXd y = lt.solve(Omega * mu_j - mu_i);
  const MatrixXd T_bar = 0.5 * (P - P * S * P - y * y.transpose());
  KlGradient g;
  g.mu_i = -y;
  g.mu_j = Omega.transpose() * y;
  g.cov_i = 0.5 * (P - ls.solve(I));
  g.cov_j = Omega.transpose() * T_bar * Omega;
  g.omega = y * mu_j.transpose() + 2 * T_bar * Omega * Sigma_j;
  return g;
}

/// What one (sequence, head) adds to the gradients that all heads share: φ (n, 3) and its κ_h.
struct SharedGradients {
  std::vector<double> phi;
  double kappa = 0;
};

/// The backward of one (sequence b, head h) of upstream_forward, n = the valid length. Writes the
/// head's slices of grads.mu and grads.sigma (no other task touches them) and fills `shared`.
/// With opt.upstream_detached_kl and full covariances, the gradient the upstream autograd gives
/// instead (docs/gradients.md §7).
template <class Scalar>
void upstream_head_backward(const BeliefView<Scalar>& q, const AttentionOptions& opt, double kappa, int b, int n,
                            int h, const HeadInfo& head, const OutputGradients<Scalar>& in,
                            BeliefGradients<Scalar>& grads, SharedGradients& shared) {
  using Eigen::MatrixXd;
  using Eigen::VectorXd;
  const int K = head.dim;
  const std::size_t E = q.embed_dim;
  const bool diagonal = q.covariance == Covariance::diagonal;
  const UpstreamHead s = upstream_head(q, opt, b, n, h, head);
  // upstream_detached_kl, full Σ: the upstream autograd's gradient, which takes the KL, so β, as a
  // constant: nothing goes back through the softmax or the KL (so the energy and κ get nothing),
  // only the message terms of (G14).
  const bool through_kl = diagonal || !opt.upstream_detached_kl;
  std::vector<VectorXd> mu_bar(n, VectorXd::Zero(K));
  std::vector<MatrixXd> cov_bar(n, MatrixXd::Zero(K, K)), fwd_bar(n, MatrixXd::Zero(K, K)),
      inv_bar(n, MatrixXd::Zero(K, K)), omega(n), omega_bar(n);  // omega: Ω_ij of row i
  std::vector<double> p(n), beta(n), p_bar(n);
  for (int i = 0; i < n; ++i) {
    const std::size_t t = q.token_index(b, i);
    const double* kl = &s.kl[std::size_t(i) * n];
    for (int j = 0; j < n; ++j) omega[j] = s.omega(i, j);
    upstream_softmax(opt.mask, kl, kappa, i, n, p.data());
    for (int j = 0; j < n; ++j) beta[j] = std::max(p[j], upstream_beta_floor);
    // Incoming: g = ∂L/∂m_i, Ĝ = the symmetric ∂L/∂Σ^agg_i (diagonal beliefs: diag of the
    // returned variances' gradient), ε = ∂L/∂e_i.
    VectorXd g = VectorXd::Zero(K);
    MatrixXd G = MatrixXd::Zero(K, K);
    double eps = 0;
    for (int k = 0; k < K; ++k) {
      if (in.mu) g(k) = double(in.mu[t * E + head.offset + k]);
      if (in.sigma && diagonal) G(k, k) = double(in.sigma[t * E + head.offset + k]);
      if (in.sigma && !diagonal)
        for (int c = 0; c < K; ++c) G(k, c) = double(in.sigma[(t * E + head.offset + k) * E + head.offset + c]);
    }
    G = (0.5 * (G + G.transpose())).eval();
    if (in.energy) eps = double(in.energy[(std::size_t(b) * grads.num_heads + h) * q.tokens + i]);
    // Σ^agg_i = Σ_j β_j(St_j + mt_j mt_jᵀ) − m_i m_iᵀ (M7) sends −2Ĝm_i back to m_i (M6).
    VectorXd m = VectorXd::Zero(K);
    for (int j = 0; j < n; ++j) m += beta[j] * omega[j] * s.mu[j];
    const VectorXd m_bar = g - 2 * G * m;
    // The messages and the energy, key by key (every key, masked ones at their floored β) (G14):
    // β̄_j = m̄·mt + ⟨Ĝ, St + mt mtᵀ⟩ + ε KL_ij, with mt = Ωμ_j and St = ΩΣ_jΩᵀ. For diagonal
    // beliefs Ĝ is diagonal, so ⟨Ĝ, diag St⟩ = ⟨Ĝ, St⟩ and the same terms hold.
    double d = 0;  // Σ_j p_j p̄_j
    for (int j = 0; j < n; ++j) {
      const VectorXd mt = omega[j] * s.mu[j];
      const MatrixXd GOS = G * omega[j] * s.cov[j];
      const double beta_bar = m_bar.dot(mt) + GOS.cwiseProduct(omega[j]).sum() + mt.dot(G * mt) + eps * kl[j];
      const VectorXd mt_bar = beta[j] * (m_bar + 2 * G * mt);
      omega_bar[j] = mt_bar * s.mu[j].transpose() + 2 * beta[j] * GOS;
      mu_bar[j] += omega[j].transpose() * mt_bar;
      cov_bar[j] += beta[j] * omega[j].transpose() * G * omega[j];
      // β = max(p, 1e-8): where the floor is active (masked keys, tiny weights) p gets nothing.
      p_bar[j] = p[j] > upstream_beta_floor ? beta_bar : 0.0;
      d += p[j] * p_bar[j];
    }
    for (int j = 0; j < n; ++j) {
      if (through_kl) {
        // Softmax (M5) of x_j = −KL_ij/κ + bias_ij: x̄_j = p_j(p̄_j − Σ_k p_k p̄_k), masked p_j = 0 (G15).
        const double x_bar = p[j] * (p_bar[j] - d);
        shared.kappa += x_bar * kl[j] / (kappa * kappa);
        const double kl_bar = eps * beta[j] - x_bar / kappa;
        if (kl[j] > 0) {  // KL ≥ 0: a clamped pair passes nothing
          const KlGradient dk =
              diagonal ? kl_upstream_diagonal_gradient(s.mu[i], s.cov[i].diagonal(), s.mu[j], s.cov[j].diagonal(),
                                                       omega[j])
                       : kl_upstream_full_gradient(s.mu[i], s.cov[i], s.mu[j], s.cov[j], omega[j]);
          mu_bar[i] += kl_bar * dk.mu_i;
          cov_bar[i] += kl_bar * dk.cov_i;
          mu_bar[j] += kl_bar * dk.mu_j;
          cov_bar[j] += kl_bar * dk.cov_j;
          omega_bar[j] += kl_bar * dk.omega;
        }
      }
      // Ω_ij = exp(A_i) exp(−A_j) (M3).
      fwd_bar[i] += omega_bar[j] * s.inv[j].transpose();
      inv_bar[j] += s.fwd[i].transpose() * omega_bar[j];
    }
  }
  for (int i = 0; i < n; ++i) {
    const std::size_t t = q.token_index(b, i);
    for (int k = 0; k < K; ++k) grads.mu[t * E + head.offset + k] = Scalar(mu_bar[i](k));
    if (diagonal) {
      for (int k = 0; k < K; ++k) grads.sigma[t * E + head.offset + k] = Scalar(cov_bar[i](k, k));
    } else {
      const MatrixXd sym = 0.5 * (cov_bar[i] + cov_bar[i].transpose());
      for (int r = 0; r < K; ++r)
        for (int c = 0; c < K; ++c) grads.sigma[(t * E + head.offset + r) * E + head.offset + c] = Scalar(sym(r, c));
    }
  }
  shared.phi.assign(std::size_t(n) * 3, 0.0);
  if (opt.identity_transport || head.l == 0) return;
  // A_i = φ_i·G: Ā_i = exp*(A_i)[F̄_i] − exp*(−A_i)[V̄_i], φ̄_i,a = ⟨Ā_i, G_a⟩_F (G18).
  const Generators& gens = upstream_generators(head.l);
  for (int i = 0; i < n; ++i) {
    const MatrixXd A = algebra_element(gens, q.frame(b, i));
    const MatrixXd A_bar = expm_adjoint(A, fwd_bar[i], opt.exponential) - expm_adjoint(-A, inv_bar[i], opt.exponential);
    for (int a = 0; a < 3; ++a) shared.phi[std::size_t(i) * 3 + a] = A_bar.cwiseProduct(gens[a]).sum();
  }
}

/// The backward of upstream_forward: every (sequence, head) in parallel, then the φ gradients of
/// each token summed over its heads and κ_h over the sequences. grads is pre-sized and zeroed.
template <class Spec, class Scalar>
void upstream_backward(const BeliefView<Scalar>& q, const AttentionOptions& opt, const std::vector<double>& kappa,
                       const std::vector<int>& lengths, const OutputGradients<Scalar>& incoming,
                       BeliefGradients<Scalar>& grads) {
  constexpr int H = Spec::num_heads;
  const int B = q.batch;
  std::vector<SharedGradients> shared(std::size_t(B) * H);
  parallel_for(std::int64_t(B) * H, [&](std::int64_t t) {
    const int b = int(t / H), h = int(t % H);
    upstream_head_backward(q, opt, kappa[h], b, lengths[b], h, Spec::head(h), incoming, grads, shared[t]);
  });
  for (int b = 0; b < B; ++b) {
    std::vector<double> phi(std::size_t(lengths[b]) * 3, 0.0);
    for (int h = 0; h < H; ++h) {
      const SharedGradients& part = shared[std::size_t(b) * H + h];
      for (std::size_t k = 0; k < phi.size(); ++k) phi[k] += part.phi[k];
      grads.kappa[h] += part.kappa;
    }
    for (std::size_t k = 0; k < phi.size(); ++k) grads.phi[q.token_index(b, 0) * 3 + k] = Scalar(phi[k]);
  }
}

}  // namespace gauge_attn::detail
