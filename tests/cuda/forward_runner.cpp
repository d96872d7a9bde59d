// tests/cuda/forward_runner.cpp: see gpu_runner.hpp. Dispatches on the spec's name to the
// instantiations of forward_runner_spec.cu, one object per named spec.
#include <gauge_attn/specs.hpp>

#include "forward_runner_spec.hpp"
#include "gpu_runner.hpp"

namespace gauge_attn::testing {

std::string forward_vector_size_error(const std::string& output) {
  return vector_size_error_of<specs::Upstream>(output);
}

GpuRun run_gpu_forward(const std::string& spec, int batch, int tokens, Covariance covariance,
                       const std::vector<float>& mu, const std::vector<float>& sigma, const std::vector<float>& phi,
                       const AttentionOptions& options, bool covariance_message, bool statistics) {
  return visit_runner_spec(spec, [&](auto s) {
    return run_forward_of<decltype(s)>(batch, tokens, covariance, mu, sigma, phi, options, covariance_message,
                                       statistics);
  });
}

GpuPairwiseRun run_gpu_pairwise(const std::string& spec, int batch, int tokens, Covariance covariance,
                                const std::vector<double>& mu, const std::vector<double>& sigma,
                                const std::vector<double>& phi, const AttentionOptions& options,
                                bool covariance_message, bool materialised) {
  return specs::visit(spec, [&](auto s) {
    return pairwise_of<decltype(s), double>(batch, tokens, covariance, mu, sigma, phi, options, covariance_message,
                                            materialised);
  });
}

GpuPairwiseRun run_gpu_pairwise_float(int batch, int tokens, Covariance covariance, const std::vector<double>& mu,
                                      const std::vector<double>& sigma, const std::vector<double>& phi,
                                      const AttentionOptions& options, bool covariance_message) {
  return pairwise_of<specs::Upstream, float>(batch, tokens, covariance, mu, sigma, phi, options, covariance_message, true);
}

}  // namespace gauge_attn::testing
