// gauge_attn/cuda/copy_rows.cuh: the staging of every attention kernel (forward on either path,
// backward): rows of a row-major global array copied into a shared-memory tile by cp.async, 16
// bytes per copy, with the rows past the valid range zero-filled.
#pragma once

#include <cuda_pipeline.h>
#include <cuda_runtime.h>

#include <cstddef>

namespace gauge_attn::gpu {

/// Starts the copy of rows [first, first + Rows) of `global` (row stride `global_stride` elements)
/// into `shared` (row stride `shared_stride`), Width elements a row (a multiple of 16 bytes).
/// Rows at or past `end` are zero-filled; their source address is row `fallback`'s, which must be a
/// valid row (cp.async forms the address even when it reads nothing). The Threads threads of the
/// block share the 16-byte chunks; the caller commits (__pipeline_commit) and waits.
/// Rows and Width are compile-time, so that a thread's chunks (row, column) are fixed: the compiler
/// unrolls the loop and keeps them out of the caller's tile loop, and a chunk costs a row test, its
/// addresses and the copy (the attention's stage copies were ~20% of an ℓ2 tensor-core step with a
/// run-time loop; docs/performance.md).
template <int Threads, int Rows, int Width, class T>
__device__ __forceinline__ void copy_rows_async(T* shared, int shared_stride, const T* global, std::size_t global_stride,
                                                int first, int end, int fallback) {
  constexpr int per_chunk = 16 / int(sizeof(T));
  static_assert(Width % per_chunk == 0, "whole 16-byte chunks");
  constexpr int chunks = Width / per_chunk, total = Rows * chunks;  // per row, per copy
#pragma unroll
  for (int i = 0; i < (total + Threads - 1) / Threads; ++i) {
    const int e = int(threadIdx.x) + i * Threads;
    if (total % Threads != 0 && e >= total) break;
    const int r = e / chunks, c = e % chunks;
    const bool inside = first + r < end;
    __pipeline_memcpy_async(shared + r * shared_stride + per_chunk * c,
                            global + std::size_t(inside ? first + r : fallback) * global_stride + per_chunk * c, 16,
                            inside ? 0 : 16);
  }
}

}  // namespace gauge_attn::gpu
