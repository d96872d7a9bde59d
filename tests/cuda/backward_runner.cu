// tests/cuda/backward_runner.cu: see backward_runner.hpp.
#include <gauge_attn/cuda/backward.cuh>
#include <gauge_attn/cuda/forward.cuh>
#include <gauge_attn/specs.hpp>

#include <thrust/device_vector.h>

#include "backward_runner.hpp"

namespace gauge_attn::testing {

namespace {

using HigherSpin = IrrepSpec<Irrep<4, 1>, Irrep<1, 2>>;  // ℓ = 4: P = 55, the widest tile shape

template <class F>
decltype(auto) visit_spec(const std::string& name, F&& f) {
  if (name == "l4-l1") return f(HigherSpin{});
  return specs::visit(name, f);
}

thrust::device_vector<float> device(const std::vector<float>& v) { return {v.begin(), v.end()}; }
std::vector<float> host(const thrust::device_vector<float>& v) { return {v.begin(), v.end()}; }

}  // namespace

GpuBackwardRun run_gpu_backward(const std::string& spec, int batch, int tokens, Covariance covariance,
                                const std::vector<float>& mu, const std::vector<float>& sigma,
                                const std::vector<float>& phi, const AttentionOptions& options,
                                const GpuIncoming& incoming) {
  return visit_spec(spec, [&](auto s) {
    using Spec = decltype(s);
    const std::size_t rows = std::size_t(batch) * tokens, E = Spec::embed_dim, H = Spec::num_heads;
    const thrust::device_vector<float> d_mu = device(mu), d_sigma = device(sigma), d_phi = device(phi);
    const gpu::DeviceBeliefs q = gpu::device_beliefs(batch, tokens, int(E), covariance, d_mu, d_sigma, d_phi);
    gpu::ForwardVectors saved;
    saved.mu.resize(rows * E);
    saved.lse.resize(rows * H);
    if (options.covariance_message) saved.sigma.resize(sigma.size());
    if (options.attention_energy) saved.energy.resize(rows * H);
    gpu::Forward<Spec> forward;
    forward.run(q, options, saved);
    forward.check_inputs();
    const gpu::OutputGradientVectors in{device(incoming.mu), device(incoming.sigma), device(incoming.energy)};
    gpu::BackwardVectors grads;
    grads.mu.resize(rows * E);
    grads.sigma.resize(sigma.size());
    grads.phi.resize(rows * 3);
    grads.kappa.resize(H);
    gpu::Backward<Spec> backward;
    backward.run(q, options, saved, in, grads);
    backward.check_inputs();
    return GpuBackwardRun{host(saved.mu),  host(saved.sigma),    host(saved.energy),  host(saved.lse),
                          host(grads.mu), host(grads.sigma), host(grads.phi), host(grads.kappa)};
  });
}

std::string backward_error(const std::string& what) {
  using Spec = specs::Upstream;
  const int B = 1, N = 8, E = Spec::embed_dim, H = Spec::num_heads;
  const thrust::device_vector<float> mu(B * N * E, 0.5f), sigma(B * N * E, 1.f), phi(B * N * 3, 0.1f);
  const auto q = gpu::device_beliefs(B, N, E, Covariance::diagonal, mu, sigma, phi);
  AttentionOptions options;
  options.covariance_message = options.attention_energy = true;
  gpu::ForwardVectors saved;
  saved.mu.resize(B * N * E);
  saved.sigma.resize(B * N * E);
  saved.lse.resize(B * N * H);
  saved.energy.resize(B * N * H);
  gpu::Forward<Spec>().run(q, options, saved);
  gpu::OutputGradientVectors incoming;
  incoming.mu.assign(B * N * E, 1.f);
  incoming.sigma.assign(B * N * E, 1.f);
  incoming.energy.assign(B * N * H, 1.f);
  gpu::BackwardVectors grads;
  grads.mu.resize(B * N * E);
  grads.sigma.resize(B * N * E);
  grads.phi.resize(B * N * 3);
  grads.kappa.resize(H);
  if (what == "no lse") saved.lse.clear();
  if (what == "no sigma") saved.sigma.clear();
  if (what == "no energy") saved.energy.clear();
  if (what == "upstream") options.mode = Mode::upstream;
  thrust::device_vector<float>* shortened = what == "saved.lse"         ? &saved.lse
                                            : what == "incoming.mu"     ? &incoming.mu
                                            : what == "incoming.energy" ? &incoming.energy
                                            : what == "gradients.sigma" ? &grads.sigma
                                            : what == "gradients.phi"   ? &grads.phi
                                            : what == "gradients.kappa" ? &grads.kappa
                                                                        : nullptr;
  if (shortened) shortened->resize(shortened->size() - 1);
  try {
    gpu::Backward<Spec> backward;
    backward.run(q, options, saved, incoming, grads);
    backward.check_inputs();
  } catch (const InvalidArgument& e) {
    return e.argument();
  }
  return "";
}

}  // namespace gauge_attn::testing
