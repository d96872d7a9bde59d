// gauge_attn/cuda/copy_rows.cuh: the staging of every attention kernel (forward on either path,
// backward): rows of a row-major global array copied into a shared-memory tile by cp.async, 16
// bytes per copy, with the rows past the valid range zero-filled.
#pragma once

#include <cuda_pipeline.h>
#include <cuda_runtime.h>

#include <cstddef>

namespace gauge_attn::gpu {

/// Starts the copy of rows [first, first + rows) of `global` (row stride `global_stride` elements)
/// into `shared` (row stride `shared_stride`), `width` elements a row (a multiple of 16 bytes).
/// Rows at or past `end` are zero-filled; their source address is row `fallback`'s, which must be a
/// valid row (cp.async forms the address even when it reads nothing). The Threads threads of the
/// block share the 16-byte chunks; the caller commits (__pipeline_commit) and waits.
template <int Threads, class T>
__device__ __forceinline__ void copy_rows_async(T* shared, int shared_stride, const T* global, std::size_t global_stride,
                                                int first, int rows, int end, int fallback, int width) {
  constexpr int per_chunk = 16 / int(sizeof(T));
  const int chunks = width / per_chunk;  // per row
  for (int e = threadIdx.x; e < rows * chunks; e += Threads) {
    const int r = e / chunks, c = e % chunks;
    const bool inside = first + r < end;
    __pipeline_memcpy_async(shared + r * shared_stride + per_chunk * c,
                            global + std::size_t(inside ? first + r : fallback) * global_stride + per_chunk * c, 16,
                            inside ? 0 : 16);
  }
}

}  // namespace gauge_attn::gpu
