// tests/cuda/gpu_count.cu: gpu_count() of gpu_runner.hpp, shared by the device test programs.
#include <cuda_runtime.h>

#include "gpu_runner.hpp"

namespace gauge_attn::testing {

int gpu_count() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}

}  // namespace gauge_attn::testing
