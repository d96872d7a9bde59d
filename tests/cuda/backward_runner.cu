// tests/cuda/backward_runner.cu: see backward_runner.hpp. Only the end-to-end run instantiates
// gpu::Forward (for the upstream spec): its eight kernel variants per spec are forward_runner.cu's.
#include <gauge_attn/cuda/backward.cuh>
#include <gauge_attn/cuda/forward.cuh>
#include <gauge_attn/specs.hpp>

#include <thrust/device_vector.h>

#include "backward_runner.hpp"
#include "gpu_runner.hpp"

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

/// Backward of Spec through the Thrust-vector API, `saved` already on the device.
template <class Spec>
GpuGradients backward(const gpu::DeviceBeliefs& q, const AttentionOptions& options, const gpu::ForwardVectors& saved,
                      const GpuIncoming& incoming) {
  const std::size_t rows = std::size_t(q.batch) * q.tokens;
  const gpu::OutputGradientVectors in{device(incoming.mu), device(incoming.sigma), device(incoming.energy)};
  gpu::BackwardVectors grads;
  grads.mu.resize(rows * Spec::embed_dim, unwritten);
  grads.sigma.resize(q.covariance == Covariance::full ? rows * Spec::embed_dim * Spec::embed_dim
                                                      : rows * Spec::embed_dim,
                     unwritten);
  grads.phi.resize(rows * 3, unwritten);
  grads.kappa.resize(Spec::num_heads, unwritten);
  gpu::Backward<Spec> backward;
  backward.run(q, options, saved, in, grads);
  backward.check_inputs();
  return GpuGradients{host(grads.mu), host(grads.sigma), host(grads.phi), host(grads.kappa)};
}

}  // namespace

GpuGradients run_gpu_backward(const std::string& spec, int batch, int tokens, Covariance covariance,
                              const std::vector<float>& mu, const std::vector<float>& sigma,
                              const std::vector<float>& phi, const AttentionOptions& options, const GpuSaved& saved,
                              const GpuIncoming& incoming) {
  return visit_spec(spec, [&](auto s) {
    using Spec = decltype(s);
    const thrust::device_vector<float> d_mu = device(mu), d_sigma = device(sigma), d_phi = device(phi);
    const gpu::DeviceBeliefs q = gpu::device_beliefs(batch, tokens, Spec::embed_dim, covariance, d_mu, d_sigma, d_phi);
    gpu::ForwardVectors state;
    state.mu = device(saved.mu);
    state.sigma = device(saved.sigma);
    state.energy = device(saved.energy);
    state.lse = device(saved.lse);
    return backward<Spec>(q, options, state, incoming);
  });
}

GpuGradients run_gpu_forward_backward(int batch, int tokens, Covariance covariance, const std::vector<float>& mu,
                                      const std::vector<float>& sigma, const std::vector<float>& phi,
                                      const AttentionOptions& options, const GpuIncoming& incoming, GpuSaved& saved) {
  using Spec = specs::Upstream;
  const std::size_t rows = std::size_t(batch) * tokens;
  const thrust::device_vector<float> d_mu = device(mu), d_sigma = device(sigma), d_phi = device(phi);
  const gpu::DeviceBeliefs q = gpu::device_beliefs(batch, tokens, Spec::embed_dim, covariance, d_mu, d_sigma, d_phi);
  gpu::ForwardVectors state;
  state.mu.resize(rows * Spec::embed_dim, unwritten);
  state.lse.resize(rows * Spec::num_heads, unwritten);
  if (options.covariance_message) state.sigma.resize(sigma.size(), unwritten);
  if (options.attention_energy) state.energy.resize(rows * Spec::num_heads, unwritten);
  gpu::Forward<Spec> forward;
  forward.run(q, options, state);
  forward.check_inputs();
  saved = GpuSaved{host(state.mu), host(state.sigma), host(state.energy), host(state.lse)};
  return backward<Spec>(q, options, state, incoming);
}

std::string backward_error(const std::string& what) {
  using Spec = specs::Upstream;
  const int B = 1, N = 8, E = Spec::embed_dim, H = Spec::num_heads;
  const thrust::device_vector<float> mu(B * N * E, 0.5f), sigma(B * N * E, 1.f), phi(B * N * 3, 0.1f);
  const auto q = gpu::device_beliefs(B, N, E, Covariance::diagonal, mu, sigma, phi);
  AttentionOptions options;
  gpu::ForwardVectors saved;  // the values do not matter here: every case fails on the host or not at all
  saved.mu.assign(B * N * E, 0.5f);
  saved.sigma.assign(B * N * E, 0.f);
  saved.lse.assign(B * N * H, 0.f);
  saved.energy.assign(B * N * H, 0.f);
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
