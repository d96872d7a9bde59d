// gauge_attn/detail/wigner_factorised.hpp: D^ℓ(φ) = exp(φ·G^ℓ) (M2) on fixed-size arrays, for the
// CPU API and the CUDA kernels alike.
//
// With φ = θ n̂ and n̂ = (sin b cos a, sin b sin a, cos b):
//   exp(θ n̂·G) = Z(a) Y(b) Z(θ) Y(b)ᵀ Z(a)ᵀ,   Z(t) = exp(t G_z),   Y(t) = exp(t G_y) = X Z(t) Xᵀ,
// X = exp(−(π/2) G_x) (so3_tables.hpp). Every factor is orthogonal up to rounding for any θ
// (θ ≥ π included). The angles lose precision only where the result stops depending on them:
// b → 0 or π makes Z(a) commute with the rest, θ → 0 makes Z(θ) → I; so no accuracy is lost as
// |φ| → 0 or near the poles.
#pragma once

#include <cmath>

#include "../config.hpp"

namespace gauge_attn::detail {

/// In the basis [m=0, c1, s1, …], G_z rotates each plane (c_m, s_m) at rate m, with
/// G_z[c_m][s_m] = −m and G_z[s_m][c_m] = +m (math.md §2; tested against the tables).
/// M ← M·Z(t) when `right`, else M ← Z(t)·M, for K×K row-major M. One sincos per call: cos mt and
/// sin mt follow by angle addition (error ~m ulp, ≤ 1e-14 for ℓ ≤ 24), which keeps the device lift
/// short (trigonometric calls in double dominated its latency).
template <int K>
GAUGE_ATTN_HOST_DEVICE void apply_exp_gz(double* M, double t, bool right) {
  const double c1 = std::cos(t), s1 = std::sin(t);
  double co = c1, si = s1;  // cos mt, sin mt
  for (int m = 1; 2 * m < K; ++m) {
    const int c = 2 * m - 1, s = 2 * m;
    for (int k = 0; k < K; ++k) {
      double& x = right ? M[k * K + c] : M[c * K + k];
      double& y = right ? M[k * K + s] : M[s * K + k];
      const double xc = x, ys = y;
      // Z = [[co, −si], [si, co]] on (c, s): right: (x, y)·Z; left: Z·(x, y)ᵀ.
      x = right ? xc * co + ys * si : co * xc - si * ys;
      y = right ? -xc * si + ys * co : si * xc + co * ys;
    }
    const double next_co = co * c1 - si * s1;
    si = si * c1 + co * s1;
    co = next_co;
  }
}

/// out = A·B (transpose_b: A·Bᵀ) for K×K row-major matrices.
template <int K>
GAUGE_ATTN_HOST_DEVICE void multiply(const double* A, const double* B, double* out, bool transpose_b) {
  for (int r = 0; r < K; ++r)
    for (int c = 0; c < K; ++c) {
      double s = 0;
      for (int p = 0; p < K; ++p) s += A[r * K + p] * (transpose_b ? B[c * K + p] : B[p * K + c]);
      out[r * K + c] = s;
    }
}

/// D = D^ℓ(φ), K = 2ℓ+1, given X = exp(−(π/2) G_x) (row-major). D row-major K×K.
template <int K>
GAUGE_ATTN_HOST_DEVICE void wigner_d_factorised(const double* X, const double phi[3], double* D) {
  const double theta = std::sqrt(phi[0] * phi[0] + phi[1] * phi[1] + phi[2] * phi[2]);
  for (int k = 0; k < K * K; ++k) D[k] = (k % (K + 1) == 0) ? 1.0 : 0.0;
  if (K == 1 || theta == 0.0) return;
  const double n[3] = {phi[0] / theta, phi[1] / theta, phi[2] / theta};
  const double a = std::atan2(n[1], n[0]);
  const double b = std::atan2(std::sqrt(n[0] * n[0] + n[1] * n[1]), n[2]);
  double ZY[K * K], T[K * K];
  // ZY = Z(a) X Z(b) Xᵀ = Z(a) Y(b)
  for (int k = 0; k < K * K; ++k) T[k] = X[k];
  apply_exp_gz<K>(T, b, true);     // X Z(b)
  multiply<K>(T, X, ZY, true);     // X Z(b) Xᵀ
  apply_exp_gz<K>(ZY, a, false);   // Z(a) Y(b)
  for (int k = 0; k < K * K; ++k) T[k] = ZY[k];
  apply_exp_gz<K>(T, theta, true); // Z(a) Y(b) Z(θ)
  multiply<K>(T, ZY, D, true);     // … (Z(a) Y(b))ᵀ
}

}  // namespace gauge_attn::detail
