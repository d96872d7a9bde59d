// gauge_attn/exact_backward.hpp: the exact-mode backward on the CPU, the reference of the GPU
// backward (docs/gradients.md, equations G1–G13).
//
// Per (sequence, head) the lift is recomputed in double (O(N)); each row's weights come back from
// the lifted vectors and the saved log-sum-exp, β_ij = exp(s_ij − L_i), so nothing of size N² is
// stored. A row pass accumulates the query gradients ā_i and, over the keys, b̂̄_j and the values'
// share; then the lift is differentiated token by token, the centring couples the tokens of a
// sequence through one sum (G11), and the frames collect the heads of a token (G13).
#pragma once

#include <Eigen/Core>
#include <cmath>
#include <cstddef>
#include <vector>

#include "attention.hpp"
#include "belief.hpp"
#include "detail/parallel.hpp"
#include "detail/so3_jacobian.hpp"
#include "gradients.hpp"
#include "irreps.hpp"
#include "lifted.hpp"
#include "mask.hpp"
#include "options.hpp"
#include "so3.hpp"

namespace gauge_attn::detail {

/// The symmetric gradient of a matrix read through its packed upper triangle (docs/gradients.md
/// §5): `halve` for sym-packing (off-diagonals halved: unpack), not for sym₂-packing (fill).
template <int K>
Eigen::Matrix<double, K, K> symmetric_gradient(const double* packed, bool halve) {
  Eigen::Matrix<double, K, K> X;
  for (int r = 0; r < K; ++r)
    for (int c = r; c < K; ++c) X(r, c) = X(c, r) = packed[lifted::sym_index(K, r, c)] * (r == c || !halve ? 1.0 : 0.5);
  return X;
}

/// The per-(sequence, head) part of the exact backward. Writes the head's slices of grads.mu and
/// grads.sigma, the frame terms y (n, 3) of (G13) for this head, and returns this head's κ̄ (G9).
template <int K, class Scalar>
double exact_backward_head(const BeliefView<Scalar>& q, const AttentionOptions& opt, double kappa, int b, int n,
                           int h, int num_heads, const HeadInfo& head, const AttentionResult<Scalar>& forward,
                           const OutputGradients<Scalar>& incoming, BeliefGradients<Scalar>& grads, double* y) {
  using W = LiftedWidths<K>;
  using Mat = Eigen::Matrix<double, K, K>;
  using Vec = Eigen::Matrix<double, K, 1>;
  using Row = Eigen::Array<double, Eigen::Dynamic, 1>;
  constexpr int P = W::lifted, V = W::values, Sym = W::sym;
  const bool diagonal = q.covariance == Covariance::diagonal;
  const std::size_t E = q.embed_dim;

  LiftedSequence<double> s;
  std::vector<lifted::PulledBack<double, K>> pulled;
  lift_sequence<K>(q, b, n, h, head, kappa, opt.identity_transport, s, &pulled);
  const Eigen::Map<const Vec> nu_mean(s.nu_mean.data());
  auto frame = [&](int i) { return Eigen::Map<const Eigen::Matrix<double, K, K, Eigen::RowMajor>>(&s.frames[std::size_t(i) * K * K]); };
  auto token = [&](int i) { return std::size_t(b) * q.tokens + i; };

  // Per row: the pulled-back incoming gradient Rᵀg, the weighted sums w and C, and C̄ (G2, G4).
  std::vector<Vec> pulled_g(n), w(n);
  std::vector<Mat> C(n), C_bar(n);
  std::vector<double> query_grad(std::size_t(n) * P, 0.0);  // ā_i (n, P)
  std::vector<double> key_grad(std::size_t(P) * n, 0.0);    // b̂̄_j (P, n), transposed like s.keys
  std::vector<double> value_share(std::size_t(V) * n, 0.0); // Σ_i β_ij x̄_i (V, n)
  std::vector<double> energy_grad(n, 0.0);                  // ε_i
  double kappa_sum = 0;                                     // Σ_ij s̄_ij (a_i·b_j)
  Row dot(n), weight(n), weight_bar(n);

  for (int i = 0; i < n; ++i) {
    const KeyRange keys = key_range(opt.mask, i, n);
    const int first = keys.begin, count = keys.end - keys.begin;
    const double* a = &s.queries[std::size_t(i) * P];
    // β_ij = exp(a_i·b_j + bias_ij − L_i) (M8, M5) from the saved log-sum-exp.
    auto d = dot.head(count);
    auto beta = weight.head(count);
    d.setZero();
    for (int p = 0; p < P; ++p) d += a[p] * Eigen::Map<const Row>(&s.keys[std::size_t(p) * n + first], count);
    const double lse = double(forward.lse[forward.row_index(b, h, i)]);
    if (opt.mask.alibi_slope != 0)
      beta = (d + opt.mask.alibi_slope * Row::LinSpaced(count, double(i - first), double(i - keys.end + 1)) - lse).exp();
    else
      beta = (d - lse).exp();
    if (keys.excluded >= 0) beta(keys.excluded - first) = 0;

    // X_i = Σ_j β_ij x_j: the values [sym(V_j), ν'_j] summed as the forward did (M9).
    double X[V];
    for (int v = 0; v < V; ++v) X[v] = (beta * Eigen::Map<const Row>(&s.values[std::size_t(v) * n + first], count)).sum();
    for (int k = 0; k < K; ++k) w[i](k) = X[Sym + k];
    Mat M;
    for (int r = 0; r < K; ++r)
      for (int c = r; c < K; ++c) M(r, c) = M(c, r) = X[lifted::sym_index(K, r, c)];
    C[i] = M - w[i] * w[i].transpose();

    // Incoming gradients in the pulled-back frame: Rᵀg and C̄ = RᵀĜR (G2).
    const auto R = frame(i);
    const std::size_t t = token(i);
    Vec g = Vec::Zero();
    if (incoming.mu)
      for (int k = 0; k < K; ++k) g(k) = double(incoming.mu[t * E + head.offset + k]);
    pulled_g[i] = R.transpose() * g;
    Mat G = Mat::Zero();
    if (incoming.sigma) {
      for (int r = 0; r < K; ++r)
        for (int c = 0; c < K; ++c)
          if (diagonal)
            G(r, c) = r == c ? double(incoming.sigma[t * E + head.offset + r]) : 0.0;
          else
            G(r, c) = double(incoming.sigma[(t * E + head.offset + r) * E + head.offset + c]);
      G = (0.5 * (G + G.transpose())).eval();
    }
    C_bar[i] = R.transpose() * G * R;
    const Vec w_bar = pulled_g[i] - 2 * C_bar[i] * w[i];
    double x_bar[V];  // [sym₂(C̄), w̄]: x̄·x_j = ⟨C̄, V_j⟩ + w̄·ν'_j
    for (int r = 0; r < K; ++r)
      for (int c = r; c < K; ++c) x_bar[lifted::sym_index(K, r, c)] = (r == c ? 1.0 : 2.0) * C_bar[i](r, c);
    for (int k = 0; k < K; ++k) x_bar[Sym + k] = w_bar(k);

    // β̄_ij = x̄_i·x_j + ε_i KL_ij and D_i = Σ_j β_ij β̄_ij (G5), KL_ij = −κ a_i·b_j − ½ ln det Σ_i.
    const double eps = incoming.energy ? double(incoming.energy[forward.row_index(b, h, i)]) : 0.0;
    energy_grad[i] = eps;
    auto beta_bar = weight_bar.head(count);
    beta_bar.setZero();
    for (int v = 0; v < V; ++v) beta_bar += x_bar[v] * Eigen::Map<const Row>(&s.values[std::size_t(v) * n + first], count);
    if (eps != 0) beta_bar += eps * (-kappa * d - s.half_logdet[i]);
    const double D = (beta * beta_bar).sum();
    // s̄ = β(β̄ − D) (G5); z̄ = −s̄/κ + ε β (G6), and Σ_j z̄_j b̂_j = −κ Σ_j z̄_j b_j.
    const Row s_bar = beta * (beta_bar - D);
    const Row z_bar = -s_bar / kappa + eps * beta;
    kappa_sum += (s_bar * d).sum();
    double* abar = &query_grad[std::size_t(i) * P];
    for (int p = 0; p < P; ++p) {
      const Eigen::Map<const Row> bp(&s.keys[std::size_t(p) * n + first], count);
      abar[p] += -kappa * (z_bar * bp).sum();
      Eigen::Map<Row>(&key_grad[std::size_t(p) * n + first], count) += a[p] * z_bar;  // (G7)
    }
    for (int v = 0; v < V; ++v) Eigen::Map<Row>(&value_share[std::size_t(v) * n + first], count) += x_bar[v] * beta;
  }

  // The lift, token by token (G10, G12); the centring sum (G11) and the frame terms wait for all.
  std::vector<Vec> nu_bar(n);
  std::vector<Mat> frame_term(n);  // Rᵀ R̄ without the μν̄ᵀ part, which needs the centring
  Vec centring = Vec::Zero();      // ν̄̄ = Σ_i Rᵀg_i − Σ_i ν̄'_i
  for (int i = 0; i < n; ++i) {
    const lifted::PulledBack<double, K>& pb = pulled[i];
    const Eigen::Map<const Mat> S(&pb.S[0][0]), Lambda(&pb.Lambda[0][0]);
    const Vec nu = Eigen::Map<const Vec>(pb.nu) - nu_mean;
    double A[P], Bh[P];
    for (int p = 0; p < P; ++p) {
      A[p] = query_grad[std::size_t(i) * P + p] + (p < V ? value_share[std::size_t(p) * n + i] : 0.0);
      Bh[p] = key_grad[std::size_t(p) * n + i];
    }
    const Mat Q_bar = symmetric_gradient<K>(A, true);
    const Eigen::Map<const Vec> A_nu(A + Sym), u(Bh + Sym);
    const double t_bar = Bh[Sym + K];
    const Mat Lambda_bar = 0.5 * symmetric_gradient<K>(Bh, false) - 0.5 * (u * nu.transpose() + nu * u.transpose()) +
                           0.5 * t_bar * nu * nu.transpose();
    nu_bar[i] = A_nu + 2 * Q_bar * nu - Lambda * u + t_bar * Lambda * nu;
    const double logdet_bar = 0.5 * t_bar - 0.5 * energy_grad[i];
    centring += pulled_g[i] - nu_bar[i];

    // Σ̄ = R (S̄ − ΛΛ̄Λ + d̄Λ) Rᵀ (G12), symmetric; the diagonal for diagonal beliefs.
    const auto R = frame(i);
    const Mat sigma_bar = R * (Q_bar - Lambda * Lambda_bar * Lambda + logdet_bar * Lambda) * R.transpose();
    const std::size_t t = token(i);
    for (int r = 0; r < K; ++r) {
      if (diagonal) {
        grads.sigma[t * E + head.offset + r] = Scalar(sigma_bar(r, r));
        continue;
      }
      for (int c = 0; c < K; ++c) grads.sigma[(t * E + head.offset + r) * E + head.offset + c] = Scalar(sigma_bar(r, c));
    }
    // Rᵀ R̄ from the outputs (G4) and the pull-back (G12): Rᵀ(2ΣRS̄ + 2Σ⁻¹RΛ̄) = 2(SS̄ + ΛΛ̄).
    frame_term[i] = pulled_g[i] * (w[i] + nu_mean).transpose() + 2 * C_bar[i] * C[i] + 2 * (S * Q_bar + Lambda * Lambda_bar);
  }
  const Generators& G = generators(head.l);
  for (int i = 0; i < n; ++i) {
    const Vec nu_bar_total = nu_bar[i] + centring / n;  // (G11)
    const auto R = frame(i);
    const Vec mu_bar = R * nu_bar_total;                // μ̄ = R ν̄ (G12)
    const std::size_t t = token(i);
    for (int k = 0; k < K; ++k) grads.mu[t * E + head.offset + k] = Scalar(mu_bar(k));
    if (K == 1 || opt.identity_transport) continue;
    const Mat T = frame_term[i] + Eigen::Map<const Vec>(pulled[i].nu) * nu_bar_total.transpose();  // + Rᵀμν̄ᵀ
    double* yi = y + (std::size_t(i) * num_heads + h) * 3;
    for (int a = 0; a < 3; ++a) yi[a] = (T.array() * G[a].array()).sum();  // y_a = ⟨RᵀR̄, G_a⟩ (G13)
  }
  return -kappa_sum / kappa;  // (G9): κ̄ = −(1/κ) Σ_ij s̄_ij (a_i·b_j)
}

template <class Spec, class Scalar>
void exact_backward(const BeliefView<Scalar>& q, const AttentionOptions& opt, const std::vector<double>& kappa,
                    const std::vector<int>& lengths, const AttentionResult<Scalar>& forward,
                    const OutputGradients<Scalar>& incoming, BeliefGradients<Scalar>& grads) {
  constexpr int H = Spec::num_heads;
  const int B = q.batch, N = q.tokens;
  std::vector<double> y(std::size_t(B) * N * H * 3, 0.0);  // (B, N, H, 3): frame terms per head
  std::vector<double> kappa_bar(std::size_t(B) * H, 0.0);
  parallel_for(std::int64_t(B) * H, [&](std::int64_t task) {
    const int b = int(task / H), h = int(task % H);
    const HeadInfo head = Spec::head(h);
    dispatch_head_dim<Spec>(head.l, [&](auto k) {
      kappa_bar[task] = exact_backward_head<decltype(k)::value>(q, opt, kappa[h], b, lengths[b], h, H, head, forward,
                                                                incoming, grads, &y[std::size_t(b) * N * H * 3]);
    });
  });
  for (std::size_t task = 0; task < kappa_bar.size(); ++task) grads.kappa[task % H] += kappa_bar[task];
  // φ̄ = J(φ)ᵀ Σ_heads y (G13).
  for (int b = 0; b < B; ++b)
    for (int i = 0; i < lengths[b]; ++i) {
      const std::size_t t = std::size_t(b) * N + i;
      double sum[3] = {0, 0, 0}, phi[3], out[3];
      for (int h = 0; h < H; ++h)
        for (int a = 0; a < 3; ++a) sum[a] += y[(t * H + h) * 3 + a];
      for (int a = 0; a < 3; ++a) phi[a] = double(q.phi[t * 3 + a]);
      frame_gradient(phi, sum, out);
      for (int a = 0; a < 3; ++a) grads.phi[t * 3 + a] = Scalar(out[a]);
    }
}

}  // namespace gauge_attn::detail
