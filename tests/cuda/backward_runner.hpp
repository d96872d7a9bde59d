// tests/cuda/backward_runner.hpp: the GPU forward and backward behind an Eigen-free interface, so
// that the tests (compiled by the host compiler, with the Eigen-based CPU reference) can call
// kernels compiled by nvcc in backward_runner.cu.
#pragma once

#include <gauge_attn/options.hpp>

#include <string>
#include <vector>

namespace gauge_attn::testing {

/// Incoming gradients dL/d(output), layouts of OutputGradients; an empty vector is a zero gradient.
struct GpuIncoming {
  std::vector<float> mu, sigma, energy;
};

/// The saved outputs of gpu::Forward and the gradients of gpu::Backward (layouts of DeviceGradients).
struct GpuBackwardRun {
  std::vector<float> mu, sigma, energy, lse;
  std::vector<float> grad_mu, grad_sigma, grad_phi, grad_kappa;
};

/// Runs Forward then Backward of a spec on host arrays (uploaded, run, checked, downloaded): a
/// named spec (specs.hpp) or "l4-l1", IrrepSpec<Irrep<4, 1>, Irrep<1, 2>>. The forward returns Σ^agg
/// when options.covariance_message is set and the energy when options.attention_energy is.
GpuBackwardRun run_gpu_backward(const std::string& spec, int batch, int tokens, Covariance covariance,
                                const std::vector<float>& mu, const std::vector<float>& sigma,
                                const std::vector<float>& phi, const AttentionOptions& options,
                                const GpuIncoming& incoming);

/// Runs the upstream spec's backward (B = 1, N = 8) through the Thrust-vector API with one thing
/// wrong and returns the argument that the InvalidArgument names ("" when nothing was thrown):
/// "no lse", "no sigma", "no energy" (saved state missing for the gradients given), "upstream"
/// (Mode::upstream), or the name of a vector made one element short ("saved.lse", "incoming.mu",
/// "incoming.energy", "gradients.sigma", "gradients.phi", "gradients.kappa").
std::string backward_error(const std::string& what);

}  // namespace gauge_attn::testing
