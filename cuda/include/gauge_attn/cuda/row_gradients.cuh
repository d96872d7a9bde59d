// gauge_attn/cuda/row_gradients.cuh: the first step of the backward, row by row (O(N)): the
// incoming gradients of the outputs pulled back to the lifted sums (G2) and the softmax's row term
// D_i (G5), from the forward's saved outputs. One thread per (token, head), in double; it writes
// the value gradient x̄_i and the row constants that the pair pass (flash_kl_backward.cuh) needs,
// and reports non-finite incoming gradients into the status word.
#pragma once

#include <gauge_attn/lifted.hpp>

#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>

#include "backward_layout.cuh"
#include "layout.cuh"
#include "lift.cuh"

namespace gauge_attn::gpu {

namespace detail {

/// The incoming gradients of one (token, head) and the saved mean message, in the identity frame.
template <int K>
struct OutputGradient {
  double w[K];        // w_i = R_iᵀm_i − ν̄
  double g[K];        // R_iᵀ g_i
  double G[K][K];     // Ĝ_i = (G_i + G_iᵀ)/2, in the output frame (diag(g^Σ) for diagonal beliefs)
  double Cbar[K][K];  // C̄_i = R_iᵀ Ĝ_i R_i
  double epsilon;     // ε_i = ∂L/∂e_i
};

/// A finite incoming value, or 0 after reporting the first non-finite one.
__device__ inline double finite_or_report(float x, unsigned long long* status, InputError code, long long index) {
  if (isfinite(x)) return x;
  report(status, code, index);
  return 0;
}

/// Reads and pulls back the incoming gradients of token (b, i) on head h (G2's inputs), and w_i.
/// `R` is R_i, `mean` is ν̄ of the sequence.
template <int K, class Spec>
__device__ void output_gradient(const BackwardParams<Spec>& p, int b, int h, int i, const double* R,
                                const double* mean, OutputGradient<K>& o) {
  const HeadLayout& head = p.lift.heads[h];
  const std::size_t t = std::size_t(b) * p.lift.tokens + i, E = p.lift.embed_dim;
  const long long index = (long long)t * Spec::num_heads + h;
  double m[K], g[K];
  for (int k = 0; k < K; ++k) {
    m[k] = p.saved.mu[t * E + head.offset + k];
    g[k] = p.incoming.mu ? finite_or_report(p.incoming.mu[t * E + head.offset + k], p.lift.status,
                                            InputError::incoming_mu, index)
                         : 0.0;
  }
  for (int k = 0; k < K; ++k) {  // w = Rᵀm − ν̄, ĝ = Rᵀg
    double w = 0, gk = 0;
    for (int r = 0; r < K; ++r) {
      w += R[r * K + k] * m[r];
      gk += R[r * K + k] * g[r];
    }
    o.w[k] = w - mean[k];
    o.g[k] = gk;
  }
  for (int r = 0; r < K; ++r)
    for (int c = 0; c < K; ++c) o.G[r][c] = 0;
  if (p.incoming.sigma) {
    const float* G = p.incoming.sigma;
    for (int r = 0; r < K; ++r)
      if (p.lift.diagonal) {
        o.G[r][r] = finite_or_report(G[t * E + head.offset + r], p.lift.status, InputError::incoming_sigma, index);
      } else {
        for (int c = 0; c < K; ++c) {
          const double x = 0.5 * finite_or_report(G[(t * E + head.offset + r) * E + head.offset + c], p.lift.status,
                                                  InputError::incoming_sigma, index);
          o.G[r][c] += x;
          o.G[c][r] += x;
        }
      }
  }
  double GR[K][K];  // Ĝ R, then C̄ = Rᵀ (Ĝ R)
  for (int r = 0; r < K; ++r)
    for (int c = 0; c < K; ++c) {
      double s = 0;
      for (int k = 0; k < K; ++k) s += o.G[r][k] * R[k * K + c];
      GR[r][c] = s;
    }
  for (int r = 0; r < K; ++r)
    for (int c = 0; c < K; ++c) {
      double s = 0;
      for (int k = 0; k < K; ++k) s += R[k * K + r] * GR[k][c];
      o.Cbar[r][c] = s;
    }
  const std::size_t row = (std::size_t(b) * Spec::num_heads + h) * p.lift.tokens + i;
  o.epsilon = p.incoming.energy
                  ? finite_or_report(p.incoming.energy[row], p.lift.status, InputError::incoming_energy, index)
                  : 0.0;
}

/// ν̄ of head h in sequence b (the lift's sums over its n valid tokens).
template <int K, class Spec>
__device__ void sequence_mean(const LiftParams<Spec>& lp, int b, int h, double (&mean)[K]) {
  const double* sum = lp.means + lp.heads[h].means + std::size_t(b) * K;
  for (int k = 0; k < K; ++k) mean[k] = sum[k] / lp.lengths[b];
}

}  // namespace detail

/// Grid (⌈N/128⌉, H, B), one thread per (token, head): the value gradient of row i in the GPU value
/// layout, x̄_i = [w̄_i, sym₂(C̄_i)] with w̄_i = R_iᵀg_i − 2C̄_iw_i (G2), and the row constants of the
/// pair pass: L2_i = L_i·log₂e, D'_i = D_i + ε_i(½ ln det Σ_i + κ L_i) with
/// D_i = w̄_i·w_i + ⟨Ĝ_i, Σ^agg_i⟩ + w_iᵀC̄_iw_i + ε_i e_i (G5), c_i = ε_i κ ln 2 and κε_i. Then
/// β̄_ij − D_i = x̄_i·x_j − c_i (a_i·k_j − L2_i) − D'_i, a difference of moderate numbers (the
/// scores relative to the log-sum-exp), and p̄_ij = s̄_ij − κε_i β_ij.
template <class Spec>
__global__ void __launch_bounds__(lift_threads) row_gradients_kernel(BackwardParams<Spec> p) {
  const int b = blockIdx.z, h = blockIdx.y, i = blockIdx.x * lift_threads + threadIdx.x;
  const int n = p.lift.lengths[b];
  if (i >= n) return;
  const HeadLayout& head = p.lift.heads[h];
  visit_spin(head.irrep, typename Spec::spins{}, [&](auto spin) {
    constexpr int K = 2 * decltype(spin)::value + 1;
    const std::size_t t = std::size_t(b) * p.lift.tokens + i, E = p.lift.embed_dim;
    const double* R = p.lift.frames + head.frames + t * K * K;
    double mean[K];
    detail::sequence_mean<K>(p.lift, b, h, mean);
    detail::OutputGradient<K> o;
    detail::output_gradient<K>(p, b, h, i, R, mean, o);
    double wbar[K], D = 0;
    for (int r = 0; r < K; ++r) {
      double s = o.g[r];
      for (int c = 0; c < K; ++c) {
        s -= 2 * o.Cbar[r][c] * o.w[c];
        D += o.w[r] * o.Cbar[r][c] * o.w[c];
      }
      wbar[r] = s;
      D += s * o.w[r];
    }
    if (p.incoming.sigma)  // ⟨Ĝ, Σ^agg⟩ = ⟨C̄, C⟩: for diagonal beliefs the diagonal that was returned
      for (int r = 0; r < K; ++r)
        for (int c = 0; c < K; ++c)
          if (r == c || !p.lift.diagonal)
            D += o.G[r][c] * (p.lift.diagonal ? p.saved.sigma[t * E + head.offset + r]
                                              : p.saved.sigma[(t * E + head.offset + r) * E + head.offset + c]);
    const std::size_t row = (std::size_t(b) * Spec::num_heads + h) * p.lift.tokens + i;
    const double lse = p.saved.lse[row], half_logdet = p.lift.half_logdets[std::size_t(h) * p.lift.batch * p.lift.tokens + t];
    if (o.epsilon != 0) D += o.epsilon * (p.saved.energy[row] + half_logdet + head.kappa * lse);
    constexpr double ln2 = 0.6931471805599453, log2e = 1.4426950408889634;
    const BackwardHeadLayout& bh = p.heads[h];
    float* out = p.rows + bh.rows + t * bh.row_stride;
    for (int k = 0; k < bh.row_stride - 4; ++k) out[k] = 0.f;
    for (int k = 0; k < K; ++k) out[k] = float(wbar[k]);
    if (p.covariance)
      for (int r = 0; r < K; ++r)
        for (int c = r; c < K; ++c) out[K + lifted::sym_index(K, r, c)] = float(r == c ? o.Cbar[r][c] : 2 * o.Cbar[r][c]);
    float* constants = out + bh.row_stride - 4;
    constants[0] = float(lse * log2e);
    constants[1] = float(D);
    constants[2] = float(o.epsilon * head.kappa * ln2);
    constants[3] = float(o.epsilon * head.kappa);
  });
}

}  // namespace gauge_attn::gpu
