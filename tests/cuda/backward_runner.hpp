// tests/cuda/backward_runner.hpp: the GPU backward behind an Eigen-free interface, so that the tests
// (compiled by the host compiler, with the Eigen-based CPU reference) can call kernels compiled by
// nvcc in backward_runner.cu.
#pragma once

#include <gauge_attn/options.hpp>

#include <string>
#include <vector>

namespace gauge_attn::testing {

/// A forward's saved outputs, layouts of DeviceSaved; an empty vector is not saved.
struct GpuSaved {
  std::vector<float> mu, sigma, energy, lse;
};

/// Incoming gradients dL/d(output), layouts of DeviceOutputGradients; an empty vector is a zero gradient.
struct GpuIncoming {
  std::vector<float> mu, sigma, energy;
};

/// The gradients of gpu::Backward, layouts of DeviceGradients.
struct GpuGradients {
  std::vector<float> mu, sigma, phi, kappa;
};

/// Runs Backward of a spec on host arrays (uploaded, run, checked, downloaded), with the saved
/// state given (the backward is stateless: any forward's outputs will do, the CPU's too). The spec
/// is a named one (specs.hpp) or "l4-l1", IrrepSpec<Irrep<4, 1>, Irrep<1, 2>>.
GpuGradients run_gpu_backward(const std::string& spec, int batch, int tokens, Covariance covariance,
                              const std::vector<float>& mu, const std::vector<float>& sigma,
                              const std::vector<float>& phi, const AttentionOptions& options, const GpuSaved& saved,
                              const GpuIncoming& incoming);

/// The training step's pipeline on the device for the upstream spec: gpu::Forward (keeping the
/// log-sum-exp, Σ^agg when options.covariance_message, the energy when options.attention_energy),
/// then gpu::Backward on its outputs. Returns the forward's outputs in `saved`.
GpuGradients run_gpu_forward_backward(int batch, int tokens, Covariance covariance, const std::vector<float>& mu,
                                      const std::vector<float>& sigma, const std::vector<float>& phi,
                                      const AttentionOptions& options, const GpuIncoming& incoming, GpuSaved& saved);

/// Runs the upstream spec's backward (B = 1, N = 8) through the Thrust-vector API with one thing
/// wrong and returns the argument that the InvalidArgument names ("" when nothing was thrown):
/// "no lse", "no sigma", "no energy" (saved state missing for the gradients given), "upstream"
/// (Mode::upstream), or the name of a vector made one element short ("saved.lse", "incoming.mu",
/// "incoming.energy", "gradients.sigma", "gradients.phi", "gradients.kappa").
std::string backward_error(const std::string& what);

}  // namespace gauge_attn::testing
