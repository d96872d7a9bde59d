// tests/cuda/gpu_runner.hpp: the GPU forward behind an Eigen-free interface, so that the tests
// (compiled by the host compiler, with the Eigen-based CPU reference) can call kernels compiled by
// nvcc in forward_runner_spec.cu (forward_runner.cpp dispatches on the spec).
#pragma once

#include <gauge_attn/options.hpp>
#include <gauge_attn/precision.hpp>
#include <gauge_attn/row_statistics.hpp>

#include <limits>
#include <string>
#include <vector>

namespace gauge_attn::testing {

/// What the runners fill the output vectors with before a run: NaN, so that an entry the kernels
/// leave unwritten fails every comparison instead of passing as the vector's zero (a caller's
/// memory, a torch.empty tensor say, holds whatever was there).
inline constexpr float unwritten = std::numeric_limits<float>::quiet_NaN();

struct GpuRun {
  std::vector<float> mu, sigma, lse, row_std, uniform_row_std, entropy, energy;  // layouts of DeviceOutputs
  std::vector<RowStatistics> statistics;  // (B, H), reduced on the device (statistics.cuh)
  std::vector<HeadPrecision> precision;   // (B, H): Forward::precision()
};

/// Outputs of gpu::Pairwise, in double whatever the precision of the run.
struct GpuPairwiseRun {
  std::vector<double> kl, beta, mu, sigma;
  std::vector<RowStatistics> statistics;
};

/// Runs Forward<named spec> on host arrays (uploaded, run, checked, downloaded); the attention
/// energy too when options.attention_energy is set.
GpuRun run_gpu_forward(const std::string& spec, int batch, int tokens, Covariance covariance,
                       const std::vector<float>& mu, const std::vector<float>& sigma, const std::vector<float>& phi,
                       const AttentionOptions& options, bool covariance_message, bool statistics);

/// Runs Pairwise<named spec, double> (either mode) on host arrays; `materialised`: with the KL and β
/// outputs (else they come back empty and the path streams the keys).
GpuPairwiseRun run_gpu_pairwise(const std::string& spec, int batch, int tokens, Covariance covariance,
                                const std::vector<double>& mu, const std::vector<double>& sigma,
                                const std::vector<double>& phi, const AttentionOptions& options, bool covariance_message,
                                bool materialised = true);

/// The same in float (inputs rounded to float), for the upstream spec only.
GpuPairwiseRun run_gpu_pairwise_float(int batch, int tokens, Covariance covariance, const std::vector<double>& mu,
                                      const std::vector<double>& sigma, const std::vector<double>& phi,
                                      const AttentionOptions& options, bool covariance_message);

/// Runs the upstream spec through the Thrust-vector API with one vector one element short ("mu"
/// for the beliefs, "outputs.mu", "outputs.lse" or "outputs.entropy"); returns the argument the
/// InvalidArgument names, or "" when nothing was thrown.
std::string forward_vector_size_error(const std::string& output);

/// Number of CUDA devices (0 when none or no driver).
int gpu_count();

}  // namespace gauge_attn::testing
