// gauge_attn/cuda/flash_kl.cuh: the fused KL-attention kernel. For one (sequence, head, query
// tile) it streams the lifted keys through shared memory and keeps, per query, an online softmax
// of the (M8) scores (M5), the message sums (M9), the row statistics (§7) and the attention
// energy (G1), so that nothing of size N² exists. All heads of a spec run in one launch; each block specialises on its head's ℓ.
//
// Two tile paths, chosen per head at compile time: this file's on the FP32 pipe (below), and the
// tensor-core one of flash_kl_tensor_core.cuh for wide heads (uses_tensor_cores, layout.cuh).
//
// FP32 path. Threads: 128 = 16 query groups × 8 key groups. A thread owns QR queries (registers hold their
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

#include "copy_rows.cuh"
#include "flash_kl_rows.cuh"
#include "flash_kl_tensor_core.cuh"
#include "layout.cuh"
#include "online_softmax.cuh"

namespace gauge_attn::gpu {

namespace detail {

/// OwnReference: the rows' references are their own scores (own_score_is_reference), else a
/// running maximum raised lazily.
template <int K, class Score, bool Covariance, bool Statistics, bool Energy, bool OwnReference, class Spec>
__device__ void attend_tile_rows(const AttentionParams<Spec>& p, int b, int h, int tile, char* smem) {
  using TS = TileShape<K, Score>;
  using W = LiftedWidths<K>;
  constexpr int P = TS::P, QR = TS::QR, KT = TS::keys, KPT = TS::keys_per_thread, E4 = TS::per_load;
  static_assert(KT % TS::step == 0, "a stage holds whole steps");
  constexpr int V = value_width(K, Covariance);
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

  // Keys any row of the block may see.
  const KeyRange first = key_range(p.mask, q0, n), last = key_range(p.mask, q1 - 1, n);
  const int lo = first.begin < last.begin ? first.begin : last.begin;
  const int hi = first.end > last.end ? first.end : last.end;
  constexpr int stage_bytes = TS::stage_bytes(V);  // one stage: keys [KT][ks] Scores, then values [KT][vs] floats
  const Score* gk = keys + head.keys + std::size_t(b) * p.tokens * TS::key_stride;
  constexpr int value_stride = lifted_value_stride(K, Covariance);  // head.value_stride, known here
  const float* gv = p.values + head.values + std::size_t(b) * p.tokens * value_stride;
  // Copies keys and values [t0, t0 + KT) into stage `st` asynchronously, zero-filling past `hi`.
  auto load_stage = [&](int st, int t0) {
    Score* sk = reinterpret_cast<Score*>(smem + st * stage_bytes);
    float* sv = reinterpret_cast<float*>(sk + KT * ks);
    copy_rows_async<TS::threads, KT, TS::key_stride>(sk, ks, gk, TS::key_stride, t0, hi, lo);
    copy_rows_async<TS::threads, KT, round4(V)>(sv, vs, gv, value_stride, t0, hi, lo);
    __pipeline_commit();
  };

  load_stage(0, lo);  // first, so that its copy flies while the queries and own scores are read

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
  // Online softmax state per query (online_softmax.cuh): scores are computed relative to the
  // reference m, so a score costs no subtraction: it starts at −m. m is the row's own score s_ii
  // (OwnReference), or a running maximum raised only when a score passes it by more than 2^8.
  OnlineRow<Score, Statistics, Energy> state[QR];
  if constexpr (OwnReference)
    for (int r = 0; r < QR; ++r)
      if (row[r] < q1) state[r].m = own_score<P>(a[r], keys + head.keys + (std::size_t(b) * p.tokens + row[r]) * TS::key_stride);
  float acc[QR][V];  // Σ w·v_j, the message sums (M9)
  for (int r = 0; r < QR; ++r)
    for (int v = 0; v < V; ++v) acc[r][v] = 0.f;
  const float alibi = float(p.mask.alibi_slope * 1.4426950408889634);  // log2 units, like the keys

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

      // Scores of this thread's keys j = c0 + kg + 8c, in log2 units: a_i · b_j (M8) − base, four
      // floats (two doubles) of b_j per 16-byte shared load (the padding of b_j is zero). Kept in
      // Score until the reference is raised: before the first raise the base is 0, and a float
      // rounding of a double score of size |s| would move its weight by up to 2^(|s|·2⁻²⁴) − 1.
      Score s[QR][KPT];
      Score base[QR];
#pragma unroll
      for (int r = 0; r < QR; ++r) base[r] = state[r].base();
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
        for (int r = 0; r < QR; ++r) s[r][c] = dot[r];
      }
      if (alibi != 0.f)  // logit += slope·(i − j), from the exact integer distance
#pragma unroll
        for (int c = 0; c < KPT; ++c)
#pragma unroll
          for (int r = 0; r < QR; ++r)
            s[r][c] = fma(Score(alibi), Score(row[r] - (c0 + kg + TS::key_groups * c)), s[r][c]);
      if (!clear)
#pragma unroll
        for (int c = 0; c < KPT; ++c)
#pragma unroll
          for (int r = 0; r < QR; ++r)
            if (!range[r].allows(c0 + kg + TS::key_groups * c)) s[r][c] = -INFINITY;

      // Online softmax (M5): raise a running reference when a score passes it by more than 2^8.
      if constexpr (!OwnReference) {
#pragma unroll
        for (int r = 0; r < QR; ++r) {
          Score t = s[r][0];
#pragma unroll
          for (int c = 1; c < KPT; c += 2) t = fmax(t, c + 1 < KPT ? fmax(s[r][c], s[r][c + 1]) : s[r][c]);
          if (state[r].should_raise(t)) {
            const float scale = state[r].raise(t);
#pragma unroll
            for (int v = 0; v < V; ++v) acc[r][v] *= scale;
#pragma unroll
            for (int c = 0; c < KPT; ++c) s[r][c] -= t;
          }
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
          const float x = float(s[r][c]), w = fast_exp2(x);  // 2^−∞ = 0 for masked keys
          const int j = c0 + kg + TS::key_groups * c;
#pragma unroll
          for (int v = 0; v < V; ++v) acc[r][v] = fmaf(w, val[v], acc[r][v]);
          // The score without its ALiBi bias is the KL's share (G1).
          state[r].add(w, x, j != row[r], alibi != 0.f ? fmaf(-alibi, float(row[r] - j), x) : x);
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
      OnlineRow<Score, Statistics, Energy>& q = state[r];
      const Score pm = __shfl_xor_sync(0xffffffffu, q.m, offset);
      const Score top = q.m > pm ? q.m : pm;
      const float mine = q.m == -INFINITY ? 0.f : fast_exp2(float(q.m - top));
      const float theirs = pm == -INFINITY ? 0.f : fast_exp2(float(pm - top));
      const float shift = q.m == -INFINITY ? 0.f : float(q.m - top);
      q.m = top;
      const float pl = __shfl_xor_sync(0xffffffffu, q.l, offset);
      const float pshift = Statistics || Energy ? __shfl_xor_sync(0xffffffffu, shift, offset) : 0.f;
      if (Energy) {
        const float pen = __shfl_xor_sync(0xffffffffu, q.en, offset);
        q.en = mine * (q.en + shift * q.l) + theirs * (pen + pshift * pl);
      }
      if (Statistics) {
        const float pws = __shfl_xor_sync(0xffffffffu, q.ws, offset);
        q.ws = mine * (q.ws + shift * q.l) + theirs * (pws + pshift * pl);
        q.off = q.off * mine + __shfl_xor_sync(0xffffffffu, q.off, offset) * theirs;
        q.off2 = q.off2 * mine * mine + __shfl_xor_sync(0xffffffffu, q.off2, offset) * theirs * theirs;
      }
      q.l = q.l * mine + pl * theirs;
#pragma unroll
      for (int v = 0; v < V; ++v) acc[r][v] = acc[r][v] * mine + __shfl_xor_sync(0xffffffffu, acc[r][v], offset) * theirs;
    }

  // Epilogue: lane kg = r writes query r.
#pragma unroll
  for (int r = 0; r < QR; ++r)
    if (kg == r && row[r] < q1)
      write_row<K, Covariance, Statistics, Energy>(p, b, h, row[r], n, range[r], state[r], acc[r]);
}

}  // namespace detail

/// One block per (query tile, sequence, head); see AttentionParams for the order. Each head takes
/// the FP32 tile path above or the tensor-core path (uses_tensor_cores, fixed by its width). Dynamic
/// shared memory: the largest of the spec's heads' (attention_smem_bytes). Score: float, or double
/// (Scores::float64).
template <class Spec, class Score, bool Covariance, bool Statistics, bool Energy>
__global__ void __launch_bounds__(128, attention_min_blocks<Spec, Score, Covariance>()) flash_kl_kernel(AttentionParams<Spec> p) {
  extern __shared__ float4 shared_tiles[];
  const BlockPlace at = place_block(p.groups, int(blockIdx.x), p.batch, true);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  cudaGridDependencySynchronize();  // the lift's vectors (Forward launches this kernel programmatically)
#endif
  visit_spin(at.group, typename Spec::spins{}, [&](auto spin) {
    constexpr int K = 2 * decltype(spin)::value + 1;
    char* smem = reinterpret_cast<char*>(shared_tiles);
    const bool own = detail::own_score_is_reference<K, Score>(p, at.b, at.h);
    if constexpr (uses_tensor_cores(LiftedWidths<K>::lifted, sizeof(Score) == 8)) {
      // The own-score loop only for heads whose queries stay in registers (ℓ ≤ 3): for wider heads
      // its second copy of the tile loop cost registers and time (W6's mean kernel 48 → 96 B of
      // stack, W6 1.878 → 1.943 ms on an H200; docs/performance.md).
      if constexpr (TensorCoreTileShape<K>::queries_in_registers)
        if (own) {
          detail::attend_tile_rows_tensor_cores<K, Covariance, Statistics, Energy, true>(p, at.b, at.h, at.tile, smem);
          return;
        }
      detail::attend_tile_rows_tensor_cores<K, Covariance, Statistics, Energy, false>(p, at.b, at.h, at.tile, smem);
    } else if (own) {
      detail::attend_tile_rows<K, Score, Covariance, Statistics, Energy, true>(p, at.b, at.h, at.tile, smem);
    } else {
      detail::attend_tile_rows<K, Score, Covariance, Statistics, Energy, false>(p, at.b, at.h, at.tile, smem);
    }
  });
}

}  // namespace gauge_attn::gpu
