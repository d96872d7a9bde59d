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
// K×K arrays. They work in the precision T of their arguments (the CPU lift uses double).
#pragma once

#include <cmath>

#include "config.hpp"

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

/// Σ = L Lᵀ in place (lower triangle of A becomes L). Returns false unless Σ is positive
/// definite, i.e. unless every pivot is positive and finite.
template <class T, int K>
GAUGE_ATTN_HOST_DEVICE bool cholesky(T (&A)[K][K]) {
  for (int c = 0; c < K; ++c) {
    T d = A[c][c];
    for (int k = 0; k < c; ++k) d -= A[c][k] * A[c][k];
    if (!(d > T(0)) || !std::isfinite(d)) return false;
    const T l = std::sqrt(d);
    A[c][c] = l;
    for (int r = c + 1; r < K; ++r) {
      T s = A[r][c];
      for (int k = 0; k < c; ++k) s -= A[r][k] * A[c][k];
      A[r][c] = s / l;
    }
  }
  return true;
}

/// One belief pulled back to the identity frame (§5).
template <class T, int K>
struct PulledBack {
  T nu[K];         // ν = Rᵀμ
  T S[K][K];       // S = RᵀΣR
  T Lambda[K][K];  // Λ = RᵀΣ⁻¹R
  T logdet;        // ln det Σ
};

/// Pulls back N(μ, Σ) in the frame R (row-major K×K). `sigma` holds K variances when
/// `diagonal`, else a row-major K×K SPD block with row stride `ld`. Returns false when Σ is not
/// positive definite (the caller names the offending token).
template <class T, int K>
GAUGE_ATTN_HOST_DEVICE bool pull_back(const T* R, const T* mu, const T* sigma, int ld, bool diagonal,
                                      PulledBack<T, K>& out) {
  for (int k = 0; k < K; ++k) {
    T s = 0;
    for (int r = 0; r < K; ++r) s += R[r * K + k] * mu[r];
    out.nu[k] = s;
  }
  if (diagonal) {
    out.logdet = 0;
    T inverse[K];  // 1/σ_r once: K divisions instead of K²(K+1)/2 (the GPU lift of ℓ8 spent most of its time dividing)
    for (int r = 0; r < K; ++r) {
      if (!(sigma[r] > T(0))) return false;
      out.logdet += std::log(sigma[r]);
      inverse[r] = 1 / sigma[r];
    }
    for (int p = 0; p < K; ++p)
      for (int q = p; q < K; ++q) {
        T s = 0, l = 0;
        for (int r = 0; r < K; ++r) {
          const T rr = R[r * K + p] * R[r * K + q];
          s += rr * sigma[r];
          l += rr * inverse[r];
        }
        out.S[p][q] = out.S[q][p] = s;
        out.Lambda[p][q] = out.Lambda[q][p] = l;
      }
    return true;
  }
  T L[K][K];
  for (int r = 0; r < K; ++r)
    for (int c = 0; c < K; ++c) L[r][c] = sigma[r * ld + c];
  // S = Rᵀ Σ R, with Σ read symmetrically from its lower triangle.
  T SR[K][K];
  for (int r = 0; r < K; ++r)
    for (int c = 0; c < K; ++c) {
      T s = 0;
      for (int k = 0; k < K; ++k) s += (r >= k ? L[r][k] : L[k][r]) * R[k * K + c];
      SR[r][c] = s;
    }
  for (int p = 0; p < K; ++p)
    for (int q = p; q < K; ++q) {
      T s = 0;
      for (int r = 0; r < K; ++r) s += R[r * K + p] * SR[r][q];
      out.S[p][q] = out.S[q][p] = s;
    }
  if (!cholesky(L)) return false;
  out.logdet = 0;
  for (int r = 0; r < K; ++r) out.logdet += 2 * std::log(L[r][r]);
  // Y = L⁻¹ R by forward substitution; Λ = Rᵀ Σ⁻¹ R = Yᵀ Y.
  T Y[K][K];
  for (int c = 0; c < K; ++c)
    for (int r = 0; r < K; ++r) {
      T s = R[r * K + c];
      for (int k = 0; k < r; ++k) s -= L[r][k] * Y[k][c];
      Y[r][c] = s / L[r][r];
    }
  for (int p = 0; p < K; ++p)
    for (int q = p; q < K; ++q) {
      T s = 0;
      for (int r = 0; r < K; ++r) s += Y[r][p] * Y[r][q];
      out.Lambda[p][q] = out.Lambda[q][p] = s;
    }
  return true;
}

/// Euclidean norm of a lifted vector (the bound (P1), precision.hpp).
template <class T, int P>
GAUGE_ATTN_HOST_DEVICE T norm(const T (&v)[P]) {
  T s = 0;
  for (int p = 0; p < P; ++p) s += v[p] * v[p];
  return std::sqrt(s);
}

/// a = [sym(S + ννᵀ), ν, 1] for a centred ν (M8).
template <class T, int K, class Out>
GAUGE_ATTN_HOST_DEVICE void pack_query(const PulledBack<T, K>& q, const T (&nu)[K], Out* a) {
  int n = 0;
  for (int r = 0; r < K; ++r)
    for (int c = r; c < K; ++c) a[n++] = Out(q.S[r][c] + nu[r] * nu[c]);
  for (int r = 0; r < K; ++r) a[n++] = Out(nu[r]);
  a[n] = Out(1);
}

/// b = −(1/2κ) [sym₂(Λ), −2Λν, νᵀΛν + ln det Σ − K] for a centred ν (M8).
template <class T, int K, class Out>
GAUGE_ATTN_HOST_DEVICE void pack_key(const PulledBack<T, K>& k, const T (&nu)[K], T kappa, Out* b) {
  const T scale = T(-0.5) / kappa;
  int n = 0;
  for (int r = 0; r < K; ++r)
    for (int c = r; c < K; ++c) b[n++] = Out(scale * (r == c ? k.Lambda[r][c] : 2 * k.Lambda[r][c]));
  T quad = 0;
  for (int r = 0; r < K; ++r) {
    T ln = 0;
    for (int c = 0; c < K; ++c) ln += k.Lambda[r][c] * nu[c];
    b[n++] = Out(scale * (-2 * ln));
    quad += nu[r] * ln;
  }
  b[n] = Out(scale * (quad + k.logdet - T(K)));
}

}  // namespace lifted
}  // namespace gauge_attn
