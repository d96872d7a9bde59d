// gauge_attn/cuda/layout.cuh: where each head's lifted vectors live in the device workspace, and
// the compile-time tile shapes of the kernels (both derived from the spin alone).
#pragma once

#include <gauge_attn/config.hpp>
#include <gauge_attn/lifted.hpp>

#include <algorithm>
#include <cstddef>
#include <type_traits>
#include <utility>

/// Queries per thread for heads of width 12 < P ≤ 24 (ℓ = 2); a tuning knob that trades
/// registers for fewer shared-memory loads per FMA, see docs/cuda.md.
#ifndef GAUGE_ATTN_FLASH_WIDE_QUERIES
#define GAUGE_ATTN_FLASH_WIDE_QUERIES 2
#endif

/// Heads of lifted width P ≥ this (float scores) compute their scores and message sums on the
/// tensor cores (3×TF32, flash_kl_tensor_core.cuh), narrower ones on the FP32 pipe; a tuning knob.
/// 10: ℓ ≥ 1 (ℓ0's P is 3). Measured on an H200 (docs/performance.md, "ℓ1 on the tensor cores"): ℓ1
/// alone 228.7 µs on the FP32 pipe against 218.5 on the tensor cores with its mean message on the
/// FP32 pipe, W2 with Σ^agg 669 against 597; ℓ0 on them too (3) was slower, ℓ0 × 5 169 → 188 µs.
#ifndef GAUGE_ATTN_TENSOR_CORE_MIN_WIDTH
#define GAUGE_ATTN_TENSOR_CORE_MIN_WIDTH 10
#endif

/// Blocks of 128 threads the attention kernel is compiled to fit on one multiprocessor where its
/// shared memory allows them (attention_min_blocks below); a tuning knob, see docs/cuda.md.
#ifndef GAUGE_ATTN_FLASH_MIN_BLOCKS
#define GAUGE_ATTN_FLASH_MIN_BLOCKS 4
#endif

namespace gauge_attn::gpu {

/// Rounds up to a multiple of 4 floats, for 16-byte vector accesses.
GAUGE_ATTN_HOST_DEVICE constexpr int round4(int n) { return (n + 3) / 4 * 4; }
/// Rounds up to a multiple of 8, the k and n extents of one m16n8k8 tensor-core product.
GAUGE_ATTN_HOST_DEVICE constexpr int round8(int n) { return (n + 7) / 8 * 8; }

/// Does a head of lifted width P take the tensor-core path of the attention kernel? Chosen at
/// compile time from the spin; the double-score variant always runs on the FP64 pipe.
GAUGE_ATTN_HOST_DEVICE constexpr bool uses_tensor_cores(int P, bool float64_scores) {
  return !float64_scores && P >= GAUGE_ATTN_TENSOR_CORE_MIN_WIDTH;
}

/// Tile shapes of the attention kernel for a head of dimension K whose lifted queries and keys are
/// of type Score (float, or double for Scores::float64; see docs/cuda.md).
template <int K, class Score = float>
struct TileShape {
  using W = LiftedWidths<K>;
  static constexpr int P = W::lifted;             // (M8) width
  static constexpr int query_stride = round4(P);  // Scores per query vector in global memory
  static constexpr int key_stride = round4(P);    // Scores per key vector in global memory
  static constexpr int per_load = 16 / int(sizeof(Score));  // Scores per 16-byte load
  // Queries per thread (register tiling): each key element read from shared memory feeds QR FMAs.
  // Fewer for wide heads, so that every head fits the kernel's register budget (128 per thread);
  // half as many with double queries, which take two registers an element.
  static constexpr int QR = sizeof(Score) == 8 ? (P <= 12 ? 2 : 1)
                                               : P <= 12 ? 4 : (P <= 24 ? GAUGE_ATTN_FLASH_WIDE_QUERIES : (P <= 40 ? 2 : 1));
  static constexpr int key_groups = 8;    // lanes that split one query group's keys
  static constexpr int query_groups = 16; // 128 threads = 16 query groups × 8 key groups
  static constexpr int threads = key_groups * query_groups;
  static constexpr int queries = query_groups * QR;  // query rows per block
  // Double keys of the widest heads (P > 40, ℓ ≥ 4) halve the step and the stage: two stages of 64
  // keys would need ~320 KB of shared memory for ℓ9 with the covariance message (227 KB per block).
  static constexpr bool half_step = sizeof(Score) == 8 && P > 40;
  static constexpr int keys_per_thread = half_step ? 4 : 8;  // keys of one step, per thread
  static constexpr int step = keys_per_thread * key_groups;  // 64 keys per step (32 with half_step)
  // Keys per shared-memory stage (two stages, filled by cp.async while the other is read):
  // ~8 KB a stage for narrow heads.
  static constexpr int keys = P <= 4 ? 256 : (P <= 12 ? 128 : step);
  // Shared-memory row strides: an odd number of 16-byte chunks, so the 8 keys that a warp reads at
  // once fall in distinct bank groups.
  GAUGE_ATTN_HOST_DEVICE static constexpr int smem_stride(int floats) { return (round4(floats) / 4) % 2 ? round4(floats) : round4(floats) + 4; }
  // The same for the keys, in Scores: an odd number of 16-byte chunks.
  static constexpr int key_smem = (key_stride / per_load) % 2 ? key_stride : key_stride + per_load;
  // Bytes of one shared-memory stage: KT keys, then KT value rows of V floats.
  GAUGE_ATTN_HOST_DEVICE static constexpr int stage_bytes(int V) {
    return keys * (key_smem * int(sizeof(Score)) + smem_stride(V) * int(sizeof(float)));
  }
};

/// Tile shapes of the tensor-core path (flash_kl_tensor_core.cuh) for a head of dimension K: four
/// warps of 16 query rows; per step a warp scores its rows against `step` keys (step/8 m16n8k8
/// products per 8 lifted entries) and adds the weighted values (round8(V)/8 products per 8 keys).
template <int K>
struct TensorCoreTileShape {
  static constexpr int P = LiftedWidths<K>::lifted;
  static constexpr int P8 = round8(P);  // lifted width padded to whole k-steps (the padding is zero)
  static constexpr int threads = 128;
  static constexpr int warps = threads / 32;
  static constexpr int queries = 16 * warps;  // query rows per block
  // Keys per step and stage: 64, or 32 for heads wider than 64 (ℓ ≥ 5), whose stages would
  // otherwise leave room for one block per multiprocessor.
  static constexpr int step = P8 <= 64 ? 64 : 32;
  // A warp's queries, split into TF32 halves, stay in registers (P8 of them) up to P8 = 40 (ℓ ≤ 3);
  // wider heads read them from a shared-memory tile and split them per step.
  static constexpr bool queries_in_registers = P8 <= 40;
  // Shared-memory row strides. Keys and queries ≡ 8 (mod 16) floats: lane 4g + t reads columns 2t,
  // 2t + 1 of row g in one 8-byte load (tf32x3.cuh), and the 16 lanes of a half-warp, rows g … g + 3,
  // then cover 32 distinct banks. Values ≡ 4 (mod 8): lane 4g + t reads column g of rows 2t, 2t + 1.
  static constexpr int key_smem = P8 % 16 == 8 ? P8 : P8 + 8;
  GAUGE_ATTN_HOST_DEVICE static constexpr int value_smem(int V) { return round8(V) + 4; }
  GAUGE_ATTN_HOST_DEVICE static constexpr int stage_bytes(int V) { return step * (key_smem + value_smem(V)) * 4; }
  // Two stages of keys and values, then the query tile when it is not in registers. The message
  // sums of the block's rows (queries × value_smem floats) reuse the stages at the end: they fit,
  // since 2·step ≥ queries.
  GAUGE_ATTN_HOST_DEVICE static constexpr int smem_bytes(int V) {
    return 2 * stage_bytes(V) + (queries_in_registers ? 0 : queries * key_smem * 4);
  }
};

/// Query rows per block and dynamic shared memory of the attention kernel for a head of dimension
/// K and values of width V, whichever path the head takes.
template <int K, class Score>
GAUGE_ATTN_HOST_DEVICE constexpr int attention_tile_rows() {
  if constexpr (uses_tensor_cores(LiftedWidths<K>::lifted, sizeof(Score) == 8))
    return TensorCoreTileShape<K>::queries;
  else
    return TileShape<K, Score>::queries;
}
template <int K, class Score>
GAUGE_ATTN_HOST_DEVICE constexpr int attention_smem_bytes(int V) {
  if constexpr (uses_tensor_cores(LiftedWidths<K>::lifted, sizeof(Score) == 8))
    return TensorCoreTileShape<K>::smem_bytes(V);
  else
    return 2 * TileShape<K, Score>::stage_bytes(V);
}

/// Tile shapes of the backward pair pass (flash_kl_backward.cuh) for a head of dimension K whose
/// values have width V (K, or K + K(K+1)/2 with the covariance message). A block owns a tile of
/// `keys` keys of one (sequence, head) and streams the queries that read them through shared
/// memory, `queries` (32, one per lane in the Ā phase) at a time. A thread holds KR keys in
/// registers (k_j, x_j and the sums U_j, X̄_j: 2(P + V) floats each) and meets every QG-th query.
template <int K, int V>
struct BackwardTileShape {
  using W = LiftedWidths<K>;
  static constexpr int P = W::lifted;
  static constexpr int threads = 128;
  static constexpr int KR = P <= 4 ? 4 : (P <= 12 ? 2 : 1);  // keys per thread
  static constexpr int QG = P <= 40 ? KR : 4;                  // query groups
  static constexpr int key_lanes = threads / QG;               // threads that share a query
  static constexpr int keys = key_lanes * KR;                  // 128 keys (32 for P > 40: shared memory)
  static constexpr int queries = 32;                           // queries per stage
  static constexpr int queries_per_thread = queries / QG;
  // A query's a_i stays in registers for its KR pairs up to P = 21 (ℓ ≤ 2); wider heads read it
  // from shared memory twice (the score, then U_j), which spared ℓ3 ~400 bytes of spills.
  static constexpr bool hold_queries = P <= 24;
  // Ā = p̄ · k over the block's keys (Ā's last entry, the constant's, is never needed): F4 float4
  // chunks per query; the four warps split the keys into `slices` when one chunk is all there is,
  // else they split the chunks.
  static constexpr int chunks = (P - 1 + 3) / 4;
  static constexpr int slices = chunks == 1 ? 4 : 1;
  static constexpr int row_stride = round4(V) + 4;  // x̄_i and its four row constants, in global memory
  // Shared-memory row strides (odd numbers of 16-byte chunks, as in TileShape).
  static constexpr int query_smem = TileShape<K>::smem_stride(P);
  static constexpr int row_smem = TileShape<K>::smem_stride(row_stride);
  static constexpr int key_smem = TileShape<K>::smem_stride(P);
  static constexpr int value_smem = TileShape<K>::smem_stride(V);
  static constexpr int tile_smem = keys + 4;  // a p̄ or p row: keys/4 + 1 chunks, odd
  static_assert((keys / 4) % 2 == 0, "tile rows of an odd number of chunks");
  static_assert(queries % QG == 0 && threads % QG == 0, "query groups divide the stage and the block");
  // Shared memory, in floats: two stages of queries and rows, the p̄ tile and the keys (with
  // `moments` also the β tile and the values), two reduction buffers of the Ā phase; after the
  // query loop the same memory holds the U_j and X̄_j of query groups 1 … QG − 1.
  static constexpr int stage_floats = queries * (query_smem + row_smem);
  static constexpr int reduction_floats = 2 * 3 * 32 * 4;
  static constexpr int sums_floats = (QG - 1) * key_lanes * KR * (P + V);
  GAUGE_ATTN_HOST_DEVICE static constexpr int smem_floats(bool moments) {
    const int main = 2 * stage_floats + queries * tile_smem + keys * key_smem +
                     (moments ? queries * tile_smem + keys * value_smem : 0) + reduction_floats;
    return main > sums_floats ? main : sums_floats;
  }
};

/// Blocks of the pair kernels grouped by irrep, so that the blocks resident together run the same
/// code (one ℓ's branch; mixing them thrashed the instruction cache). The groups are launched
/// widest ℓ first: a wide head's blocks take longest, and a launch that ends with them leaves
/// most multiprocessors idle while its last blocks run (docs/performance.md, "Launch order").
/// Group g of the launch is irrep `irrep[g]` and owns blocks [first_block[g], first_block[g + 1]):
/// `tiles[g]` tiles per (sequence, head) of its heads, sequences fastest, then heads, then tiles,
/// the heaviest tiles first.
template <int Irreps>
struct BlockGroups {
  int first_block[Irreps + 1] = {};
  int irrep[Irreps] = {};
  int tiles[Irreps] = {};
  int first_head[Irreps] = {};
  int heads[Irreps] = {};

  /// Tiles of `tile_rows(irrep)` rows of N tokens for every irrep of Spec.
  template <class Spec, class TileRows>
  static BlockGroups of(int batch, int tokens, TileRows&& tile_rows) {
    int l[Irreps], tiles_of[Irreps], first_of[Irreps], heads_of[Irreps], order[Irreps];
    Spec::for_each_irrep([&](auto irrep, int first) {
      using I = decltype(irrep);
      const int r = Spec::head(first).irrep, rows = tile_rows(irrep);
      l[r] = I::l;
      tiles_of[r] = (tokens + rows - 1) / rows;
      first_of[r] = first;
      heads_of[r] = I::heads;
      order[r] = r;
    });
    std::stable_sort(order, order + Irreps, [&](int x, int y) { return l[x] > l[y]; });
    BlockGroups g;
    for (int k = 0; k < Irreps; ++k) {
      const int r = order[k];
      g.irrep[k] = r;
      g.tiles[k] = tiles_of[r];
      g.first_head[k] = first_of[r];
      g.heads[k] = heads_of[r];
      g.first_block[k + 1] = g.first_block[k] + tiles_of[r] * heads_of[r] * batch;
    }
    return g;
  }
  int blocks() const { return first_block[Irreps]; }
};

/// Where block `block` works: its irrep, sequence, head and tile. Tiles are ordered from
/// `last_first ? the last : the first`, whichever the mask makes heaviest.
struct BlockPlace {
  int group, b, h, tile;  // group: the irrep's index in the spec
};

template <int Irreps>
GAUGE_ATTN_HOST_DEVICE inline BlockPlace place_block(const BlockGroups<Irreps>& g, int block, int batch, bool last_first) {
  int k = 0;
  while (block >= g.first_block[k + 1]) ++k;
  const int local = block - g.first_block[k];
  const int per_tile = g.heads[k] * batch;
  const int order = local / per_tile;
  return {g.irrep[k], local % batch, g.first_head[k] + (local % per_tile) / batch,
          last_first ? g.tiles[k] - 1 - order : order};
}

/// Values carried per key of a head of dimension K: ν (mean message) or [ν, sym(S + ννᵀ)] (with the
/// covariance message).
GAUGE_ATTN_HOST_DEVICE constexpr int value_width(int K, bool covariance) {
  return covariance ? K + K * (K + 1) / 2 : K;
}
/// Floats per token of the lifted values in the workspace (HeadLayout::value_stride): value_width in
/// whole 16-byte rows. The forward lifts them with its kernel's Σ^agg setting, so its kernels take
/// the stride as a compile-time constant.
GAUGE_ATTN_HOST_DEVICE constexpr int lifted_value_stride(int K, bool covariance) {
  return round4(value_width(K, covariance));
}

/// Dynamic shared memory of the attention kernel for a spec (its ℓ: IrrepSpec::spins): the
/// largest of its heads'.
template <class Score, bool Covariance, int... Ls>
GAUGE_ATTN_HOST_DEVICE constexpr int attention_spec_smem_bytes(std::integer_sequence<int, Ls...>) {
  const int bytes[] = {attention_smem_bytes<2 * Ls + 1, Score>(value_width(2 * Ls + 1, Covariance))...};
  int most = 0;
  for (const int b : bytes) most = b > most ? b : most;
  return most;
}

/// Blocks of the attention kernel it is compiled to fit on one multiprocessor (its register cap is
/// 65536 / (128 · blocks)): GAUGE_ATTN_FLASH_MIN_BLOCKS (two with Σ^agg), or fewer when that many
/// blocks' shared memory does not fit in the multiprocessor's 228 KB (sm_90; 1 KB of it reserved per
/// block), so that ptxas is not held to registers no resident block could use (ℓ8 + 2×ℓ4: two).
template <class Spec, class Score, bool Covariance>
GAUGE_ATTN_HOST_DEVICE constexpr int attention_min_blocks() {
  constexpr int budget = Covariance ? 2 : GAUGE_ATTN_FLASH_MIN_BLOCKS;
  constexpr int fit = 228 * 1024 / (attention_spec_smem_bytes<Score, Covariance>(typename Spec::spins{}) + 1024);
  return fit < 1 ? 1 : (fit < budget ? fit : budget);
}

/// Per-head offsets into the workspace (in elements of each buffer), filled on the host.
struct HeadLayout {
  int l = 0, dim = 0, offset = 0, irrep = 0;
  std::size_t queries = 0;  // float, (B, N, query_stride)
  std::size_t keys = 0;     // float, (B, N, key_stride)
  std::size_t values = 0;   // float, (B, N, value_stride)
  std::size_t frames = 0;   // double, (B, N, K, K); shared by an irrep's heads where N > 128 (LiftWorkspace)
  std::size_t means = 0;    // double, (B, K): Σ ν, then ν̄
  int value_stride = 0;
  double kappa = 1;
};

/// Calls f(std::integral_constant<int, L>) for the ℓ of irrep number r of a spec
/// (`Spins` = IrrepSpec::spins), on the host or the device.
template <class F, int... Ls>
GAUGE_ATTN_HOST_DEVICE void visit_spin(int r, std::integer_sequence<int, Ls...>, F&& f) {
  int k = 0;
  ((r == k++ ? f(std::integral_constant<int, Ls>{}) : void()), ...);
}

/// Calls f(std::bool_constant<b>...) with the run-time flags as compile-time constants: one
/// instantiation of f per combination (the kernels' optional outputs).
template <class F>
void visit_flags(F&& f) {
  f();
}
template <class F, class... Flags>
void visit_flags(F&& f, bool first, Flags... rest) {
  if (first)
    visit_flags([&](auto... t) { f(std::true_type{}, t...); }, rest...);
  else
    visit_flags([&](auto... t) { f(std::false_type{}, t...); }, rest...);
}

}  // namespace gauge_attn::gpu
