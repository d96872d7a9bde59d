// gauge_attn/cuda/flash_kl.cuh: the fused KL-attention kernel. For one (sequence, head, query
// tile) it streams the lifted keys through shared memory and keeps, per query, an online softmax
// of the (M8) scores (M5), the message sums (M9), the row statistics (§7) and the attention
// energy (G1), so that nothing of size N² exists. All heads of a spec run in one launch; each block specialises on its head's ℓ.
//
// Threads: 128 = 16 query groups × 8 key groups. A thread owns QR queries (registers hold their
// lifted vectors a_i) and every 8th key of each shared-memory tile; the 8 partial softmax states of
// a query are merged with warp shuffles at the end. docs/cuda.md explains the choices.
#pragma once

#include <gauge_attn/lifted.hpp>
#include <gauge_attn/mask.hpp>
#include <gauge_attn/row_statistics.hpp>

#include <cuda_pipeline.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstring>

#include "layout.cuh"

/// Blocks of 128 threads the kernel is compiled to fit on one multiprocessor (it caps the
/// registers per thread at 65536 / (128 · blocks)); a tuning knob, see docs/cuda.md.
#ifndef GAUGE_ATTN_FLASH_MIN_BLOCKS
#define GAUGE_ATTN_FLASH_MIN_BLOCKS 4
#endif

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
  float* mu = nullptr;               // (B, N, E)
  float* sigma = nullptr;            // Σ^agg, when the kernel is instantiated with the covariance
  float* lse = nullptr;              // (B, H, N), natural log-sum-exp of the (M8) scores (+ bias)
  float* row_std = nullptr;          // (B, H, N) per-row upstream row_std, when statistics are on
  float* uniform_row_std = nullptr;  // (B, H, N)
  float* entropy = nullptr;          // (B, H, N) H_i / ln n_i (0 where n_i = 1)
  float* energy = nullptr;           // (B, H, N) e_i = Σ_j β_ij KL_ij (G1), when instantiated with it
};

namespace detail {

constexpr float ln2 = 0.6931471805599453f;

/// 2^x by the special-function unit alone (ex2.approx.ftz: relative error ≤ 2⁻²², one MUFU.EX2;
/// exp2f adds range handling the softmax does not need, since x ≤ 0 here and 2^−∞ = 0).
/// Rescaling happens only when a score exceeds the reference by this much (log2 units), so every
/// weight stays ≤ 2^8 and fp32 sums cannot overflow.
constexpr float rescale_threshold = 8.f;

__device__ inline float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

/// Is every key of [t0, t1) allowed for every row of [q0, q1), with the diagonal outside the tile
/// when it needs special handling? Then the tile needs no per-pair checks.
__device__ inline bool tile_is_clear(const MaskSpec& m, int q0, int q1, int t0, int t1, int n, bool diagonal_matters) {
  if (t1 > n) return false;
  if (diagonal_matters && t0 < q1 && t1 > q0) return false;
  if (m.causal) {
    if (t1 - 1 > q0) return false;
    if (m.window > 0 && t0 < q1 - 1 - m.window + 1) return false;
  } else if (m.window > 0) {
    const int half = m.window / 2;
    if (t0 < q1 - 1 - half || t1 - 1 > q0 + half) return false;
  }
  return true;
}

template <int K, class Score, bool Covariance, bool Statistics, bool Energy, class Spec>
__device__ void attend_tile_rows(const AttentionParams<Spec>& p, int b, int h, int tile, char* smem) {
  using TS = TileShape<K, Score>;
  using W = LiftedWidths<K>;
  constexpr int P = TS::P, QR = TS::QR, KT = TS::keys, KPT = TS::keys_per_thread, E4 = TS::per_load;
  static_assert(KT % TS::step == 0, "a stage holds whole steps");
  constexpr int V = value_width<K>(Covariance);
  constexpr int ks = TS::key_smem, vs = TS::smem_stride(V);
  // Scores::float64: queries, keys and the score sums in double (cancellation of (P1)); the
  // softmax and the message sums stay float, fed with the difference s − m rounded once.
  const Score* queries;
  const Score* keys;
  if constexpr (sizeof(Score) == 8) {
    queries = p.queries64;
    keys = p.keys64;
  } else {
    queries = p.queries;
    keys = p.keys;
  }
  const HeadLayout& head = p.heads[h];
  const int n = p.lengths[b];
  const int q0 = tile * TS::queries;
  if (q0 >= n) return;
  const int q1 = min(q0 + TS::queries, n);  // rows [q0, q1)
  const int kg = threadIdx.x % TS::key_groups, qg = threadIdx.x / TS::key_groups;

  // This thread's queries: rows q0 + qg + 16 r.
  Score a[QR][P];
  int row[QR];
  KeyRange range[QR];
  for (int r = 0; r < QR; ++r) {
    row[r] = q0 + qg + TS::query_groups * r;
    const bool active = row[r] < q1;
    range[r] = active ? key_range(p.mask, row[r], n) : KeyRange{0, 0, -1};
    const Score* src = queries + head.queries + (std::size_t(b) * p.tokens + (active ? row[r] : q0)) * TS::query_stride;
    for (int k = 0; k < P; ++k) a[r][k] = active ? src[k] : Score(0);
  }
  // Online softmax state per query, relative to a reference m (log2 units, −∞ until a key is
  // allowed): w_j = 2^(s_j − m), l = Σ w, acc = Σ w·values. m is raised only when a score passes
  // it by more than 2^8 (lazy rescaling), so a score costs no subtraction: it starts at −m.
  // m is a Score: with double scores of size ~1e7 a float m would round each raise by up to ~0.5,
  // a weight error of that many bits between key tiles.
  Score m[QR];
  float l[QR], acc[QR][V];
  float off[QR], off2[QR], ws[QR];  // Σ_{j≠i} w, Σ_{j≠i} w², Σ w·(s − m) (statistics)
  float en[QR];                     // Σ w·(s − m − bias): the energy's mean score (G1)
  for (int r = 0; r < QR; ++r) {
    m[r] = -INFINITY;
    l[r] = off[r] = off2[r] = ws[r] = en[r] = 0.f;
    for (int v = 0; v < V; ++v) acc[r][v] = 0.f;
  }
  const float alibi = float(p.mask.alibi_slope * 1.4426950408889634);  // log2 units, like the keys

  // Keys any row of the block may see.
  const KeyRange first = key_range(p.mask, q0, n), last = key_range(p.mask, q1 - 1, n);
  const int lo = first.begin < last.begin ? first.begin : last.begin;
  const int hi = first.end > last.end ? first.end : last.end;
  constexpr int stage_bytes = TS::stage_bytes(V);  // one stage: keys [KT][ks] Scores, then values [KT][vs] floats
  const Score* gk = keys + head.keys + std::size_t(b) * p.tokens * TS::key_stride;
  const float* gv = p.values + head.values + std::size_t(b) * p.tokens * head.value_stride;
  // Copies keys and values [t0, t0 + KT) into stage `st` asynchronously, zero-filling past `hi`.
  auto load_stage = [&](int st, int t0) {
    Score* sk = reinterpret_cast<Score*>(smem + st * stage_bytes);
    float* sv = reinterpret_cast<float*>(sk + KT * ks);
    for (int e = threadIdx.x; e < KT * (TS::key_stride / E4); e += TS::threads) {
      const int rr = e / (TS::key_stride / E4), c4 = e % (TS::key_stride / E4);
      const bool inside = t0 + rr < hi;
      __pipeline_memcpy_async(sk + rr * ks + E4 * c4, gk + std::size_t(inside ? t0 + rr : lo) * TS::key_stride + E4 * c4,
                              16, inside ? 0 : 16);
    }
    for (int e = threadIdx.x; e < KT * (round4(V) / 4); e += TS::threads) {
      const int rr = e / (round4(V) / 4), c4 = e % (round4(V) / 4);
      const bool inside = t0 + rr < hi;
      __pipeline_memcpy_async(sv + rr * vs + 4 * c4,
                              gv + std::size_t(inside ? t0 + rr : lo) * head.value_stride + 4 * c4, 16,
                              inside ? 0 : 16);
    }
    __pipeline_commit();
  };

  load_stage(0, lo);
  for (int t0 = lo, st = 0; t0 < hi; t0 += KT, st ^= 1) {
    const bool more = t0 + KT < hi;
    if (more) load_stage(st ^ 1, t0 + KT);  // the next stage flies while this one is read
    __pipeline_wait_prior(more ? 1 : 0);
    __syncthreads();
    const Score* sk = reinterpret_cast<const Score*>(smem + st * stage_bytes);
    const float* sv = reinterpret_cast<const float*>(sk + KT * ks);
    for (int c0 = t0; c0 < min(t0 + KT, hi); c0 += TS::step) {
      const int c1 = min(c0 + TS::step, hi);
      const bool clear =
          c1 - c0 == TS::step && tile_is_clear(p.mask, q0, q1, c0, c1, n, Statistics || p.mask.mask_self);
      const int first_key = c0 - t0 + kg;  // this thread's keys: first_key + 8c within the stage

      // Scores of this thread's keys j = c0 + kg + 8c, in log2 units: a_i · b_j (M8), four floats
      // (two doubles) of b_j per 16-byte shared load (the padding of b_j is zero).
      float s[QR][KPT];
      Score base[QR];
#pragma unroll
      for (int r = 0; r < QR; ++r) base[r] = m[r] == -INFINITY ? 0.f : m[r];
#pragma unroll
      for (int c = 0; c < KPT; ++c) {
        const Score* bj = sk + (first_key + TS::key_groups * c) * ks;
        Score dot[QR];
#pragma unroll
        for (int r = 0; r < QR; ++r) dot[r] = -base[r];
#pragma unroll
        for (int k = 0; k < P; k += E4) {
          const float4 b4 = *reinterpret_cast<const float4*>(bj + k);
          Score bk[E4];
          memcpy(bk, &b4, 16);
#pragma unroll
          for (int e = 0; e < E4; ++e)
            if (k + e < P)
#pragma unroll
              for (int r = 0; r < QR; ++r) dot[r] = fma(a[r][k + e], bk[e], dot[r]);
        }
#pragma unroll
        for (int r = 0; r < QR; ++r) s[r][c] = float(dot[r]);
      }
      if (alibi != 0.f)  // logit += slope·(i − j), from the exact integer distance
#pragma unroll
        for (int c = 0; c < KPT; ++c)
#pragma unroll
          for (int r = 0; r < QR; ++r) s[r][c] = fmaf(alibi, float(row[r] - (c0 + kg + TS::key_groups * c)), s[r][c]);
      if (!clear)
#pragma unroll
        for (int c = 0; c < KPT; ++c)
#pragma unroll
          for (int r = 0; r < QR; ++r)
            if (!range[r].allows(c0 + kg + TS::key_groups * c)) s[r][c] = -INFINITY;

      // Online softmax (M5): raise the reference when a score passes it by more than 2^8.
#pragma unroll
      for (int r = 0; r < QR; ++r) {
        float t = s[r][0];
#pragma unroll
        for (int c = 1; c < KPT; c += 2) t = fmaxf(t, c + 1 < KPT ? fmaxf(s[r][c], s[r][c + 1]) : s[r][c]);
        if (t > rescale_threshold || (m[r] == -INFINITY && t != -INFINITY)) {
          const float scale = m[r] == -INFINITY ? 0.f : fast_exp2(-t);
          m[r] = base[r] + t;
          if (Statistics) {
            ws[r] = scale * (ws[r] - t * l[r]);
            off[r] *= scale;
            off2[r] *= scale * scale;
          }
          if (Energy) en[r] = scale * (en[r] - t * l[r]);
          l[r] *= scale;
#pragma unroll
          for (int v = 0; v < V; ++v) acc[r][v] *= scale;
#pragma unroll
          for (int c = 0; c < KPT; ++c) s[r][c] -= t;
        }
      }
      // Message sums (M9): each key's values are read once and used for all QR queries.
#pragma unroll
      for (int c = 0; c < KPT; ++c) {
        const float* vj = sv + (first_key + TS::key_groups * c) * vs;
        float val[round4(V)];
#pragma unroll
        for (int v = 0; v < V; v += 4) {
          const float4 v4 = *reinterpret_cast<const float4*>(vj + v);
          val[v] = v4.x;
          val[v + 1] = v4.y;
          val[v + 2] = v4.z;
          val[v + 3] = v4.w;
        }
#pragma unroll
        for (int r = 0; r < QR; ++r) {
          const float w = fast_exp2(s[r][c]);  // 2^−∞ = 0 for masked keys
          l[r] += w;
#pragma unroll
          for (int v = 0; v < V; ++v) acc[r][v] = fmaf(w, val[v], acc[r][v]);
          if (Statistics && w > 0.f) {
            ws[r] = fmaf(w, s[r][c], ws[r]);
            if (c0 + kg + TS::key_groups * c != row[r]) {
              off[r] += w;
              off2[r] = fmaf(w, w, off2[r]);
            }
          }
          if (Energy && w > 0.f)  // the score without its ALiBi bias: the KL's share (G1)
            en[r] = fmaf(w, alibi != 0.f ? fmaf(-alibi, float(row[r] - (c0 + kg + TS::key_groups * c)), s[r][c]) : s[r][c],
                         en[r]);
        }
      }
    }
    __syncthreads();  // every thread is done with this stage before it is refilled
  }

  // Merge the 8 key groups of each query (lanes differing in the low 3 bits) onto the larger
  // reference; the sums Σ w·(s − m) of the statistics and the energy also move with it.
#pragma unroll
  for (int r = 0; r < QR; ++r)
    for (int offset = 1; offset < TS::key_groups; offset *= 2) {
      const Score pm = __shfl_xor_sync(0xffffffffu, m[r], offset);
      const Score top = m[r] > pm ? m[r] : pm;
      const float mine = m[r] == -INFINITY ? 0.f : fast_exp2(float(m[r] - top));
      const float theirs = pm == -INFINITY ? 0.f : fast_exp2(float(pm - top));
      const float shift = m[r] == -INFINITY ? 0.f : float(m[r] - top);
      m[r] = top;
      const float pl = __shfl_xor_sync(0xffffffffu, l[r], offset);
      const float pshift = Statistics || Energy ? __shfl_xor_sync(0xffffffffu, shift, offset) : 0.f;
      if (Energy) {
        const float pen = __shfl_xor_sync(0xffffffffu, en[r], offset);
        en[r] = mine * (en[r] + shift * l[r]) + theirs * (pen + pshift * pl);
      }
      if (Statistics) {
        const float pws = __shfl_xor_sync(0xffffffffu, ws[r], offset);
        ws[r] = mine * (ws[r] + shift * l[r]) + theirs * (pws + pshift * pl);
        off[r] = off[r] * mine + __shfl_xor_sync(0xffffffffu, off[r], offset) * theirs;
        off2[r] = off2[r] * mine * mine + __shfl_xor_sync(0xffffffffu, off2[r], offset) * theirs * theirs;
      }
      l[r] = l[r] * mine + pl * theirs;
#pragma unroll
      for (int v = 0; v < V; ++v) acc[r][v] = acc[r][v] * mine + __shfl_xor_sync(0xffffffffu, acc[r][v], offset) * theirs;
    }

  // Epilogue: lane kg = r writes query r, back in its own frame: m_i = R_i (w + ν̄) (M9).
#pragma unroll
  for (int r = 0; r < QR; ++r) {
    if (kg != r || row[r] >= q1) continue;
    const int i = row[r];
    const std::size_t t = std::size_t(b) * p.tokens + i;
    const double inv_l = 1.0 / double(l[r]);
    const double* R = p.frames + head.frames + t * K * K;
    const double* sum = p.means + head.means + std::size_t(b) * K;
    double w[K], shifted[K];
    for (int k = 0; k < K; ++k) {
      w[k] = acc[r][k] * inv_l;
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
        for (int y = x; y < K; ++y)
          C[x][y] = C[y][x] = acc[r][K + lifted::sym_index(K, x, y)] * inv_l - w[x] * w[y];
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
    if (p.lse) p.lse[bhi] = float((m[r] + log2f(l[r])) * ln2);
    // e_i = Σ_j β_ij KL_ij with KL_ij = −κ ln2 (a_i·k_j) − ½ ln det Σ_i and Σ_j β_ij a_i·k_j = en/l + m (G1).
    if constexpr (Energy)
      p.energy[bhi] = float(-head.kappa * double(ln2) * (double(en[r]) * inv_l + double(m[r])) -
                            p.half_logdets[std::size_t(h) * p.batch * p.tokens + t]);
    if constexpr (Statistics) {
      const KeyRange keys = range[r];
      const int allowed_off = keys.count() - (keys.allows(i) ? 1 : 0);
      p.row_std[bhi] = float(row_std_of(n, 0.0, allowed_off, off[r] * inv_l, off2[r] * inv_l * inv_l));
      p.uniform_row_std[bhi] = float(uniform_row_std_of(n, 0.0, keys, i));
      const double entropy = log(double(l[r])) - double(ln2) * ws[r] * inv_l;  // ws is relative to m
      p.entropy[bhi] = keys.count() > 1 ? float(normalised_entropy_of(keys, entropy)) : 0.f;
    }
  }
}

}  // namespace detail

/// One block per (query tile, sequence, head); see AttentionParams for the order. Dynamic shared
/// memory: two stages of the spec's largest key + value tile. Score: float, or double (Scores::float64).
template <class Spec, class Score, bool Covariance, bool Statistics, bool Energy>
__global__ void __launch_bounds__(128, Covariance ? 2 : GAUGE_ATTN_FLASH_MIN_BLOCKS) flash_kl_kernel(AttentionParams<Spec> p) {
  extern __shared__ float4 shared_tiles[];
  const BlockPlace at = place_block(p.groups, int(blockIdx.x), p.batch, true);
  visit_spin(at.group, typename Spec::spins{}, [&](auto spin) {
    constexpr int K = 2 * decltype(spin)::value + 1;
    detail::attend_tile_rows<K, Score, Covariance, Statistics, Energy>(p, at.b, at.h, at.tile,
                                                                       reinterpret_cast<char*>(shared_tiles));
  });
}

}  // namespace gauge_attn::gpu
