// gauge_attn/detail/wigner_factorised.hpp: D^ℓ(φ) = exp(φ·G^ℓ) (M2) on fixed-size arrays, for the
// CPU API and the CUDA kernels alike.
//
// With φ = θ n̂ and n̂ = (sin b cos a, sin b sin a, cos b):
//   exp(θ n̂·G) = Z(a) Y(b) Z(θ) Y(b)ᵀ Z(a)ᵀ,   Z(t) = exp(t G_z),   Y(t) = exp(t G_y) = X Z(t) Xᵀ,
// X = exp(−(π/2) G_x) (so3_tables.hpp). Every factor is orthogonal up to rounding for any θ
// (θ ≥ π included). Only θ goes through sin and cos: cos a, sin a, cos b, sin b are ratios of φ's
// coordinates (no atan2, and two fewer sincos, in the float64 chain of the device lift). They lose
// precision only where the result stops depending on them: b → 0 or π makes Z(a) commute with the
// rest, θ → 0 makes Z(θ) → I; so no accuracy is lost as |φ| → 0 or near the poles.
//
// The product is computed a column at a time (columns.hpp): the CPU and a GPU thread take the
// columns in turn, the GPU lift gives each column of a token to its own lane.
#pragma once

#include <cmath>

#include "../config.hpp"
#include "columns.hpp"

namespace gauge_attn::detail {

// In the basis [m=0, c1, s1, …], G_z rotates each plane (c_m, s_m) = (2m−1, 2m) at rate m, with
// G_z[c_m][s_m] = −m and G_z[s_m][c_m] = +m (math.md §2; tested against the tables).

/// An angle t by its cosine and sine.
struct Turn {
  double cos, sin;
};

/// Column c of M·Z(t), M row-major K×K: (MZ)[:, c_m] = cos(mt) M[:, c_m] + sin(mt) M[:, s_m],
/// (MZ)[:, s_m] = −sin(mt) M[:, c_m] + cos(mt) M[:, s_m]; column 0 is unchanged. cos mt and sin mt
/// follow from t's by angle addition (error ~m ulp, ≤ 1e-14 for ℓ ≤ 24).
template <int K>
GAUGE_ATTN_HOST_DEVICE void column_times_exp_gz(const double* M, Turn t, int c, double (&out)[K]) {
  if (c == 0) {
    GAUGE_ATTN_UNROLL
    for (int r = 0; r < K; ++r) out[r] = M[r * K];
    return;
  }
  const int m = (c + 1) / 2, cm = 2 * m - 1, sm = 2 * m;
  double co = t.cos, si = t.sin;
  for (int k = 1; k < m; ++k) {
    const double next_co = co * t.cos - si * t.sin;
    si = si * t.cos + co * t.sin;
    co = next_co;
  }
  GAUGE_ATTN_UNROLL
  for (int r = 0; r < K; ++r) {
    const double x = M[r * K + cm], y = M[r * K + sm];
    out[r] = c == cm ? x * co + y * si : -x * si + y * co;
  }
}

/// v ← Z(t)·v for one column v; cos mt and sin mt by angle addition, as above.
template <int K>
GAUGE_ATTN_HOST_DEVICE void exp_gz_times_column(Turn t, double (&v)[K]) {
  const double c1 = t.cos, s1 = t.sin;
  double co = c1, si = s1;  // cos mt, sin mt
  GAUGE_ATTN_UNROLL
  for (int m = 1; 2 * m < K; ++m) {
    const double x = v[2 * m - 1], y = v[2 * m];
    v[2 * m - 1] = co * x - si * y;
    v[2 * m] = si * x + co * y;
    const double next_co = co * c1 - si * s1;
    si = si * c1 + co * s1;
    co = next_co;
  }
}

/// Column c of A·Bᵀ for K×K row-major A, B: out[r] = Σ_p A[r][p] B[c][p].
template <int K>
GAUGE_ATTN_HOST_DEVICE void column_of_product_transposed(const double* A, const double* B, int c, double (&out)[K]) {
  GAUGE_ATTN_UNROLL
  for (int r = 0; r < K; ++r) {
    double s = 0;
    GAUGE_ATTN_UNROLL
    for (int p = 0; p < K; ++p) s += A[r * K + p] * B[c * K + p];
    out[r] = s;
  }
}

/// D = D^ℓ(φ), K = 2ℓ+1, given X = exp(−(π/2) G_x) (row-major), a column at a time: `column(c, d)`
/// receives column c of D. T and ZY are K×K scratch shared by the workers of `cols`; every worker
/// calls this (the steps synchronise), and the scratch may be reused when it returns.
template <int K, class Columns, class Sink>
GAUGE_ATTN_HOST_DEVICE void wigner_d_columns(const Columns& cols, const double* X, const double phi[3], double* T,
                                             double* ZY, Sink&& column) {
  const double rho = std::sqrt(phi[0] * phi[0] + phi[1] * phi[1]);  // θ sin b
  const double theta = std::sqrt(rho * rho + phi[2] * phi[2]);
  const bool identity = K == 1 || theta == 0.0;
  // n̂ = φ/θ = (sin b cos a, sin b sin a, cos b); any a when sin b = 0 (Z(a) then commutes), any
  // a, b when D = I (the steps still run: every worker takes the same path).
  const Turn a = rho > 0 ? Turn{phi[0] / rho, phi[1] / rho} : Turn{1, 0};
  const Turn b = identity ? Turn{1, 0} : Turn{phi[2] / theta, rho / theta};
  const Turn turn = {std::cos(theta), std::sin(theta)};
  cols.each([&](int c) {  // T = X Z(b)
    double v[K];
    column_times_exp_gz<K>(X, b, c, v);
    GAUGE_ATTN_UNROLL
    for (int r = 0; r < K; ++r) T[r * K + c] = v[r];
  });
  cols.sync();
  cols.each([&](int c) {  // ZY = Z(a) (X Z(b) Xᵀ) = Z(a) Y(b)
    double v[K];
    column_of_product_transposed<K>(T, X, c, v);
    exp_gz_times_column<K>(a, v);
    GAUGE_ATTN_UNROLL
    for (int r = 0; r < K; ++r) ZY[r * K + c] = v[r];
  });
  cols.sync();
  cols.each([&](int c) {  // T = Z(a) Y(b) Z(θ)
    double v[K];
    column_times_exp_gz<K>(ZY, turn, c, v);
    GAUGE_ATTN_UNROLL
    for (int r = 0; r < K; ++r) T[r * K + c] = v[r];
  });
  cols.sync();
  cols.each([&](int c) {  // D = T (Z(a) Y(b))ᵀ
    double d[K];
    column_of_product_transposed<K>(T, ZY, c, d);
    GAUGE_ATTN_UNROLL
    for (int r = 0; r < K; ++r) d[r] = identity ? double(r == c) : d[r];
    column(c, d);
  });
  cols.sync();
}

/// D = D^ℓ(φ), K = 2ℓ+1, given X = exp(−(π/2) G_x) (row-major). D row-major K×K.
template <int K>
GAUGE_ATTN_HOST_DEVICE void wigner_d_factorised(const double* X, const double phi[3], double* D) {
  double T[K * K], ZY[K * K];
  wigner_d_columns<K>(SerialColumns<K>{}, X, phi, T, ZY, [&](int c, const double(&d)[K]) {
    for (int r = 0; r < K; ++r) D[r * K + c] = d[r];
  });
}

}  // namespace gauge_attn::detail
