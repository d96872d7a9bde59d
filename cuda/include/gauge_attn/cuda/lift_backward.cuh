// gauge_attn/cuda/lift_backward.cuh: the last step of the backward, token by token (O(N), double):
// the lifted gradients ā_i, b̂̄_i back through the packing, the centring and the pull-back to
// μ, Σ and the frames (docs/gradients.md §5–6). Two kernels: the first per (token, head) computes
// Σ̄ (G12), ν̄' (G10) and the frames' share of everything but the centring, and sums the centring
// term per sequence (G11); the second per token finishes μ̄ = Rν̄ and φ̄ = J(φ)ᵀ y (G13), summing y
// over the token's heads, and writes κ̄ (G9).
#pragma once

#include <gauge_attn/detail/so3_jacobian.hpp>
#include <gauge_attn/lifted.hpp>

#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>

#include "backward_layout.cuh"
#include "layout.cuh"
#include "lift.cuh"
#include "row_gradients.cuh"

namespace gauge_attn::gpu {

namespace detail {

constexpr double ln2_d = 0.6931471805599453;

/// ⟨X, G_b⟩_F for the three generators of a spin, G = (G_x, G_y, G_z) row-major, added to y.
template <int K>
__device__ void add_generator_products(const double (&X)[K][K], const double* G, double (&y)[3]) {
  for (int a = 0; a < 3; ++a) {
    double s = 0;
    for (int r = 0; r < K; ++r)
      for (int c = 0; c < K; ++c) s += X[r][c] * G[(a * K + r) * K + c];
    y[a] += s;
  }
}

/// C = A B for K×K arrays.
template <int K>
__device__ void product(const double (&A)[K][K], const double (&B)[K][K], double (&C)[K][K]) {
  for (int r = 0; r < K; ++r)
    for (int c = 0; c < K; ++c) {
      double s = 0;
      for (int k = 0; k < K; ++k) s += A[r][k] * B[k][c];
      C[r][c] = s;
    }
}

/// The first step for token i of sequence b on head h; `centring` gets R_iᵀg_i − ν̄'_i (zeros for
/// padded tokens), the token's share of Σ_i (R_iᵀg_i − ν̄'_i) (G11).
template <int K, class Spec>
__device__ void lift_backward_token(const BackwardParams<Spec>& p, int b, int h, int i, double (&centring)[K]) {
  using W = LiftedWidths<K>;
  constexpr int P = W::lifted, S = W::sym;
  const LiftParams<Spec>& lp = p.lift;
  const HeadLayout& head = lp.heads[h];
  const BackwardHeadLayout& bh = p.heads[h];
  for (int k = 0; k < K; ++k) centring[k] = 0;
  if (i >= lp.lengths[b]) return;
  const std::size_t t = std::size_t(b) * lp.tokens + i, E = lp.embed_dim;
  const double* R = lp.frames + head.frames + t * K * K;
  lifted::PulledBack<double, K> pb;
  if (!pull_back_token<K>(lp, h, t, pb)) return;  // reported by the lift
  double mean[K], nu[K];
  sequence_mean<K>(lp, b, h, mean);
  for (int k = 0; k < K; ++k) nu[k] = pb.nu[k] - mean[k];  // ν'
  OutputGradient<K> o;
  output_gradient<K>(p, b, h, i, R, mean, o);

  // ā = ln 2·Ā + the values' share X̄ (G7): CPU order [sym, ν] of a, GPU value order [ν, sym] of X̄.
  // b̂̄ = −U/κ. Ā's last entry (the constant's) is never needed.
  const float* abar = p.abar + bh.lifted + t * round4(P);
  const float* u_sum = p.u + bh.lifted + t * round4(P);
  const float* xbar = p.xbar + bh.values + t * head.value_stride;
  double A_sym[S], A_nu[K], B_sym[S], u[K];
  for (int s = 0; s < S; ++s) {
    A_sym[s] = ln2_d * abar[s] + (p.covariance ? xbar[K + s] : 0.0);
    B_sym[s] = -u_sum[s] / head.kappa;
  }
  for (int k = 0; k < K; ++k) {
    A_nu[k] = ln2_d * abar[S + k] + xbar[k];
    u[k] = -u_sum[S + k] / head.kappa;
  }
  const double tb = -u_sum[P - 1] / head.kappa;

  // (G10): S̄ = unpack(A_sym), Λ̄ = ½ fill(B_sym) − ½(uν'ᵀ + ν'uᵀ) + ½ t ν'ν'ᵀ,
  // ν̄' = A_ν + 2S̄ν' − Λu + tΛν', d̄ = ½t − ½ε (G8).
  double Sbar[K][K], Lbar[K][K], nubar[K];
  for (int r = 0; r < K; ++r)
    for (int c = r; c < K; ++c) {
      const int idx = lifted::sym_index(K, r, c);
      Sbar[r][c] = Sbar[c][r] = r == c ? A_sym[idx] : 0.5 * A_sym[idx];
      Lbar[r][c] = Lbar[c][r] = 0.5 * B_sym[idx];
    }
  for (int r = 0; r < K; ++r) {
    double s = A_nu[r];
    for (int c = 0; c < K; ++c) {
      Lbar[r][c] += 0.5 * (tb * nu[r] * nu[c] - u[r] * nu[c] - nu[r] * u[c]);
      s += 2 * Sbar[r][c] * nu[c] - pb.Lambda[r][c] * u[c] + tb * pb.Lambda[r][c] * nu[c];
    }
    nubar[r] = s;
  }
  const double dbar = 0.5 * tb - 0.5 * o.epsilon;

  // (G12): Σ̄ = R (S̄ − ΛΛ̄Λ + d̄Λ) Rᵀ, the diagonal for diagonal beliefs.
  double LL[K][K], T[K][K], RT[K][K];
  product<K>(pb.Lambda, Lbar, LL);  // ΛΛ̄, also a term of the frames' gradient below
  product<K>(LL, pb.Lambda, T);
  for (int r = 0; r < K; ++r)
    for (int c = 0; c < K; ++c) T[r][c] = Sbar[r][c] - T[r][c] + dbar * pb.Lambda[r][c];
  for (int r = 0; r < K; ++r)
    for (int c = 0; c < K; ++c) {
      double s = 0;
      for (int k = 0; k < K; ++k) s += R[r * K + k] * T[k][c];
      RT[r][c] = s;
    }
  for (int r = 0; r < K; ++r)
    for (int c = 0; c < K; ++c) {
      if (lp.diagonal && r != c) continue;
      double s = 0;
      for (int k = 0; k < K; ++k) s += RT[r][k] * R[c * K + k];
      if (lp.diagonal)
        p.grads.sigma[t * E + head.offset + r] = float(s);
      else
        p.grads.sigma[(t * E + head.offset + r) * E + head.offset + c] = float(s);
    }

  // The frames (G4, G12) in the identity frame: RᵀR̄ = ĝ(w + ν̄)ᵀ + 2C̄C + 2SS̄ + 2ΛΛ̄ (+ νν̄ᵀ, added
  // by the second kernel once ν̄ is known); y'_b = ⟨RᵀR̄, G_b⟩ without that term.
  double y[3] = {0, 0, 0};
  if (K > 1 && !lp.identity_transport) {  // spin 0 has no frame gradient
    double Y[K][K], SS[K][K];
    product<K>(pb.S, Sbar, SS);
    for (int r = 0; r < K; ++r)
      for (int c = 0; c < K; ++c) Y[r][c] = o.g[r] * (o.w[c] + mean[c]) + 2 * SS[r][c] + 2 * LL[r][c];
    if (p.incoming.sigma) {  // 2C̄C, C = RᵀΣ^agg R = M − wwᵀ in the identity frame
      double C[K][K];
      if (lp.diagonal) {  // from the pair pass's X_i = [w, sym(M)] (a diagonal Σ^agg lost the rest)
        const float* X = p.moments_sums + bh.values + t * head.value_stride;
        for (int r = 0; r < K; ++r)
          for (int c = r; c < K; ++c) C[r][c] = C[c][r] = X[K + lifted::sym_index(K, r, c)] - double(X[r]) * X[c];
      } else {
        const float* block = p.saved.sigma + (t * E + head.offset) * E + head.offset;
        double SR[K][K];
        for (int r = 0; r < K; ++r)
          for (int c = 0; c < K; ++c) {
            double s = 0;
            for (int k = 0; k < K; ++k) s += block[std::size_t(r) * E + k] * R[k * K + c];
            SR[r][c] = s;
          }
        for (int r = 0; r < K; ++r)
          for (int c = 0; c < K; ++c) {
            double s = 0;
            for (int k = 0; k < K; ++k) s += R[k * K + r] * SR[k][c];
            C[r][c] = s;
          }
      }
      product<K>(o.Cbar, C, SS);
      for (int r = 0; r < K; ++r)
        for (int c = 0; c < K; ++c) Y[r][c] += 2 * SS[r][c];
    }
    add_generator_products<K>(Y, p.tables + p.generators[head.irrep], y);
  }
  double* out = p.lift_grads + bh.lift + t * (K + 3);
  for (int k = 0; k < K; ++k) {
    out[k] = nubar[k];
    centring[k] = o.g[k] - nubar[k];
  }
  for (int a = 0; a < 3; ++a) out[K + a] = y[a];
}

}  // namespace detail

/// Grid (⌈N/128⌉, H, B), one thread per (token, head): Σ̄ (G12) into the gradients, ν̄'_i and
/// y'_i into the workspace, and Σ_i (R_iᵀg_i − ν̄'_i) per sequence (G11), one double atomic per
/// block and component (`sums` cleared before).
template <class Spec>
__global__ void __launch_bounds__(lift_threads) lift_backward_kernel(BackwardParams<Spec> p) {
  __shared__ double scratch[lift_threads / 32 * (2 * max_supported_l + 1)];
  const int b = blockIdx.z, h = blockIdx.y, i = blockIdx.x * lift_threads + threadIdx.x;
  const HeadLayout& head = p.lift.heads[h];
  visit_spin(head.irrep, typename Spec::spins{}, [&](auto spin) {
    constexpr int K = 2 * decltype(spin)::value + 1;
    double centring[K];
    detail::lift_backward_token<K>(p, b, h, i, centring);
    detail::block_sums<lift_threads>(centring, scratch);
    if (threadIdx.x == 0)
      for (int k = 0; k < K; ++k)
        if (centring[k] != 0) atomicAdd(p.sums + p.heads[h].sums + std::size_t(b) * K + k, centring[k]);
  });
}

/// Grid (⌈N/128⌉, B), one thread per token: for each head ν̄ = ν̄' + ν̄̄/n (G11), μ̄ = Rν̄ and
/// y += y' + ⟨νν̄ᵀ, G_b⟩ (the R̄ term μν̄ᵀ of G12); then φ̄ = J(φ)ᵀ y (G13). Block (0, 0) also writes
/// κ̄_h = −(ln 2/κ_h) Σ_ij s̄_ij (a_i·k_j) (G9).
template <class Spec>
__global__ void __launch_bounds__(lift_threads) belief_gradients_kernel(BackwardParams<Spec> p) {
  const LiftParams<Spec>& lp = p.lift;
  const int b = blockIdx.y, i = blockIdx.x * lift_threads + threadIdx.x;
  if (blockIdx.x == 0 && blockIdx.y == 0)
    for (int h = threadIdx.x; h < Spec::num_heads; h += blockDim.x)
      p.grads.kappa[h] = float(-detail::ln2_d / lp.heads[h].kappa * p.kappa_sums[h]);
  const int n = lp.lengths[b];
  if (i >= n) return;
  const std::size_t t = std::size_t(b) * lp.tokens + i, E = lp.embed_dim;
  double y[3] = {0, 0, 0};
  for (int h = 0; h < Spec::num_heads; ++h) {
    const HeadLayout& head = lp.heads[h];
    visit_spin(head.irrep, typename Spec::spins{}, [&](auto spin) {
      constexpr int K = 2 * decltype(spin)::value + 1;
      const double* R = lp.frames + head.frames + t * K * K;
      const double* lifted = p.lift_grads + p.heads[h].lift + t * (K + 3);
      const double* sums = p.sums + p.heads[h].sums + std::size_t(b) * K;
      double nubar[K];
      for (int k = 0; k < K; ++k) nubar[k] = lifted[k] + sums[k] / n;
      for (int r = 0; r < K; ++r) {  // μ̄ = R ν̄
        double s = 0;
        for (int c = 0; c < K; ++c) s += R[r * K + c] * nubar[c];
        p.grads.mu[t * E + head.offset + r] = float(s);
      }
      if constexpr (K > 1) {  // spin 0 has no frame gradient
        if (lp.identity_transport) return;
        double X[K][K];  // ν ν̄ᵀ with ν = Rᵀμ (not centred)
        for (int r = 0; r < K; ++r) {
          double nu = 0;
          for (int k = 0; k < K; ++k) nu += R[k * K + r] * double(lp.mu[t * E + head.offset + k]);
          for (int c = 0; c < K; ++c) X[r][c] = nu * nubar[c];
        }
        for (int a = 0; a < 3; ++a) y[a] += lifted[K + a];
        detail::add_generator_products<K>(X, p.tables + p.generators[head.irrep], y);
      }
    });
  }
  double phibar[3] = {0, 0, 0};
  if (!lp.identity_transport) {
    const double phi[3] = {lp.phi[t * 3], lp.phi[t * 3 + 1], lp.phi[t * 3 + 2]};
    gauge_attn::detail::frame_gradient(phi, y, phibar);
  }
  for (int a = 0; a < 3; ++a) p.grads.phi[t * 3 + a] = float(phibar[a]);
}

}  // namespace gauge_attn::gpu
