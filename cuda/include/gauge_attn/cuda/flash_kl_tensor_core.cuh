// gauge_attn/cuda/flash_kl_tensor_core.cuh: the attention kernel's tile path for wide heads, with
// the (M8) scores S = A·Bᵀ and the message sums O = W·V on the tensor cores in 3×TF32
// (tf32x3.cuh: float accuracy), the online softmax (M5) and everything else as in flash_kl.cuh.
// Values of width V ≤ 3 (ℓ1's mean message) are summed on the FP32 pipe instead.
//
// Threads: 4 warps of 16 query rows (a block: 64 rows). Per step of `step` keys staged in shared
// memory, a warp computes its 16 × step scores as m16n8k8 products over the lifted width P8, turns
// them into weights in registers (lane 4g + t holds rows g and g + 8, keys 2t and 2t + 1 of every
// 8), and adds W·V with the weights as the A operand of the next products: the C layout of the
// scores is the A layout of the weights once the 8 keys of a k-step are taken in the order
// 0, 2, 4, 6, 1, 3, 5, 7, so the value rows are read in that order and nothing is shuffled. The four
// lanes of a row share its reference m (its own score, or a quad max per step), so their sums add
// up at the end.
#pragma once

#include <gauge_attn/lifted.hpp>
#include <gauge_attn/mask.hpp>

#include <cuda_pipeline.h>
#include <cuda_runtime.h>

#include <cmath>

#include "copy_rows.cuh"
#include "flash_kl_rows.cuh"
#include "layout.cuh"
#include "online_softmax.cuh"
#include "tf32x3.cuh"

namespace gauge_attn::gpu::detail {

/// OwnReference: the rows' references are their own scores (own_score_is_reference), else a
/// running maximum raised lazily.
template <int K, bool Covariance, bool Statistics, bool Energy, bool OwnReference, class Spec>
__device__ void attend_tile_rows_tensor_cores(const AttentionParams<Spec>& p, int b, int h, int tile, char* smem) {
  using TS = TensorCoreTileShape<K>;
  using Row = OnlineRow<float, Statistics, Energy>;
  constexpr int P8 = TS::P8, KSTEPS = P8 / 8, NT = TS::step / 8, STEP = TS::step;
  constexpr int V = value_width(K, Covariance), VT = round8(V) / 8;
  // Narrow values are summed on the FP32 pipe, each lane over its own keys: V FMAs a pair, where a
  // 3×TF32 product costs ~4 instructions a pair whatever V ≤ 8 (the weights' split, 2 instructions;
  // the values' loads and split and three MMAs per 8 keys). ℓ2's V = 5 on the FP32 pipe measured
  // slower (docs/performance.md).
  constexpr bool fp32_message = V <= 3;
  constexpr int ks = TS::key_smem, vs = TS::value_smem(V);
  constexpr int stride = TileShape<K>::key_stride;  // floats per lifted vector in global memory (queries too)
  const HeadLayout& head = p.heads[h];
  const int n = p.lengths[b];
  const int q0 = tile * TS::queries;
  if (q0 >= n) return;
  const int q1 = min(q0 + TS::queries, n);  // the block's rows [q0, q1)
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int w0 = q0 + 16 * warp, w1 = min(w0 + 16, q1);  // the warp's rows [w0, w1), maybe none

  // This lane's rows g and g + 8 of the warp.
  int row[2];
  KeyRange range[2];
  for (int hf = 0; hf < 2; ++hf) {
    row[hf] = w0 + g + 8 * hf;
    range[hf] = row[hf] < q1 ? key_range(p.mask, row[hf], n) : KeyRange{0, 0, -1};
  }
  // Keys any row of the block may see, and those of the warp (empty without rows).
  const KeyRange first = key_range(p.mask, q0, n), last = key_range(p.mask, q1 - 1, n);
  const int lo = min(first.begin, last.begin), hi = max(first.end, last.end);
  int warp_lo = hi, warp_hi = lo;
  if (w0 < w1) {
    const KeyRange a = key_range(p.mask, w0, n), z = key_range(p.mask, w1 - 1, n);
    warp_lo = min(a.begin, z.begin);
    warp_hi = max(a.end, z.end);
  }

  // Shared memory: two stages of [STEP][ks] keys and [STEP][vs] values, then [64][ks] queries.
  constexpr int stage_floats = TS::stage_bytes(V) / 4;
  float* const tiles = reinterpret_cast<float*>(smem);
  float* const query_tile = tiles + 2 * stage_floats;
  const float* gq = p.queries + head.queries + std::size_t(b) * p.tokens * stride;
  const float* gk = p.keys + head.keys + std::size_t(b) * p.tokens * stride;
  constexpr int value_stride = lifted_value_stride(K, Covariance);  // head.value_stride, known here
  const float* gv = p.values + head.values + std::size_t(b) * p.tokens * value_stride;
  // The columns no copy writes are zero: the lifted vectors' last k-step, the values' last n-tile.
  for (int e = threadIdx.x; e < 2 * STEP; e += TS::threads) {
    float* key = tiles + (e / STEP) * stage_floats + (e % STEP) * ks;
    float* value = tiles + (e / STEP) * stage_floats + STEP * ks + (e % STEP) * vs;
    for (int c = stride; c < P8; ++c) key[c] = 0.f;
    for (int c = round4(V); c < round8(V); ++c) value[c] = 0.f;
  }
  if constexpr (!TS::queries_in_registers) {
    for (int e = threadIdx.x; e < TS::queries; e += TS::threads)
      for (int c = stride; c < P8; ++c) query_tile[e * ks + c] = 0.f;
    copy_rows_async<TS::threads, TS::queries, stride>(query_tile, ks, gq, stride, q0, q1, q0);
  }
  // Copies keys and values [t0, t0 + STEP) into stage `st` asynchronously, zero-filling past `hi`
  // (committed with the query tile, for the first stage).
  auto load_stage = [&](int st, int t0) {
    float* sk = tiles + st * stage_floats;
    float* sv = sk + STEP * ks;
    copy_rows_async<TS::threads, STEP, stride>(sk, ks, gk, stride, t0, hi, lo);
    copy_rows_async<TS::threads, STEP, round4(V)>(sv, vs, gv, value_stride, t0, hi, lo);
    __pipeline_commit();
  };
  load_stage(0, lo);

  // Narrow heads: the warp's queries as split A fragments, read once from global memory.
  tf32x3::FragmentA held[TS::queries_in_registers ? KSTEPS : 1];
  if constexpr (TS::queries_in_registers) {
    const float* a0 = gq + std::size_t(row[0] < q1 ? row[0] : q0) * stride;
    const float* a1 = gq + std::size_t(row[1] < q1 ? row[1] : q0) * stride;
    auto at = [&](const float* a, int c) { return c < stride ? a[c] : 0.f; };
#pragma unroll
    for (int kk = 0; kk < KSTEPS; ++kk) {  // slots t, t + 4 of the k-step are columns 2t, 2t + 1
      const int c = 8 * kk + 2 * t;
      held[kk] = tf32x3::split_a<tf32x3::Hi::rounded>(at(a0, c), at(a1, c), at(a0, c + 1), at(a1, c + 1));
    }
  }

  Row state[2];
  if constexpr (OwnReference)  // the same chain in the four lanes of a row: the same bits
    for (int hf = 0; hf < 2; ++hf)
      if (row[hf] < q1) state[hf].m = own_score<TS::P>(gq + std::size_t(row[hf]) * stride, gk + std::size_t(row[hf]) * stride);
  // O = Σ_j w_j v_j, in one of two forms (the other is a one-entry placeholder, like `held`): on the
  // tensor cores in C layout, rows g (o[.][0..1]) and g + 8 (o[.][2..3]); on the FP32 pipe
  // (fp32_message) rows g, g + 8 over this lane's keys 2t, 2t + 1 of every 8.
  float o[fp32_message ? 1 : VT][4] = {};
  float o_lane[2][fp32_message ? V : 1] = {};
  auto scale_message = [&](int hf, float scale) {
    if constexpr (fp32_message) {
#pragma unroll
      for (int v = 0; v < V; ++v) o_lane[hf][v] *= scale;
    } else {
#pragma unroll
      for (int vt = 0; vt < VT; ++vt) {
        o[vt][2 * hf] *= scale;
        o[vt][2 * hf + 1] *= scale;
      }
    }
  };
  const float alibi = float(p.mask.alibi_slope * 1.4426950408889634);  // log2 units, like the keys
  for (int t0 = lo, st = 0; t0 < hi; t0 += STEP, st ^= 1) {
    const bool more = t0 + STEP < hi;
    if (more) load_stage(st ^ 1, t0 + STEP);  // the next stage flies while this one is read
    __pipeline_wait_prior(more ? 1 : 0);
    __syncthreads();
    const int c1 = min(t0 + STEP, hi);
    if (t0 < warp_hi && c1 > warp_lo) {  // the warp's rows see some of these keys
      const float* sk = tiles + st * stage_floats;
      const float* sv = sk + STEP * ks;
      const bool clear = c1 - t0 == STEP && tile_is_clear(p.mask, w0, w1, t0, c1, n, Statistics || p.mask.mask_self);
      // Scores in log2 units, started at −m (lazy rescaling): s = a_i·b_j − m (M8).
      float s[NT][4];
      const float base[2] = {state[0].base(), state[1].base()};
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        s[nt][0] = s[nt][1] = -base[0];
        s[nt][2] = s[nt][3] = -base[1];
      }
#pragma unroll
      for (int kk = 0; kk < KSTEPS; ++kk) {
        tf32x3::FragmentA a;
        if constexpr (TS::queries_in_registers) {
          a = held[kk];
        } else {
          const float* q = query_tile + (16 * warp + g) * ks + 8 * kk + 2 * t;
          const float2 upper = *reinterpret_cast<const float2*>(q), lower = *reinterpret_cast<const float2*>(q + 8 * ks);
          a = tf32x3::split_a<tf32x3::Hi::rounded>(upper.x, lower.x, upper.y, lower.y);
        }
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
          const float2 key = *reinterpret_cast<const float2*>(sk + (8 * nt + g) * ks + 8 * kk + 2 * t);
          tf32x3::mma3(s[nt], a, tf32x3::split_b(key.x, key.y));
        }
      }
      // Element e of s[nt] is row row[e / 2], key key_of(nt, e).
      auto key_of = [&](int nt, int e) { return t0 + 8 * nt + 2 * t + (e & 1); };
      if (alibi != 0.f)  // logit += slope·(i − j), from the exact integer distance
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e) s[nt][e] = fmaf(alibi, float(row[e / 2] - key_of(nt, e)), s[nt][e]);
      if (!clear)
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e)
            if (!range[e / 2].allows(key_of(nt, e))) s[nt][e] = -INFINITY;

      // Online softmax (M5): the row's largest new score over the quad, the same in its four lanes.
      if constexpr (!OwnReference) {
#pragma unroll
        for (int hf = 0; hf < 2; ++hf) {
          float top = fmaxf(s[0][2 * hf], s[0][2 * hf + 1]);
#pragma unroll
          for (int nt = 1; nt < NT; ++nt) top = fmaxf(top, fmaxf(s[nt][2 * hf], s[nt][2 * hf + 1]));
          top = fmaxf(top, __shfl_xor_sync(0xffffffffu, top, 1));
          top = fmaxf(top, __shfl_xor_sync(0xffffffffu, top, 2));
          if (state[hf].should_raise(top)) {
            scale_message(hf, state[hf].raise(top));
#pragma unroll
            for (int nt = 0; nt < NT; ++nt) {
              s[nt][2 * hf] -= top;
              s[nt][2 * hf + 1] -= top;
            }
          }
        }
      }
      // Weights, the row sums, and the message sums (M9): keys 8nt … 8nt + 7 are one k-step. The
      // step's W·V starts from zero and is added to O in float (round to nearest): a running sum
      // over thousands of keys inside the MMAs, whose accumulation truncates, drifted by ~1e-5
      // (N = 4097). Narrow values get two chains (even and odd k-steps) for the MMAs' latency.
      constexpr int CHAINS = VT <= 2 ? 2 : 1;
      float step_o[CHAINS][fp32_message ? 1 : VT][4] = {};
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        float w[4];
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          w[e] = fast_exp2(s[nt][e]);  // 2^−∞ = 0 for masked keys
          const int i = row[e / 2], j = key_of(nt, e);
          // The score without its ALiBi bias is the KL's share (G1).
          state[e / 2].add(w[e], s[nt][e], j != i, alibi != 0.f ? fmaf(-alibi, float(i - j), s[nt][e]) : s[nt][e]);
        }
        if constexpr (fp32_message) {
#pragma unroll
          for (int k = 0; k < 2; ++k) {  // key 2t + k: the weights w[k] (row g) and w[2 + k] (row g + 8)
            const float4 v4 = *reinterpret_cast<const float4*>(sv + (8 * nt + 2 * t + k) * vs);  // vs ≡ 4 (mod 8)
            const float value[4] = {v4.x, v4.y, v4.z, v4.w};
#pragma unroll
            for (int v = 0; v < V; ++v) {
              o_lane[0][v] = fmaf(w[k], value[v], o_lane[0][v]);
              o_lane[1][v] = fmaf(w[2 + k], value[v], o_lane[1][v]);
            }
          }
        } else {
          const tf32x3::FragmentA weights = tf32x3::split_a<tf32x3::Hi::truncated>(w[0], w[2], w[1], w[3]);
          const float* value = sv + (8 * nt + 2 * t) * vs + g;  // keys 2t and 2t + 1, column g
#pragma unroll
          for (int vt = 0; vt < VT; ++vt)
            tf32x3::mma3(step_o[nt % CHAINS][vt], weights, tf32x3::split_b(value[8 * vt], value[vs + 8 * vt]));
        }
      }
      if constexpr (!fp32_message)
#pragma unroll
        for (int c = 0; c < CHAINS; ++c)
#pragma unroll
          for (int vt = 0; vt < VT; ++vt)
#pragma unroll
            for (int e = 0; e < 4; ++e) o[vt][e] += step_o[c][vt][e];
    }
    __syncthreads();  // every warp is done with this stage before it is refilled
  }

  // The four lanes of a row hold sums over different keys relative to one reference: add them.
#pragma unroll
  for (int hf = 0; hf < 2; ++hf)
    for (int offset = 1; offset < 4; offset *= 2) {
      Row other;
      other.l = __shfl_xor_sync(0xffffffffu, state[hf].l, offset);
      if (Statistics) {
        other.off = __shfl_xor_sync(0xffffffffu, state[hf].off, offset);
        other.off2 = __shfl_xor_sync(0xffffffffu, state[hf].off2, offset);
        other.ws = __shfl_xor_sync(0xffffffffu, state[hf].ws, offset);
      }
      if (Energy) other.en = __shfl_xor_sync(0xffffffffu, state[hf].en, offset);
      state[hf].add_sums(other);
      if constexpr (fp32_message)
#pragma unroll
        for (int v = 0; v < V; ++v) o_lane[hf][v] += __shfl_xor_sync(0xffffffffu, o_lane[hf][v], offset);
    }
  // The message sums through shared memory (the stages are free: every warp passed the last
  // barrier), so that one lane has a row's V sums; lanes t = 0, 1 of a quad write rows g, g + 8.
  float* sums = tiles + 16 * warp * vs;
  if constexpr (fp32_message) {
    if (t == 0)
#pragma unroll
      for (int v = 0; v < V; ++v) {
        sums[g * vs + v] = o_lane[0][v];
        sums[(g + 8) * vs + v] = o_lane[1][v];
      }
  } else {
#pragma unroll
    for (int vt = 0; vt < VT; ++vt) {
      sums[g * vs + 8 * vt + 2 * t] = o[vt][0];
      sums[g * vs + 8 * vt + 2 * t + 1] = o[vt][1];
      sums[(g + 8) * vs + 8 * vt + 2 * t] = o[vt][2];
      sums[(g + 8) * vs + 8 * vt + 2 * t + 1] = o[vt][3];
    }
  }
  __syncwarp();
  if (t < 2) {
    const int hf = t;  // selects, not a run-time index into the register arrays
    const int i = hf == 0 ? row[0] : row[1];
    if (i < q1)
      write_row<K, Covariance, Statistics, Energy>(p, b, h, i, n, hf == 0 ? range[0] : range[1],
                                                   hf == 0 ? state[0] : state[1], sums + (g + 8 * hf) * vs);
  }
}

}  // namespace gauge_attn::gpu::detail
