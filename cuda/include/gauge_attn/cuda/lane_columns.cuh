// gauge_attn/cuda/lane_columns.cuh: the column executor of detail/columns.hpp on a warp. A token's
// K×K matrices are split over K consecutive lanes, lane c owning column c, so a warp lifts
// 32/K tokens at once (one per group of K lanes) and each step's chain is K long instead of K²
// (the ℓ8 lift was one thread per token with 17×17 float64 matrices in local memory). The lanes
// past the last group own no column but take part in sync() and total(), which need the whole
// warp: every lane of a warp must make the same calls.
#pragma once

#include <cuda_runtime.h>

namespace gauge_attn::gpu {

template <int K>
struct LaneColumns {
  static_assert(K >= 1 && K <= 32, "gauge_attn::gpu::LaneColumns: a token's columns must fit in a warp");
  static constexpr int groups = 32 / K;  // tokens per warp

  int group;   // this lane's token within the warp; `groups` for a lane without a column
  int column;  // this lane's column; K for a lane without one
  int first;   // the lane of the group's column 0

  __device__ LaneColumns() {
    const int lane = threadIdx.x % 32;
    group = lane / K;
    column = group < groups ? lane % K : K;
    first = group < groups ? group * K : 0;
  }

  template <class F>
  __device__ void each(F&& f) const {
    if (column < K) f(column);
  }
  __device__ void sync() const { __syncwarp(); }
  /// The sum over the group's lanes in column order (the order of SerialColumns, so the bits agree).
  template <class T>
  __device__ T total(T x) const {
    T s = 0;
#pragma unroll
    for (int c = 0; c < K; ++c) s += __shfl_sync(0xffffffffu, x, first + c);  // the K shuffles issue together
    return s;
  }
  /// The sum of x over the warp's tokens, column by column: lane c of group 0 gets Σ_g x(lane gK + c),
  /// by a tree over groups (offsets K, 2K, 4K, …); lanes past the last group add nothing.
  template <class T>
  __device__ T sum_over_tokens(T x) const {
    const int lane = threadIdx.x % 32;
#pragma unroll
    for (int offset = K; offset < groups * K; offset *= 2) {
      const T y = __shfl_down_sync(0xffffffffu, x, offset);
      if (lane + offset < groups * K) x += y;
    }
    return x;
  }
};

/// Whether a column executor splits a token over lanes (LaneColumns) rather than running its columns
/// in turn on one thread (detail::SerialColumns).
template <class Columns>
inline constexpr bool splits_tokens_over_lanes = false;
template <int K>
inline constexpr bool splits_tokens_over_lanes<LaneColumns<K>> = true;

}  // namespace gauge_attn::gpu
