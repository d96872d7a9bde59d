// gauge_attn/cuda/flash_kl_backward.cuh: the backward pair pass (docs/gradients.md §3–4), one
// pass, FlashAttention-2's way: nothing of size N² exists and each exp is computed once. A block
// owns a tile of keys of one (sequence, head) and streams the queries that read them through shared
// memory; per pair (log₂ units, k_j = b_j·log₂e as the forward stores it)
//
//   dot = a_i·k_j − L2_i,  β_ij = 2^(dot + bias),  t = x̄_i·x_j − c_i·dot − D'_i   (row_gradients.cuh)
//   s̄_ij = β_ij t (G5),  p̄_ij = s̄_ij − κε_i β_ij (G6 scaled by −κ),
//
// and it sums U_j = Σ_i p̄_ij a_i and X̄_j = Σ_i β_ij x̄_i in registers (the block owns key j: plain
// stores at the end), Σ s̄_ij·dot for κ (G9; Σ_j s̄_ij = 0, so the centred dot gives the same sum
// as a_i·k_j with less cancellation), and Ā_i = Σ_j p̄_ij k_j (G7, × ln 2 later) through a p̄ tile in
// shared memory, added to Ā with one float4 atomic per (query, 4 entries, key tile).
// With `Moments` it also sums X_i = Σ_j β_ij x_j the same way (the covariance message in the
// identity frame, whose off-diagonals a diagonal forward did not return; the frames need them, G4).
// docs/cuda.md explains the choices.
#pragma once

#include <gauge_attn/lifted.hpp>
#include <gauge_attn/mask.hpp>

#include <cuda_pipeline.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>

#include "backward_layout.cuh"
#include "copy_rows.cuh"
#include "flash_kl.cuh"
#include "layout.cuh"

/// Blocks of 128 threads the pair pass is compiled to fit on one multiprocessor for the mean
/// message (the covariance message's wider values take 2); registers per thread 65536 / (128 · blocks).
#ifndef GAUGE_ATTN_BACKWARD_MIN_BLOCKS
#define GAUGE_ATTN_BACKWARD_MIN_BLOCKS 4
#endif

namespace gauge_attn::gpu {

namespace detail {

/// The queries [begin, end) that may read a key of [k0, k1) under mask m (n valid tokens): the
/// union of the rows whose key_range meets the tile (a superset; the pairs are masked one by one).
struct QuerySpan {
  int begin, end;
};

__device__ inline QuerySpan query_span(const MaskSpec& m, int k0, int k1, int n) {
  if (m.causal) return {k0, m.window > 0 ? min(n, k1 - 1 + m.window) : n};  // j ≤ i < j + W
  if (m.window > 0) return {max(0, k0 - m.window / 2), min(n, k1 + m.window / 2)};  // |i − j| ≤ W/2
  return {0, n};
}

/// Stores `Count` consecutive floats (4, 2 or 1) with one vector store; `to` is aligned to them.
template <int Count>
__device__ inline void store_vector(float* to, const float (&x)[Count]) {
  if constexpr (Count == 4)
    *reinterpret_cast<float4*>(to) = make_float4(x[0], x[1], x[2], x[3]);
  else if constexpr (Count == 2)
    *reinterpret_cast<float2*>(to) = make_float2(x[0], x[1]);
  else
    *to = x[0];
}

/// out_i += Σ_j tile[i][j]·vectors_j[4f .. 4f + 4) over the block's Keys keys, for the stage's 32
/// queries (lane = query, row `lane` of the tile) and the Chunks float4 chunks f of the vectors; one
/// float4 atomic per (query, chunk) into `out` (the lane's row). The four warps split the chunks,
/// or the keys when there is a single chunk (their partial sums meet in `red`, 3 × 32 float4).
/// All threads call it: it synchronises the block in the single-chunk case.
template <int Keys, int Chunks>
__device__ void add_tile_products(const float* tile, int tile_stride, const float* vectors, int vector_stride, float* out,
                                  bool valid, float4* red) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const float* weights = tile + lane * tile_stride;
  auto sum = [&](int f, int j0, int j1) {
    float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
    for (int j = j0; j < j1; j += 4) {
      const float4 w4 = *reinterpret_cast<const float4*>(weights + j);  // 4 keys of row `lane`
      const float w[4] = {w4.x, w4.y, w4.z, w4.w};
#pragma unroll
      for (int e = 0; e < 4; ++e) {  // the same vector for every lane: a broadcast
        const float4 v = *reinterpret_cast<const float4*>(vectors + (j + e) * vector_stride + 4 * f);
        acc.x = fmaf(w[e], v.x, acc.x);
        acc.y = fmaf(w[e], v.y, acc.y);
        acc.z = fmaf(w[e], v.z, acc.z);
        acc.w = fmaf(w[e], v.w, acc.w);
      }
    }
    return acc;
  };
  if constexpr (Chunks == 1) {
    constexpr int slice = Keys / 4;
    float4 acc = sum(0, warp * slice, (warp + 1) * slice);
    if (warp > 0) red[(warp - 1) * 32 + lane] = acc;
    __syncthreads();
    if (warp == 0) {
      for (int s = 0; s < 3; ++s) {
        const float4 o = red[s * 32 + lane];
        acc.x += o.x;
        acc.y += o.y;
        acc.z += o.z;
        acc.w += o.w;
      }
      if (valid) atomicAdd(reinterpret_cast<float4*>(out), acc);
    }
  } else {
    for (int f = warp; f < Chunks; f += 4) {
      const float4 acc = sum(f, 0, Keys);
      if (valid) atomicAdd(reinterpret_cast<float4*>(out) + f, acc);
    }
  }
}

/// The pair pass of key tile `tile` of (sequence b, head h); K the head dimension, V the value width.
template <int K, int V, bool Moments, class Spec>
__device__ void backward_key_tile(const BackwardParams<Spec>& p, int b, int h, int tile, float* smem) {
  using TS = BackwardTileShape<K, V>;
  constexpr int P = TS::P, KR = TS::KR, QG = TS::QG, KL = TS::key_lanes, KT = TS::keys, SQ = TS::queries;
  constexpr int qs = TS::query_smem, rs = TS::row_smem, ks = TS::key_smem, vs = TS::value_smem, ts = TS::tile_smem;
  constexpr int lifted_stride = round4(P), value_stride = round4(V);
  constexpr bool moments = Moments && K > 1;  // ℓ = 0: Σ^agg is its own diagonal
  const LiftParams<Spec>& lp = p.lift;
  const HeadLayout& head = lp.heads[h];
  const BackwardHeadLayout& bh = p.heads[h];
  const int n = lp.lengths[b], k0 = tile * KT;
  if (k0 >= n) return;
  const int k1 = min(k0 + KT, n);  // valid keys [k0, k1)
  const QuerySpan span = query_span(p.mask, k0, k1, n);
  const int lo = span.begin, hi = span.end;
  const int kl = threadIdx.x % KL, qg = threadIdx.x / KL;
  const std::size_t seq = std::size_t(b) * lp.tokens;

  // Shared memory (BackwardTileShape::smem_floats).
  float* stages = smem;  // 2 × ([SQ][qs] queries a_i, [SQ][rs] rows x̄_i and constants)
  float* pbar_tile = stages + 2 * TS::stage_floats;  // [SQ][ts] p̄_ij
  float* key_tile = pbar_tile + SQ * ts;             // [KT][ks] k_j
  float* p_tile = key_tile + KT * ks;                // [SQ][ts] β_ij (moments)
  float* value_tile = p_tile + (moments ? SQ * ts : 0);  // [KT][vs] x_j (moments)
  float4* red = reinterpret_cast<float4*>(value_tile + (moments ? KT * vs : 0));  // 2 × 3 × 32

  const float* gq = lp.queries + head.queries + seq * lifted_stride;
  const float* gr = p.rows + bh.rows + seq * bh.row_stride;
  const float* gk = lp.keys + head.keys + seq * lifted_stride;
  const float* gv = lp.values + head.values + seq * value_stride;

  // The block's keys in shared memory for the Ā phase (and the values for X), zero past k1; one
  // commit group with the first stage.
  copy_rows_async<TS::threads, KT, lifted_stride>(key_tile, ks, gk, lifted_stride, k0, k1, k0);
  if constexpr (moments) copy_rows_async<TS::threads, KT, value_stride>(value_tile, vs, gv, value_stride, k0, k1, k0);
  // Copies the queries and rows [c0, c0 + SQ) into stage `st`, zero-filling past `hi`.
  auto load_stage = [&](int st, int c0) {
    float* sq = stages + st * TS::stage_floats;
    float* sr = sq + SQ * qs;
    copy_rows_async<TS::threads, SQ, lifted_stride>(sq, qs, gq, lifted_stride, c0, hi, lo);
    copy_rows_async<TS::threads, SQ, TS::row_stride>(sr, rs, gr, TS::row_stride, c0, hi, lo);
    __pipeline_commit();
  };
  load_stage(0, lo);

  // This thread's keys j = k0 + kl·KR + r in registers (zeros past k1), and their sums.
  float kj[KR][P], xj[KR][V], U[KR][P], Xbar[KR][V];
#pragma unroll
  for (int r = 0; r < KR; ++r) {
    const int j = k0 + kl * KR + r;
    const bool valid = j < k1;
#pragma unroll
    for (int k = 0; k < P; ++k) {
      kj[r][k] = valid ? gk[std::size_t(j) * lifted_stride + k] : 0.f;
      U[r][k] = 0.f;
    }
#pragma unroll
    for (int v = 0; v < V; ++v) {
      xj[r][v] = valid ? gv[std::size_t(j) * value_stride + v] : 0.f;
      Xbar[r][v] = 0.f;
    }
  }
  float kappa_sum = 0.f;  // Σ s̄_ij·dot_ij over this thread's pairs
  const float alibi = float(p.mask.alibi_slope * 1.4426950408889634);  // log2 units, like the keys

  for (int c0 = lo, st = 0; c0 < hi; c0 += SQ, st ^= 1) {
    const bool more = c0 + SQ < hi;
    if (more) load_stage(st ^ 1, c0 + SQ);  // the next stage flies while this one is read
    __pipeline_wait_prior(more ? 1 : 0);
    __syncthreads();
    const float* sq = stages + st * TS::stage_floats;
    const float* sr = sq + SQ * qs;
    const bool clear = c0 + SQ <= hi && tile_is_clear(p.mask, c0, c0 + SQ, k0, k0 + KT, n, p.mask.mask_self);

    // Pairs: this thread's queries i = c0 + qg + QG·c against its KR keys. A warp shares its query,
    // so every shared-memory read below is a broadcast.
#pragma unroll(TS::hold_queries ? 2 : 1)
    for (int c = 0; c < TS::queries_per_thread; ++c) {
      const int il = qg + QG * c, i = c0 + il;
      // f(k, a_i[k]) for every k < P: from registers loaded once, or (wide heads, short of
      // registers) from shared memory, four elements per load, each time it is needed.
      float a[TS::hold_queries ? P : 1], x[V];
      auto load_query = [&](auto&& f) {
#pragma unroll
        for (int k = 0; k < P; k += 4) {
          const float4 q4 = *reinterpret_cast<const float4*>(sq + il * qs + k);
          const float q[4] = {q4.x, q4.y, q4.z, q4.w};
#pragma unroll
          for (int e = 0; e < 4; ++e)
            if (k + e < P) f(k + e, q[e]);
        }
      };
      auto each_query_element = [&](auto&& f) {
        if constexpr (TS::hold_queries) {
#pragma unroll
          for (int k = 0; k < P; ++k) f(k, a[k]);
        } else {
          load_query(f);
        }
      };
      if constexpr (TS::hold_queries) load_query([&](int k, float q) { a[k] = q; });
#pragma unroll
      for (int v = 0; v < V; v += 4) {
        const float4 x4 = *reinterpret_cast<const float4*>(sr + il * rs + v);
        const float y[4] = {x4.x, x4.y, x4.z, x4.w};
#pragma unroll
        for (int e = 0; e < 4; ++e)
          if (v + e < V) x[v + e] = y[e];
      }
      const float4 row = *reinterpret_cast<const float4*>(sr + il * rs + value_stride);  // L2, D', c, κε
      const KeyRange range = !clear && i < hi ? key_range(p.mask, i, n) : KeyRange{0, 0, -1};
      float pbar_out[KR], p_out[KR];
#pragma unroll
      for (int r = 0; r < KR; ++r) {
        const int j = k0 + kl * KR + r;
        float dot = -row.x;  // a_i·k_j − L2_i
        each_query_element([&](int k, float ak) { dot = fmaf(ak, kj[r][k], dot); });
        float s = alibi != 0.f ? fmaf(alibi, float(i - j), dot) : dot;
        if (!clear && !range.allows(j)) s = -INFINITY;
        const float beta = fast_exp2(s);  // 2^−∞ = 0 for masked pairs
        float g = -row.y;                 // x̄_i·x_j − D'_i
#pragma unroll
        for (int v = 0; v < V; ++v) g = fmaf(x[v], xj[r][v], g);
        const float sbar = beta * fmaf(-row.z, dot, g);  // s̄ = β (β̄ − D) (G5)
        const float pbar = fmaf(-row.w, beta, sbar);     // p̄ = s̄ − κε β
        kappa_sum = fmaf(sbar, dot, kappa_sum);
        each_query_element([&](int k, float ak) { U[r][k] = fmaf(pbar, ak, U[r][k]); });
#pragma unroll
        for (int v = 0; v < V; ++v) Xbar[r][v] = fmaf(beta, x[v], Xbar[r][v]);
        pbar_out[r] = pbar;
        p_out[r] = beta;
      }
      store_vector<KR>(pbar_tile + il * ts + kl * KR, pbar_out);
      if constexpr (moments) store_vector<KR>(p_tile + il * ts + kl * KR, p_out);
    }
    __syncthreads();

    // Ā_i += Σ_j p̄_ij k_j (and X_i += Σ_j β_ij x_j) for the stage's queries, lane = query.
    const int lane = threadIdx.x % 32, i = c0 + lane;
    const bool valid = i < hi;
    add_tile_products<KT, TS::chunks>(pbar_tile, ts, key_tile, ks, p.abar + bh.lifted + (seq + i) * lifted_stride, valid,
                                      red);
    if constexpr (moments)
      add_tile_products<KT, value_stride / 4>(p_tile, ts, value_tile, vs,
                                              p.moments_sums + bh.values + (seq + i) * value_stride, valid, red + 96);
  }
  __pipeline_wait_prior(0);
  __syncthreads();  // the shared memory is free: it now collects the query groups' sums

  // κ̄: the block's Σ s̄·dot, one double atomic per block (scaled by −ln 2/κ at the end).
  __shared__ float kappa_warps[TS::threads / 32];
  for (int o = 16; o > 0; o /= 2) kappa_sum += __shfl_down_sync(0xffffffffu, kappa_sum, o);
  if (threadIdx.x % 32 == 0) kappa_warps[threadIdx.x / 32] = kappa_sum;

  // U_j and X̄_j: the QG query groups' partial sums meet in shared memory (group 0 keeps its own
  // in registers and adds the others'); the block owns its keys.
  if (qg > 0) {
    float* sums = smem + (std::size_t(qg - 1) * KL + kl) * KR * (P + V);
#pragma unroll
    for (int r = 0; r < KR; ++r) {
#pragma unroll
      for (int k = 0; k < P; ++k) sums[r * (P + V) + k] = U[r][k];
#pragma unroll
      for (int v = 0; v < V; ++v) sums[r * (P + V) + P + v] = Xbar[r][v];
    }
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    float total = 0.f;
    for (int w = 0; w < TS::threads / 32; ++w) total += kappa_warps[w];
    atomicAdd(p.kappa_sums + h, double(total));
  }
  if (qg != 0) return;
#pragma unroll
  for (int r = 0; r < KR; ++r) {
    const int j = k0 + kl * KR + r;
    if (j >= k1) continue;
    for (int q = 1; q < QG; ++q) {
      const float* other = smem + (std::size_t(q - 1) * KL + kl) * KR * (P + V) + r * (P + V);
#pragma unroll
      for (int k = 0; k < P; ++k) U[r][k] += other[k];
#pragma unroll
      for (int v = 0; v < V; ++v) Xbar[r][v] += other[P + v];
    }
    float* u = p.u + bh.lifted + (seq + j) * lifted_stride;
    float* xbar = p.xbar + bh.values + (seq + j) * value_stride;
#pragma unroll
    for (int k = 0; k < P; ++k) u[k] = U[r][k];
#pragma unroll
    for (int v = 0; v < V; ++v) xbar[v] = Xbar[r][v];
  }
}

}  // namespace detail

/// One block per (key tile, sequence, head) of every head, grouped by irrep, the first tiles (the
/// heaviest under causality) first. Dynamic shared memory: BackwardTileShape::smem_floats of the
/// spec's largest head.
template <class Spec, bool Covariance, bool Moments>
__global__ void __launch_bounds__(128, Covariance ? 2 : GAUGE_ATTN_BACKWARD_MIN_BLOCKS)
    flash_kl_backward_kernel(BackwardParams<Spec> p) {
  extern __shared__ float4 shared_tiles[];
  const BlockPlace at = place_block(p.groups, int(blockIdx.x), p.lift.batch, false);
  visit_spin(at.group, typename Spec::spins{}, [&](auto spin) {
    constexpr int K = 2 * decltype(spin)::value + 1;
    detail::backward_key_tile<K, value_width(K, Covariance), Moments>(p, at.b, at.h, at.tile,
                                                                       reinterpret_cast<float*>(shared_tiles));
  });
}

}  // namespace gauge_attn::gpu
