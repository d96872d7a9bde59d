// examples/learn_beliefs_gpu.hpp: the CUDA forward and backward of learn_beliefs, behind an
// Eigen-free interface (learn_beliefs_gpu.cu is compiled by nvcc, learn_beliefs.cpp by the host
// compiler). Shapes as in learn_beliefs.cpp; float on the device, double on the host.
#pragma once

#include <memory>
#include <vector>

namespace learn_beliefs {

/// gpu::Forward and gpu::Backward of the upstream spec with their device vectors, kept between
/// steps. Causal mask, one κ per head, the attention energy on.
class GpuAttention {
 public:
  GpuAttention(int batch, int tokens);
  ~GpuAttention();

  /// Number of CUDA devices (0 when none or no driver).
  static int devices();

  /// Messages m (B, N, E) and energies e (B, H, N) of beliefs μ (B, N, E), σ (B, N, E), φ (B, N, 3)
  /// and temperatures κ (H); the forward's outputs stay on the device for backward().
  void forward(const std::vector<double>& mu, const std::vector<double>& sigma, const std::vector<double>& phi,
               const std::vector<double>& kappa, std::vector<double>& m, std::vector<double>& e);

  /// dL/dμ, dL/dσ, dL/dφ, dL/dκ of the last forward, from dL/dm (B, N, E) and dL/de (B, H, N).
  void backward(const std::vector<double>& dL_dm, const std::vector<double>& dL_de, std::vector<double>& mu,
                std::vector<double>& sigma, std::vector<double>& phi, std::vector<double>& kappa);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace learn_beliefs
