// gauge_attn/cuda/statistics.cuh: the per-head diagnostics (math.md §7) from the per-row values
// the GPU paths write: means over the rows of each (sequence, head), reduced on the device.
#pragma once

#include <gauge_attn/mask.hpp>
#include <gauge_attn/row_statistics.hpp>

#include <cuda_runtime.h>
#include <thrust/device_vector.h>
#include <thrust/execution_policy.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/iterator/discard_iterator.h>
#include <thrust/iterator/transform_iterator.h>
#include <thrust/reduce.h>

#include <cstddef>
#include <vector>

#include "check.cuh"

namespace gauge_attn::gpu {

namespace detail {
struct SegmentOf {
  int rows;
  __host__ __device__ int operator()(int i) const { return i / rows; }
};
}  // namespace detail

/// RowStatistics (B, H) from per-row row_std, uniform_row_std and entropy (B, H, N) in device
/// memory: sums by segment on the device (Thrust, on `stream`), then divided on the host by the
/// rows that count (N ≥ 2 for row_std; n_i ≥ 2 allowed keys for the entropy), as the CPU does.
/// Synchronises `stream` (the results come back to the host).
template <class T>
std::vector<RowStatistics> reduce_row_statistics(const T* row_std, const T* uniform_row_std, const T* entropy,
                                                 int batch, int heads, int tokens, const std::vector<int>& lengths,
                                                 const MaskSpec& mask, cudaStream_t stream = 0) {
  const int segments = batch * heads;
  thrust::device_vector<double> sums(3 * std::size_t(segments));
  const auto keys = thrust::make_transform_iterator(thrust::counting_iterator<int>(0), detail::SegmentOf{tokens});
  const T* values[3] = {row_std, uniform_row_std, entropy};
  for (int v = 0; v < 3; ++v)
    thrust::reduce_by_key(thrust::cuda::par.on(stream), keys, keys + std::size_t(segments) * tokens, values[v],
                          thrust::make_discard_iterator(), sums.begin() + std::size_t(v) * segments);
  std::vector<double> host(sums.size());
  GAUGE_ATTN_CUDA_CHECK(cudaMemcpyAsync(host.data(), thrust::raw_pointer_cast(sums.data()),
                                        host.size() * sizeof(double), cudaMemcpyDeviceToHost, stream));
  GAUGE_ATTN_CUDA_CHECK(cudaStreamSynchronize(stream));
  std::vector<RowStatistics> out(segments);
  for (int b = 0; b < batch; ++b) {
    const int n = lengths[b];
    int entropy_rows = 0;
    for (int i = 0; i < n; ++i) entropy_rows += key_range(mask, i, n).count() > 1;
    for (int h = 0; h < heads; ++h) {
      const int s = b * heads + h;
      RowStatistics& r = out[s];
      r.rows = n > 1 ? n : 0;
      r.entropy_rows = entropy_rows;
      if (r.rows > 0) {
        r.row_std = host[s] / r.rows;
        r.uniform_row_std = host[segments + s] / r.rows;
      }
      if (entropy_rows > 0) r.entropy = host[2 * std::size_t(segments) + s] / entropy_rows;
    }
  }
  return out;
}

}  // namespace gauge_attn::gpu
