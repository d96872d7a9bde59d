// gauge_attn/cuda/check.cuh: every CUDA call and launch is checked; a failure throws CudaError
// naming the call, the file and line, and CUDA's own message.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace gauge_attn::gpu {

class CudaError : public std::runtime_error {
 public:
  CudaError(cudaError_t code, const std::string& what) : std::runtime_error(what), code_(code) {}
  cudaError_t code() const noexcept { return code_; }

 private:
  cudaError_t code_;
};

namespace detail {
inline void check(cudaError_t code, const char* call, const char* file, int line) {
  if (code != cudaSuccess)
    throw CudaError(code, std::string("gauge_attn: CUDA call ") + call + " failed at " + file + ":" +
                              std::to_string(line) + ": " + cudaGetErrorName(code) + ": " + cudaGetErrorString(code));
}
}  // namespace detail

}  // namespace gauge_attn::gpu

/// Checks a CUDA runtime call.
#define GAUGE_ATTN_CUDA_CHECK(call) ::gauge_attn::gpu::detail::check((call), #call, __FILE__, __LINE__)
/// Checks the launch just made (configuration errors); execution errors surface at the next
/// checked call that synchronises.
#define GAUGE_ATTN_CUDA_CHECK_LAUNCH(kernel) \
  ::gauge_attn::gpu::detail::check(cudaGetLastError(), "launch of " #kernel, __FILE__, __LINE__)
