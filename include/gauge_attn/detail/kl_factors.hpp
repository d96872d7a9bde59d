// gauge_attn/detail/kl_factors.hpp: the exact KL (M4) of one pair as sums of squares, from the
// Cholesky factors of the two covariances in their own frames (Σ = L Lᵀ):
//   KL(N(μ_i, Σ_i) ‖ N(Ωμ_j, ΩΣ_jΩᵀ)) = ½ (‖L_j⁻¹ Ωᵀ L_i‖²_F + ‖L_j⁻¹(μ_j − Ωᵀμ_i)‖² − K)
//                                        + ln det L_j − ln det L_i
// since ΩΣ_jΩᵀ = (ΩL_j)(ΩL_j)ᵀ for an orthogonal Ω. Why this form: nothing in it cancels. For
// diagonal Σ the trace is Σ_rc Ω_rc² σ_i,r / σ_j,c, positive terms each rounded a few times, so the
// KL is good to a few u relative whatever the variances' range; the Cholesky factor of the
// transported ΩΣ_jΩᵀ loses cond(Σ_j)·u instead, and the lifted form (M8) u·Σ|a_k b_k| (P1). For a
// full Σ the factors are backward stable, so the error is the input's own conditioning.
// Used by the pair-by-pair path (cuda/pairwise.cuh); T is double there (long double in the tests).
#pragma once

#include <cmath>

#include "../config.hpp"

namespace gauge_attn::detail {

/// (M4) from Ω = Ω_ij (K×K, row-major), the means, the lower Cholesky factors L_i, L_j (K×K,
/// row-major, lower triangles read; only the diagonals when `diagonal`) and ln det L_i = ½ ln det Σ_i.
template <class T, int K>
GAUGE_ATTN_HOST_DEVICE T kl_from_factors(const T* Omega, const T* mu_i, const T* L_i, T half_logdet_i,
                                         const T* mu_j, const T* L_j, bool diagonal) {
  // x ← L_j⁻¹ x by forward substitution; returns ‖L_j⁻¹ x‖².
  auto solved_squares = [&](T(&x)[K]) {
    T squares = 0;
    for (int r = 0; r < K; ++r) {
      T s = x[r];
      if (!diagonal)
        for (int k = 0; k < r; ++k) s -= L_j[r * K + k] * x[k];
      x[r] = s / L_j[r * K + r];
      squares += x[r] * x[r];
    }
    return squares;
  };
  T trace = 0;  // ‖L_j⁻¹ Ωᵀ L_i‖²_F, a column c of Ωᵀ L_i at a time: (Ωᵀ L_i)_rc = Σ_{k ≥ c} Ω_kr L_i,kc
  for (int c = 0; c < K; ++c) {
    T x[K];
    for (int r = 0; r < K; ++r) {
      T s = 0;
      for (int k = c; k < (diagonal ? c + 1 : K); ++k) s += Omega[k * K + r] * L_i[k * K + c];
      x[r] = s;
    }
    trace += solved_squares(x);
  }
  T d[K];  // μ_j − Ωᵀμ_i
  for (int r = 0; r < K; ++r) {
    T s = mu_j[r];
    for (int k = 0; k < K; ++k) s -= Omega[k * K + r] * mu_i[k];
    d[r] = s;
  }
  const T quadratic = solved_squares(d);
  T half_logdet_j = 0;
  for (int r = 0; r < K; ++r) half_logdet_j += std::log(L_j[r * K + r]);
  return T(0.5) * (trace + quadratic - T(K)) + half_logdet_j - half_logdet_i;
}

}  // namespace gauge_attn::detail
