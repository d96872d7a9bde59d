// tests/cuda/forward_runner.cu: see gpu_runner.hpp.
#include <gauge_attn/cuda/forward.cuh>
#include <gauge_attn/cuda/pairwise.cuh>
#include <gauge_attn/cuda/statistics.cuh>
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
    GpuRun r{host(out_mu), host(out_sigma), host(lse), host(row_std), host(uniform), host(entropy), {}};
    if (statistics)
      r.statistics = gpu::reduce_row_statistics(out.row_std, out.uniform_row_std, out.entropy, batch, int(H), tokens,
                                                gauge_attn::detail::lengths_per_sequence(options, batch, tokens),
                                                options.mask);
    return r;
  });
}

namespace {

template <class Spec, class T>
GpuPairwiseRun pairwise(int batch, int tokens, Covariance covariance, const std::vector<double>& mu,
                        const std::vector<double>& sigma, const std::vector<double>& phi,
                        const AttentionOptions& options, bool covariance_message) {
  const std::size_t rows = std::size_t(batch) * tokens, H = Spec::num_heads;
  auto device = [](const std::vector<double>& v) { return thrust::device_vector<T>(v.begin(), v.end()); };
  thrust::device_vector<T> d_mu = device(mu), d_sigma = device(sigma), d_phi = device(phi);
  thrust::device_vector<T> kl(rows * H * tokens), beta(kl.size()), out_mu(mu.size()),
      out_sigma(covariance_message ? sigma.size() : 0), row_std(rows * H), uniform(rows * H), entropy(rows * H);
  gpu::DeviceBeliefsOf<T> q{batch,
                            tokens,
                            int(Spec::embed_dim),
                            covariance,
                            thrust::raw_pointer_cast(d_mu.data()),
                            thrust::raw_pointer_cast(d_sigma.data()),
                            thrust::raw_pointer_cast(d_phi.data())};
  gpu::PairwiseOutputsOf<T> out;
  out.kl = thrust::raw_pointer_cast(kl.data());
  out.beta = thrust::raw_pointer_cast(beta.data());
  out.mu = thrust::raw_pointer_cast(out_mu.data());
  if (covariance_message) out.sigma = thrust::raw_pointer_cast(out_sigma.data());
  out.row_std = thrust::raw_pointer_cast(row_std.data());
  out.uniform_row_std = thrust::raw_pointer_cast(uniform.data());
  out.entropy = thrust::raw_pointer_cast(entropy.data());
  gpu::Pairwise<Spec, T> run;
  run.run(q, options, out);
  run.check_inputs();
  auto host = [](const thrust::device_vector<T>& v) { return std::vector<double>(v.begin(), v.end()); };
  return GpuPairwiseRun{host(kl), host(beta), host(out_mu), host(out_sigma),
                        gpu::reduce_row_statistics(out.row_std, out.uniform_row_std, out.entropy, batch, int(H),
                                                   tokens, gauge_attn::detail::lengths_per_sequence(options, batch, tokens),
                                                   options.mask)};
}

}  // namespace

GpuPairwiseRun run_gpu_pairwise(const std::string& spec, int batch, int tokens, Covariance covariance,
                                const std::vector<double>& mu, const std::vector<double>& sigma,
                                const std::vector<double>& phi, const AttentionOptions& options,
                                bool covariance_message) {
  return specs::visit(spec, [&](auto s) {
    return pairwise<decltype(s), double>(batch, tokens, covariance, mu, sigma, phi, options, covariance_message);
  });
}

GpuPairwiseRun run_gpu_pairwise_float(int batch, int tokens, Covariance covariance, const std::vector<double>& mu,
                                      const std::vector<double>& sigma, const std::vector<double>& phi,
                                      const AttentionOptions& options, bool covariance_message) {
  return pairwise<specs::Upstream, float>(batch, tokens, covariance, mu, sigma, phi, options, covariance_message);
}

}  // namespace gauge_attn::testing
