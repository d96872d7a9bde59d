// gauge_attn/lifted.hpp: the factorised form of the KL (M8) on fixed-size arrays.
//
// Every belief is pulled back to the identity frame, ν = Rᵀμ, S = RᵀΣR, Λ = RᵀΣ⁻¹R, and packed
// into a query vector a and a key vector b of width P = K(K+1)/2 + K + 1 such that
//   a_i · b_j = −(KL_ij + ½ ln det Σ_i) / κ                                             (M8)
//   a = [sym(S + ννᵀ), ν, 1],  b = −(1/2κ) [sym₂(Λ), −2Λν, νᵀΛν + ln det Σ − K]
// sym packs the upper triangle row by row; sym₂ does the same with off-diagonals doubled, so
// that sym(M)·sym₂(Λ) = ⟨M, Λ⟩_F. The first K(K+1)/2 + K entries of a are also the values of
// the messages (M9): Σ_j β_ij a_j = [sym(Σ_j β_ij (S_j + ν_jν_jᵀ)), Σ_j β_ij ν_j].
//
// These functions are shared by the CPU loops and the CUDA kernels; matrices are row-major
// K×K arrays. They work in the precision T of their arguments (the CPU lift uses double). The
// pull-back and the packing are written a column at a time (detail/columns.hpp): pull_back,
// pack_query and pack_key run the columns in turn; the GPU lift gives each column its own lane.
#pragma once

#include <cmath>

#include "config.hpp"
#include "detail/columns.hpp"

namespace gauge_attn {

/// Widths of the lifted vectors of a head of dimension K.
template <int K>
struct LiftedWidths {
  static_assert(K >= 1, "gauge_attn::LiftedWidths: K must be >= 1");
  static constexpr int dim = K;
  static constexpr int sym = K * (K + 1) / 2;  // packed symmetric K×K
  static constexpr int values = sym + K;        // [sym(S + ννᵀ), ν]: what the messages sum
  static constexpr int lifted = sym + K + 1;    // P of (M8)
};

namespace lifted {

/// Index of entry (r, c), r ≤ c, in the row-major packed upper triangle of a K×K matrix.
GAUGE_ATTN_HOST_DEVICE constexpr int sym_index(int K, int r, int c) { return r * K - r * (r - 1) / 2 + (c - r); }

/// Σ = L Lᵀ in place, by rows: L (K×K, row-major, shared by the workers of `cols`) holds Σ's lower
/// triangle and becomes L. At step c the owners r > c of the rows below finish L[r][c], and the
/// owner of row c+1 then its pivot. Returns false unless Σ is positive definite, i.e. unless every
/// pivot is positive and finite (a failed pivot is replaced by 1, so the workers stay in step).
template <class T, int K, class Columns>
GAUGE_ATTN_HOST_DEVICE bool cholesky_rows(const Columns& cols, T* L) {
  int failed = 0;  // this worker's failed pivots
  auto pivot = [&](int r) {
    T d = L[r * K + r];
    for (int k = 0; k < r; ++k) d -= L[r * K + k] * L[r * K + k];
    const bool ok = d > T(0) && std::isfinite(d);
    failed += !ok;
    L[r * K + r] = ok ? std::sqrt(d) : T(1);
  };
  cols.each([&](int r) {
    if (r == 0) pivot(0);
  });
  for (int c = 0; c + 1 < K; ++c) {
    cols.sync();
    cols.each([&](int r) {
      if (r <= c) return;
      T s = L[r * K + c];
      for (int k = 0; k < c; ++k) s -= L[r * K + k] * L[c * K + k];
      L[r * K + c] = s / L[c * K + c];
      if (r == c + 1) pivot(r);
    });
  }
  cols.sync();
  return cols.total(failed) == 0;
}

/// Σ = L Lᵀ in place (lower triangle of A becomes L). Returns false unless Σ is positive
/// definite, i.e. unless every pivot is positive and finite.
template <class T, int K>
GAUGE_ATTN_HOST_DEVICE bool cholesky(T (&A)[K][K]) {
  return cholesky_rows<T, K>(detail::SerialColumns<K>{}, &A[0][0]);
}

/// One belief pulled back to the identity frame (§5).
template <class T, int K>
struct PulledBack {
  T nu[K];         // ν = Rᵀμ
  T S[K][K];       // S = RᵀΣR
  T Lambda[K][K];  // Λ = RᵀΣ⁻¹R
  T logdet;        // ln det Σ
};

// The pull-back a column at a time (columns.hpp). R is the frame (row-major K×K); `sigma` holds K
// variances when `diagonal`, else a row-major K×K SPD block with row stride `ld`, read from its
// lower triangle; `sigma` and `mu` are pointers or anything indexed like one. L and Y are K×K
// scratch shared by the workers.

/// Entry (r, c) of Σ, read symmetrically from the lower triangle (or the diagonal).
template <class T, class In>
GAUGE_ATTN_HOST_DEVICE T covariance_entry(In sigma, int ld, bool diagonal, int r, int c) {
  if (diagonal) return r == c ? T(sigma[r]) : T(0);
  return T(r >= c ? sigma[r * ld + c] : sigma[c * ld + r]);
}

/// What every column needs: diagonal: L[r] = 1/σ_r (one division per variance); otherwise the
/// Cholesky factor L and Y = L⁻¹R, so that Λ = RᵀΣ⁻¹R = YᵀY. Sets ln det Σ; false when Σ is not
/// positive definite (or not finite).
template <class T, int K, class Columns, class In>
GAUGE_ATTN_HOST_DEVICE bool pull_back_prepare(const Columns& cols, const T* R, In sigma, int ld, bool diagonal,
                                              T* L, T* Y, T& logdet) {
  if (diagonal) {
    int failed = 0;
    T log_share = 0;
    cols.each([&](int r) {
      const T v = T(sigma[r]);
      const bool ok = v > T(0) && std::isfinite(v);
      failed += !ok;
      log_share += ok ? std::log(v) : T(0);
      L[r] = ok ? 1 / v : T(1);
    });
    cols.sync();
    logdet = cols.total(log_share);
    return cols.total(failed) == 0;
  }
  cols.each([&](int r) {
    for (int c = 0; c <= r; ++c) L[r * K + c] = T(sigma[r * ld + c]);
  });
  cols.sync();
  const bool ok = cholesky_rows<T, K>(cols, L);
  T log_share = 0;
  cols.each([&](int q) {  // column q of Y = L⁻¹R by forward substitution
    log_share += 2 * std::log(L[q * K + q]);
    for (int r = 0; r < K; ++r) {
      T s = R[r * K + q];
      for (int k = 0; k < r; ++k) s -= L[r * K + k] * Y[k * K + q];
      Y[r * K + q] = s / L[r * K + r];
    }
  });
  cols.sync();
  logdet = cols.total(log_share);
  return ok;
}

/// ν_q = (Rᵀμ)_q.
template <class T, int K, class In>
GAUGE_ATTN_HOST_DEVICE T pulled_mean(int q, const T* R, In mu) {
  T s = 0;
  GAUGE_ATTN_UNROLL
  for (int r = 0; r < K; ++r) s += R[r * K + q] * T(mu[r]);
  return s;
}

/// w = (ΣR)[:, q], after pull_back_prepare: S[p][q] = Σ_r R[r][p] w[r].
template <class T, int K, class In>
GAUGE_ATTN_HOST_DEVICE void covariance_times_frame_column(int q, const T* R, In sigma, int ld, bool diagonal,
                                                          T (&w)[K]) {
  GAUGE_ATTN_UNROLL
  for (int r = 0; r < K; ++r) {
    if (diagonal) {
      w[r] = R[r * K + q] * T(sigma[r]);
    } else {
      T s = 0;
      GAUGE_ATTN_UNROLL
      for (int k = 0; k < K; ++k) s += covariance_entry<T>(sigma, ld, false, r, k) * R[k * K + q];
      w[r] = s;
    }
  }
}

/// u = (Σ⁻¹R)[:, q] with L = 1/σ (diagonal), else Y[:, q], after pull_back_prepare; with
/// V = R (diagonal) or Y, Λ = VᵀU: Λ[p][q] = Σ_r V[r][p] u[r].
template <class T, int K>
GAUGE_ATTN_HOST_DEVICE void precision_factor_column(int q, const T* R, bool diagonal, const T* L, const T* Y,
                                                    T (&u)[K]) {
  GAUGE_ATTN_UNROLL
  for (int r = 0; r < K; ++r) u[r] = diagonal ? R[r * K + q] * L[r] : Y[r * K + q];
}

/// Column q of S = RᵀΣR, after pull_back_prepare. (The GPU lift builds the packed triangles from
/// the same factor columns w and u by balanced pairs instead: cuda/lift.cuh.)
template <class T, int K, class In>
GAUGE_ATTN_HOST_DEVICE void pulled_covariance_column(int q, const T* R, In sigma, int ld, bool diagonal, T (&S)[K]) {
  T w[K];
  covariance_times_frame_column<T, K>(q, R, sigma, ld, diagonal, w);
  GAUGE_ATTN_UNROLL
  for (int p = 0; p < K; ++p) {
    T s = 0;
    GAUGE_ATTN_UNROLL
    for (int r = 0; r < K; ++r) s += R[r * K + p] * w[r];
    S[p] = s;
  }
}

/// Column q of Λ = RᵀΣ⁻¹R, after pull_back_prepare: Rᵀ(Σ⁻¹R) (diagonal), else YᵀY.
template <class T, int K>
GAUGE_ATTN_HOST_DEVICE void pulled_precision_column(int q, const T* R, bool diagonal, const T* L, const T* Y,
                                                    T (&Lambda)[K]) {
  T u[K];
  precision_factor_column<T, K>(q, R, diagonal, L, Y, u);
  const T* V = diagonal ? R : Y;
  GAUGE_ATTN_UNROLL
  for (int p = 0; p < K; ++p) {
    T l = 0;
    GAUGE_ATTN_UNROLL
    for (int r = 0; r < K; ++r) l += V[r * K + p] * u[r];
    Lambda[p] = l;
  }
}

/// Pulls back N(μ, Σ) in the frame R (row-major K×K); `sigma` as above. Returns false when Σ is not
/// positive definite (the caller names the offending token).
template <class T, int K>
GAUGE_ATTN_HOST_DEVICE bool pull_back(const T* R, const T* mu, const T* sigma, int ld, bool diagonal,
                                      PulledBack<T, K>& out) {
  const detail::SerialColumns<K> cols{};
  T L[K * K], Y[K * K];
  if (!pull_back_prepare<T, K>(cols, R, sigma, ld, diagonal, L, Y, out.logdet)) return false;
  cols.each([&](int q) {
    T S[K], Lambda[K];
    out.nu[q] = pulled_mean<T, K>(q, R, mu);
    pulled_covariance_column<T, K>(q, R, sigma, ld, diagonal, S);
    pulled_precision_column<T, K>(q, R, diagonal, L, Y, Lambda);
    for (int r = 0; r <= q; ++r) {  // the upper triangle from column q, mirrored: exactly symmetric
      out.S[r][q] = out.S[q][r] = S[r];
      out.Lambda[r][q] = out.Lambda[q][r] = Lambda[r];
    }
  });
  return true;
}

/// Euclidean norm of a lifted vector (the bound (P1), precision.hpp).
template <class T, int P>
GAUGE_ATTN_HOST_DEVICE T norm(const T (&v)[P]) {
  T s = 0;
  for (int p = 0; p < P; ++p) s += v[p] * v[p];
  return std::sqrt(s);
}

// The packing a column at a time: column q of S and Λ gives entries (r, q), r ≤ q, of the packed
// triangles, and entry q of ν and of −2Λν. `emit(index, value)` receives each entry.

/// Column q of a = [sym(S + ννᵀ), ν, 1] (M8), for a centred ν (all K entries); the last entry, 1,
/// is the caller's.
template <class T, int K, class Emit>
GAUGE_ATTN_HOST_DEVICE void pack_query_column(int q, const T (&S)[K], const T* nu, Emit&& emit) {
  GAUGE_ATTN_UNROLL
  for (int r = 0; r < K; ++r)
    if (r <= q) emit(sym_index(K, r, q), S[r] + nu[r] * nu[q]);
  emit(LiftedWidths<K>::sym + q, nu[q]);
}

/// Column q of b = −(1/2κ) [sym₂(Λ), −2Λν, νᵀΛν + ln det Σ − K] (M8), `scale` = −1/2κ, for a centred
/// ν; returns ν_q(Λν)_q, whose sum over q is the νᵀΛν of the last entry (key_constant).
template <class T, int K, class Emit>
GAUGE_ATTN_HOST_DEVICE T pack_key_column(int q, const T (&Lambda)[K], const T* nu, T scale, Emit&& emit) {
  T lambda_nu = 0;  // (Λν)_q; Λ symmetric
  GAUGE_ATTN_UNROLL
  for (int r = 0; r < K; ++r) lambda_nu += Lambda[r] * nu[r];
  GAUGE_ATTN_UNROLL
  for (int r = 0; r < K; ++r)
    if (r <= q) emit(sym_index(K, r, q), scale * (r == q ? Lambda[r] : 2 * Lambda[r]));
  emit(LiftedWidths<K>::sym + q, scale * (-2 * lambda_nu));
  return nu[q] * lambda_nu;
}

/// The last entry of b: −(1/2κ)(νᵀΛν + ln det Σ − K).
template <class T, int K>
GAUGE_ATTN_HOST_DEVICE T key_constant(T quadratic, T logdet, T scale) {
  return scale * (quadratic + logdet - T(K));
}

/// a = [sym(S + ννᵀ), ν, 1] for a centred ν (M8).
template <class T, int K, class Out>
GAUGE_ATTN_HOST_DEVICE void pack_query(const PulledBack<T, K>& q, const T (&nu)[K], Out* a) {
  for (int c = 0; c < K; ++c) pack_query_column<T, K>(c, q.S[c], nu, [&](int i, T v) { a[i] = Out(v); });
  a[LiftedWidths<K>::values] = Out(1);
}

/// b = −(1/2κ) [sym₂(Λ), −2Λν, νᵀΛν + ln det Σ − K] for a centred ν (M8).
template <class T, int K, class Out>
GAUGE_ATTN_HOST_DEVICE void pack_key(const PulledBack<T, K>& k, const T (&nu)[K], T kappa, Out* b) {
  const T scale = T(-0.5) / kappa;
  T quadratic = 0;
  for (int c = 0; c < K; ++c)
    quadratic += pack_key_column<T, K>(c, k.Lambda[c], nu, scale, [&](int i, T v) { b[i] = Out(v); });
  b[LiftedWidths<K>::values] = Out(key_constant<T, K>(quadratic, k.logdet, scale));
}

}  // namespace lifted
}  // namespace gauge_attn
