// tests/cuda/forward_runner_spec.hpp: what forward_runner_spec.cu compiles for each named spec,
// declared for forward_runner.cu (which dispatches on the spec's name and so instantiates none).
#pragma once

#include <gauge_attn/irreps.hpp>
#include <gauge_attn/options.hpp>
#include <gauge_attn/specs.hpp>

#include <string>
#include <vector>

#include "gpu_runner.hpp"

namespace gauge_attn::testing {

/// Wide heads besides the named specs (bench/gpu_forward.cu's W6): ℓ = 8 (P = 171) and two ℓ = 4
/// (P = 55), the tensor-core path's widest tile shapes. Its name in the runners: "l8-2xl4".
using WideHeads = IrrepSpec<Irrep<8, 1>, Irrep<4, 2>>;

/// specs::visit, and "l8-2xl4".
template <class F>
decltype(auto) visit_runner_spec(const std::string& name, F&& f) {
  if (name == "l8-2xl4") return f(WideHeads{});
  return specs::visit(name, f);
}

/// The argument InvalidArgument names when `output` (a ForwardVectors member) is one short.
template <class Spec>
std::string vector_size_error_of(const std::string& output);

template <class Spec>
GpuRun run_forward_of(int batch, int tokens, Covariance covariance, const std::vector<float>& mu,
                      const std::vector<float>& sigma, const std::vector<float>& phi, const AttentionOptions& options,
                      bool covariance_message, bool statistics);

template <class Spec, class T>
GpuPairwiseRun pairwise_of(int batch, int tokens, Covariance covariance, const std::vector<double>& mu,
                           const std::vector<double>& sigma, const std::vector<double>& phi,
                           const AttentionOptions& options, bool covariance_message, bool materialised);

}  // namespace gauge_attn::testing
