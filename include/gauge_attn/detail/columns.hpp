// gauge_attn/detail/columns.hpp: how the per-belief K×K maths of the lift (the Wigner-D of (M2),
// the pull-back of §5, the packing of (M8)) is split among workers. The maths is written once as
// steps over the columns c = 0..K−1 of its matrices, each step reading only what earlier steps
// wrote; an executor says which columns a worker owns:
//   cols.each(f)     runs f(c) for the worker's columns,
//   cols.sync()      orders every worker's writes of one step before the reads of the next,
//   cols.total(x)    sums x (each worker's share) over the workers; every worker gets the sum.
// SerialColumns owns all K columns (the CPU, or one GPU thread); the GPU lift's LaneColumns
// (cuda/lane_columns.cuh) gives one column to each of K lanes of a warp.
#pragma once

#include "../config.hpp"

namespace gauge_attn::detail {

/// One worker owning every column: the steps run one after another.
template <int K>
struct SerialColumns {
  template <class F>
  GAUGE_ATTN_HOST_DEVICE void each(F&& f) const {
    for (int c = 0; c < K; ++c) f(c);
  }
  GAUGE_ATTN_HOST_DEVICE void sync() const {}
  template <class T>
  GAUGE_ATTN_HOST_DEVICE T total(T x) const {
    return x;
  }
};

}  // namespace gauge_attn::detail
