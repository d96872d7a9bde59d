// gauge_attn/cuda/flash_kl_rows.cuh: the attention kernel's parameters, and what it writes for one
// query row once its keys are summed: the mean message m_i = R_i (w + ν̄) (M9), Σ^agg, the
// log-sum-exp, the energy (G1) and the row statistics (§7). Both tile paths (flash_kl.cuh,
// flash_kl_tensor_core.cuh) end here.
#pragma once

#include <gauge_attn/lifted.hpp>
#include <gauge_attn/mask.hpp>
#include <gauge_attn/precision.hpp>
#include <gauge_attn/row_statistics.hpp>

#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>

#include "layout.cuh"
#include "online_softmax.cuh"

namespace gauge_attn::gpu {

/// The attention kernel's inputs and outputs; device pointers. Passed by value.
template <class Spec>
struct AttentionParams {
  HeadLayout heads[Spec::num_heads];
  int batch = 0, tokens = 0, embed_dim = 0;
  BlockGroups<Spec::num_irreps> groups;  // query tiles, the last (heaviest under causality) first
  MaskSpec mask;
  bool diagonal_output = true;  // Σ^agg as (B, N, E) diagonals, else (B, N, E, E) blocks
  const int* lengths = nullptr;
  const float* queries = nullptr;
  const float* keys = nullptr;
  const double* queries64 = nullptr;  // the same in double, for Scores::float64
  const double* keys64 = nullptr;
  const float* values = nullptr;
  const double* frames = nullptr;
  const double* means = nullptr;
  const double* half_logdets = nullptr;  // (H, B, N)
  const unsigned long long* norms = nullptr;  // (B, H, 3): the lift's norms of (P1), as double bits
  float* mu = nullptr;               // (B, N, E)
  float* sigma = nullptr;            // Σ^agg, when the kernel is instantiated with the covariance
  float* lse = nullptr;              // (B, H, N), natural log-sum-exp of the (M8) scores (+ bias)
  float* row_std = nullptr;          // (B, H, N) per-row upstream row_std, when statistics are on
  float* uniform_row_std = nullptr;  // (B, H, N)
  float* entropy = nullptr;          // (B, H, N) H_i / ln n_i (0 where n_i = 1)
  float* energy = nullptr;           // (B, H, N) e_i = Σ_j β_ij KL_ij (G1), when instantiated with it
};

namespace detail {

/// Whether the rows of sequence b, head h take their own score s_ii as the softmax reference from
/// the start (own_score_bounds_row, precision.hpp: no mask_self, no ALiBi, and the bound (P1) of this
/// head's scores, from the lift's norms and the rounding of the head's tile path, small enough that
/// no weight passes the lazy-rescaling limit 2^8). Then the tile loops keep no running maximum: no
/// max per pair, no branch per step. The reference is computed by an FMA chain (own_score) and the
/// tile's scores on either path, so their difference is at most δ of that path plus δ of the chain
/// (≤ the path's), and 2δ of the path is what is checked.
template <int K, class Score, class Spec>
__device__ bool own_score_is_reference(const AttentionParams<Spec>& p, int b, int h) {
  constexpr int P = LiftedWidths<K>::lifted;
  constexpr bool float64 = sizeof(Score) == 8;
  const unsigned long long* norms = p.norms + (std::size_t(b) * Spec::num_heads + h) * 3;  // A, B (nats)
  const double delta = score_error_bound(uses_tensor_cores(P, float64) ? tensor_core_score_roundings(P) : fma_score_roundings(P),
                                         score_unit(float64), __longlong_as_double(norms[0]),
                                         __longlong_as_double(norms[1]), 0.0);
  return own_score_bounds_row(p.mask, delta, rescale_threshold);
}

/// Row i's own score a_i·b_i (log2 units), an FMA chain from 0: the reference of its softmax
/// where own_score_is_reference holds.
template <int P, class Score>
__device__ Score own_score(const Score* a, const Score* b) {
  Score s = 0;
#pragma unroll
  for (int k = 0; k < P; ++k) s = fma(a[k], b[k], s);
  return s;
}

/// Writes the outputs of row i of sequence b, head h (n valid tokens) from its softmax state and
/// its message sums acc[V] = Σ_j w_j v_j (v_j = [ν_j, sym(S_j + ν_jν_jᵀ)]), relative to row.m.
template <int K, bool Covariance, bool Statistics, bool Energy, class Spec, class Score>
__device__ void write_row(const AttentionParams<Spec>& p, int b, int h, int i, int n, const KeyRange& keys,
                          const OnlineRow<Score, Statistics, Energy>& row, const float* acc) {
  const HeadLayout& head = p.heads[h];
  const std::size_t t = std::size_t(b) * p.tokens + i;
  const double inv_l = 1.0 / double(row.l);
  const double* R = p.frames + head.frames + t * K * K;
  const double* sum = p.means + head.means + std::size_t(b) * K;
  double w[K], shifted[K];
  for (int k = 0; k < K; ++k) {
    w[k] = acc[k] * inv_l;
    shifted[k] = w[k] + sum[k] / n;
  }
  for (int k = 0; k < K; ++k) {
    double x = 0;
    for (int c = 0; c < K; ++c) x += R[k * K + c] * shifted[c];
    p.mu[t * p.embed_dim + head.offset + k] = float(x);
  }
  if constexpr (Covariance) {
    double C[K][K], RC[K][K];  // C = M − w wᵀ, M = Σ_j β_ij (S_j + ν_jν_jᵀ)
    for (int x = 0; x < K; ++x)
      for (int y = x; y < K; ++y) C[x][y] = C[y][x] = acc[K + lifted::sym_index(K, x, y)] * inv_l - w[x] * w[y];
    for (int x = 0; x < K; ++x)
      for (int y = 0; y < K; ++y) {
        double z = 0;
        for (int c = 0; c < K; ++c) z += R[x * K + c] * C[c][y];
        RC[x][y] = z;
      }
    for (int x = 0; x < K; ++x)
      for (int y = 0; y < K; ++y) {
        if (p.diagonal_output && x != y) continue;
        double z = 0;
        for (int c = 0; c < K; ++c) z += RC[x][c] * R[y * K + c];
        if (p.diagonal_output)
          p.sigma[t * p.embed_dim + head.offset + x] = float(z);
        else
          p.sigma[(t * p.embed_dim + head.offset + x) * p.embed_dim + head.offset + y] = float(z);
      }
  }
  const std::size_t bhi = (std::size_t(b) * Spec::num_heads + h) * p.tokens + i;
  if (p.lse) p.lse[bhi] = float((row.m + log2f(row.l)) * ln2);
  // e_i = Σ_j β_ij KL_ij with KL_ij = −κ ln2 (a_i·k_j) − ½ ln det Σ_i and Σ_j β_ij a_i·k_j = en/l + m (G1).
  if constexpr (Energy)
    p.energy[bhi] = float(-head.kappa * double(ln2) * (double(row.en) * inv_l + double(row.m)) -
                          p.half_logdets[std::size_t(h) * p.batch * p.tokens + t]);
  if constexpr (Statistics) {
    const int allowed_off = keys.count() - (keys.allows(i) ? 1 : 0);
    p.row_std[bhi] = float(row_std_of(n, 0.0, allowed_off, row.off * inv_l, row.off2 * inv_l * inv_l));
    p.uniform_row_std[bhi] = float(uniform_row_std_of(n, 0.0, keys, i));
    const double entropy = log(double(row.l)) - double(ln2) * row.ws * inv_l;  // ws is relative to m
    p.entropy[bhi] = keys.count() > 1 ? float(normalised_entropy_of(keys, entropy)) : 0.f;
  }
}

}  // namespace detail
}  // namespace gauge_attn::gpu
