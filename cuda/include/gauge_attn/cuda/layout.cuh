// gauge_attn/cuda/layout.cuh: where each head's lifted vectors live in the device workspace, and
// the compile-time tile shapes of the kernels (both derived from the spin alone).
#pragma once

#include <gauge_attn/config.hpp>
#include <gauge_attn/lifted.hpp>

#include <cstddef>
#include <utility>

/// Queries per thread for heads of width 12 < P ≤ 24 (ℓ = 2); a tuning knob that trades
/// registers for fewer shared-memory loads per FMA, see docs/cuda.md.
#ifndef GAUGE_ATTN_FLASH_WIDE_QUERIES
#define GAUGE_ATTN_FLASH_WIDE_QUERIES 2
#endif

namespace gauge_attn::gpu {

/// Rounds up to a multiple of 4 floats, for 16-byte vector accesses.
GAUGE_ATTN_HOST_DEVICE constexpr int round4(int n) { return (n + 3) / 4 * 4; }

/// Tile shapes of the attention kernel for a head of dimension K (see docs/cuda.md).
template <int K>
struct TileShape {
  using W = LiftedWidths<K>;
  static constexpr int P = W::lifted;             // (M8) width
  static constexpr int query_stride = round4(P);  // floats per query vector in global memory
  static constexpr int key_stride = round4(P);    // floats per key vector in global memory
  // Queries per thread (register tiling): each key element read from shared memory feeds QR FMAs.
  // Fewer for wide heads, so that every head fits the kernel's register budget (128 per thread).
  static constexpr int QR = P <= 12 ? 4 : (P <= 24 ? GAUGE_ATTN_FLASH_WIDE_QUERIES : (P <= 40 ? 2 : 1));
  static constexpr int key_groups = 8;    // lanes that split one query group's keys
  static constexpr int query_groups = 16; // 128 threads = 16 query groups × 8 key groups
  static constexpr int threads = key_groups * query_groups;
  static constexpr int queries = query_groups * QR;  // query rows per block
  static constexpr int keys_per_thread = 8;          // keys of one step, per thread
  static constexpr int step = keys_per_thread * key_groups;  // 64 keys per step
  // Keys per shared-memory stage (two stages, filled by cp.async while the other is read):
  // ~8 KB a stage.
  static constexpr int keys = P <= 4 ? 256 : (P <= 12 ? 128 : 64);
  // Shared-memory row strides: an odd number of 16-byte chunks, so the 8 keys that a warp reads at
  // once fall in distinct bank groups.
  GAUGE_ATTN_HOST_DEVICE static constexpr int smem_stride(int floats) { return (round4(floats) / 4) % 2 ? round4(floats) : round4(floats) + 4; }
};

/// Values carried per key: ν (mean message) or [ν, sym(S + ννᵀ)] (with the covariance message).
template <int K>
GAUGE_ATTN_HOST_DEVICE constexpr int value_width(bool covariance) {
  return covariance ? K + LiftedWidths<K>::sym : K;
}

/// Per-head offsets into the workspace (in elements of each buffer), filled on the host.
struct HeadLayout {
  int l = 0, dim = 0, offset = 0, irrep = 0;
  std::size_t queries = 0;  // float, (B, N, query_stride)
  std::size_t keys = 0;     // float, (B, N, key_stride)
  std::size_t values = 0;   // float, (B, N, value_stride)
  std::size_t frames = 0;   // double, (B, N, K, K)
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

}  // namespace gauge_attn::gpu
