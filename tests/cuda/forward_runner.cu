// tests/cuda/forward_runner.cu: see gpu_runner.hpp.
#include <gauge_attn/cuda/forward.cuh>
#include <gauge_attn/specs.hpp>

#include <thrust/device_vector.h>

#include "gpu_runner.hpp"

namespace gauge_attn::testing {

int gpu_count() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}

GpuRun run_gpu_forward(const std::string& spec, int batch, int tokens, Covariance covariance,
                       const std::vector<float>& mu, const std::vector<float>& sigma, const std::vector<float>& phi,
                       const AttentionOptions& options, bool covariance_message, bool statistics) {
  return specs::visit(spec, [&](auto s) {
    using Spec = decltype(s);
    const std::size_t rows = std::size_t(batch) * tokens, E = Spec::embed_dim, H = Spec::num_heads;
    thrust::device_vector<float> d_mu(mu), d_sigma(sigma), d_phi(phi);
    thrust::device_vector<float> out_mu(rows * E), out_sigma(covariance_message ? sigma.size() : 0), lse(rows * H);
    thrust::device_vector<float> row_std(statistics ? rows * H : 0), uniform(row_std.size()), entropy(row_std.size());
    gpu::DeviceBeliefs q{batch,
                          tokens,
                          int(E),
                          covariance,
                          thrust::raw_pointer_cast(d_mu.data()),
                          thrust::raw_pointer_cast(d_sigma.data()),
                          thrust::raw_pointer_cast(d_phi.data())};
    gpu::DeviceOutputs out;
    out.mu = thrust::raw_pointer_cast(out_mu.data());
    out.lse = thrust::raw_pointer_cast(lse.data());
    if (covariance_message) out.sigma = thrust::raw_pointer_cast(out_sigma.data());
    if (statistics) {
      out.row_std = thrust::raw_pointer_cast(row_std.data());
      out.uniform_row_std = thrust::raw_pointer_cast(uniform.data());
      out.entropy = thrust::raw_pointer_cast(entropy.data());
    }
    gpu::Forward<Spec> forward;
    forward.run(q, options, out);
    forward.check_inputs();
    GAUGE_ATTN_CUDA_CHECK(cudaDeviceSynchronize());
    auto host = [](const thrust::device_vector<float>& v) { return std::vector<float>(v.begin(), v.end()); };
    return GpuRun{host(out_mu), host(out_sigma), host(lse), host(row_std), host(uniform), host(entropy)};
  });
}

}  // namespace gauge_attn::testing
