// tests/cuda/gpu_runner.hpp: the GPU forward behind an Eigen-free interface, so that the tests
// (compiled by the host compiler, with the Eigen-based CPU reference) can call kernels compiled by
// nvcc in forward_runner.cu.
#pragma once

#include <gauge_attn/options.hpp>

#include <string>
#include <vector>

namespace gauge_attn::testing {

struct GpuRun {
  std::vector<float> mu, sigma, lse, row_std, uniform_row_std, entropy;  // layouts of DeviceOutputs
};

/// Runs Forward<named spec> on host arrays (uploaded, run, checked, downloaded).
GpuRun run_gpu_forward(const std::string& spec, int batch, int tokens, Covariance covariance,
                       const std::vector<float>& mu, const std::vector<float>& sigma, const std::vector<float>& phi,
                       const AttentionOptions& options, bool covariance_message, bool statistics);

/// Number of CUDA devices (0 when none or no driver).
int gpu_count();

}  // namespace gauge_attn::testing
