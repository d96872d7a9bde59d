// python/csrc/cuda_kernels.h: the CUDA kernels of one spec as ops_cuda.cu calls them, the fused
// exact-mode forward and backward of cuda/ on device pointers (float32). Free of torch and of
// Thrust: ops_cuda.cu (torch) and the spec units (cuda_spec.cuh, Thrust) never meet in one unit.
#pragma once

#include <cuda_runtime_api.h>
#include <gauge_attn/cuda/device_beliefs.cuh>
#include <gauge_attn/cuda/device_gradients.cuh>
#include <gauge_attn/options.hpp>

#include "registry.h"

namespace gauge_attn_torch {
inline namespace GAUGE_ATTN_LIBRARY_TAG {

/// Both run on `stream` of the current device and throw the library's errors. With check_inputs
/// they wait for the stream and throw InvalidArgument naming the first bad input (a non-finite
/// value, a covariance that is not positive definite, a non-finite incoming gradient).
struct CudaKernels {
  int num_heads;
  void (*forward)(const gauge_attn::gpu::DeviceBeliefs&, const gauge_attn::AttentionOptions&,
                  const gauge_attn::gpu::DeviceOutputs&, bool check_inputs, cudaStream_t);
  void (*backward)(const gauge_attn::gpu::DeviceBeliefs&, const gauge_attn::AttentionOptions&,
                   const gauge_attn::gpu::DeviceSaved&, const gauge_attn::gpu::DeviceOutputGradients&,
                   const gauge_attn::gpu::DeviceGradients&, bool check_inputs, cudaStream_t);
};

}  // namespace GAUGE_ATTN_LIBRARY_TAG
}  // namespace gauge_attn_torch
