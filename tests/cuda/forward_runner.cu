// tests/cuda/forward_runner.cu: see gpu_runner.hpp.
#include <gauge_attn/cuda/forward.cuh>
#include <gauge_attn/cuda/pairwise.cuh>
#include <gauge_attn/cuda/statistics.cuh>
#include <gauge_attn/specs.hpp>

#include <thrust/device_vector.h>

#include "gpu_runner.hpp"

namespace gauge_attn::testing {

std::string forward_vector_size_error(const std::string& output) {
  using Spec = specs::Upstream;
  const int B = 1, N = 8, E = Spec::embed_dim, H = Spec::num_heads;
  const thrust::device_vector<float> mu(B * N * E - (output == "mu" ? 1 : 0), 0.5f), sigma(B * N * E, 1.f),
      phi(B * N * 3, 0.1f);
  gpu::ForwardVectors out;
  out.mu.resize(B * N * E);
  out.lse.resize(B * N * H);
  for (auto* v : {&out.row_std, &out.uniform_row_std, &out.entropy}) v->resize(B * N * H);
  try {
    const auto q = gpu::device_beliefs(B, N, E, Covariance::diagonal, mu, sigma, phi);
    thrust::device_vector<float>* shortened = output == "outputs.mu" ? &out.mu : output == "outputs.lse" ? &out.lse
                                              : output == "outputs.entropy" ? &out.entropy : nullptr;
    if (shortened) shortened->resize(shortened->size() - 1);
    gpu::Forward<Spec>().run(q, AttentionOptions{}, out);
  } catch (const InvalidArgument& e) {
    return e.argument();
  }
  return "";
}

GpuRun run_gpu_forward(const std::string& spec, int batch, int tokens, Covariance covariance,
                       const std::vector<float>& mu, const std::vector<float>& sigma, const std::vector<float>& phi,
                       const AttentionOptions& options, bool covariance_message, bool statistics) {
  return specs::visit(spec, [&](auto s) {
    using Spec = decltype(s);
    const std::size_t rows = std::size_t(batch) * tokens, E = Spec::embed_dim, H = Spec::num_heads;
    // Through the Thrust-vector API (device_vectors.cuh), which views the vectors as pointers.
    const thrust::device_vector<float> d_mu(mu), d_sigma(sigma), d_phi(phi);
    const gpu::DeviceBeliefs q = gpu::device_beliefs(batch, tokens, int(E), covariance, d_mu, d_sigma, d_phi);
    gpu::ForwardVectors out;
    out.mu.resize(rows * E, unwritten);
    out.lse.resize(rows * H, unwritten);
    if (covariance_message) out.sigma.resize(sigma.size(), unwritten);
    for (auto* v : {&out.row_std, &out.uniform_row_std, &out.entropy}) v->resize(statistics ? rows * H : 0, unwritten);
    if (options.attention_energy) out.energy.resize(rows * H, unwritten);
    gpu::Forward<Spec> forward;
    forward.run(q, options, out);
    forward.check_inputs();
    GAUGE_ATTN_CUDA_CHECK(cudaDeviceSynchronize());
    auto host = [](const thrust::device_vector<float>& v) { return std::vector<float>(v.begin(), v.end()); };
    GpuRun r{host(out.mu),      host(out.sigma),   host(out.lse),    host(out.row_std), host(out.uniform_row_std),
             host(out.entropy), host(out.energy), {}, forward.precision()};
    if (statistics) {
      const gpu::DeviceOutputs o = gpu::device_outputs(q, int(H), out);
      r.statistics = gpu::reduce_row_statistics(o.row_std, o.uniform_row_std, o.entropy, batch, int(H), tokens,
                                                gauge_attn::detail::lengths_per_sequence(options, batch, tokens),
                                                options.mask);
    }
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
  const thrust::device_vector<T> d_mu = device(mu), d_sigma = device(sigma), d_phi = device(phi);
  const gpu::DeviceBeliefsOf<T> q =
      gpu::device_beliefs(batch, tokens, int(Spec::embed_dim), covariance, d_mu, d_sigma, d_phi);
  gpu::PairwiseVectorsOf<T> out;
  out.kl.resize(rows * H * tokens);
  out.beta.resize(out.kl.size());
  out.mu.resize(mu.size());
  if (covariance_message) out.sigma.resize(sigma.size());
  for (auto* v : {&out.row_std, &out.uniform_row_std, &out.entropy}) v->resize(rows * H);
  gpu::Pairwise<Spec, T> run;
  run.run(q, options, out);
  run.check_inputs();
  auto host = [](const thrust::device_vector<T>& v) { return std::vector<double>(v.begin(), v.end()); };
  const gpu::PairwiseOutputsOf<T> o = gpu::device_outputs(q, int(H), out);
  return GpuPairwiseRun{host(out.kl), host(out.beta), host(out.mu), host(out.sigma),
                        gpu::reduce_row_statistics(o.row_std, o.uniform_row_std, o.entropy, batch, int(H), tokens,
                                                   gauge_attn::detail::lengths_per_sequence(options, batch, tokens),
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
