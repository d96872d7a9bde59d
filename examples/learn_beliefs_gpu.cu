// examples/learn_beliefs_gpu.cu: see learn_beliefs_gpu.hpp.
#include "learn_beliefs_gpu.hpp"

#include <gauge_attn/cuda/backward.cuh>
#include <gauge_attn/cuda/forward.cuh>
#include <gauge_attn/specs.hpp>

#include <thrust/device_vector.h>

namespace learn_beliefs {

using namespace gauge_attn;
using Spec = specs::Upstream;

struct GpuAttention::State {
  State(int b, int n) : batch(b), tokens(n) {}
  int batch, tokens;
  AttentionOptions options;
  thrust::device_vector<float> mu, sigma, phi;  // the beliefs of the last forward
  gpu::Forward<Spec> forward;
  gpu::Backward<Spec> backward;
  gpu::ForwardVectors out;  // m, e and the log-sum-exp the backward recomputes β from
  gpu::BackwardVectors grads;

  gpu::DeviceBeliefs beliefs() const {
    return gpu::device_beliefs(batch, tokens, Spec::embed_dim, Covariance::diagonal, mu, sigma, phi);
  }
};

namespace {
thrust::device_vector<float> to_device(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }
std::vector<double> to_host(const thrust::device_vector<float>& v) {
  const std::vector<float> host(v.begin(), v.end());
  return {host.begin(), host.end()};
}
}  // namespace

GpuAttention::GpuAttention(int batch, int tokens) : state_(std::make_unique<State>(batch, tokens)) {
  const std::size_t rows = std::size_t(batch) * tokens;
  state_->options.mask.causal = true;
  state_->options.attention_energy = true;
  state_->out.mu.resize(rows * Spec::embed_dim);
  state_->out.energy.resize(rows * Spec::num_heads);
  state_->out.lse.resize(rows * Spec::num_heads);
  state_->grads.mu.resize(rows * Spec::embed_dim);
  state_->grads.sigma.resize(rows * Spec::embed_dim);
  state_->grads.phi.resize(rows * 3);
  state_->grads.kappa.resize(Spec::num_heads);
}

GpuAttention::~GpuAttention() = default;

int GpuAttention::devices() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}

void GpuAttention::forward(const std::vector<double>& mu, const std::vector<double>& sigma,
                           const std::vector<double>& phi, const std::vector<double>& kappa, std::vector<double>& m,
                           std::vector<double>& e) {
  State& s = *state_;
  s.mu = to_device(mu);
  s.sigma = to_device(sigma);
  s.phi = to_device(phi);
  s.options.kappa = kappa;
  s.forward.run(s.beliefs(), s.options, s.out);
  s.forward.check_inputs();  // synchronises; throws on a covariance that is no longer valid
  m = to_host(s.out.mu);
  e = to_host(s.out.energy);
}

void GpuAttention::backward(const std::vector<double>& dL_dm, const std::vector<double>& dL_de,
                            std::vector<double>& mu, std::vector<double>& sigma, std::vector<double>& phi,
                            std::vector<double>& kappa) {
  State& s = *state_;
  gpu::OutputGradientVectors incoming;
  incoming.mu = to_device(dL_dm);
  incoming.energy = to_device(dL_de);
  s.backward.run(s.beliefs(), s.options, s.out, incoming, s.grads);
  s.backward.check_inputs();
  mu = to_host(s.grads.mu);
  sigma = to_host(s.grads.sigma);
  phi = to_host(s.grads.phi);
  kappa = to_host(s.grads.kappa);
}

}  // namespace learn_beliefs
