// gauge_attn/cuda/device_vectors.cuh: the GPU host API on Thrust device vectors. The vectors are
// viewed as the pointer structs the kernels take, each size checked against the shape, so that a
// vector of the wrong length is an InvalidArgument naming it, never an out-of-bounds access.
//
//   auto q = gpu::device_beliefs(B, N, E, Covariance::diagonal, mu, sigma, phi);  // device_vector<T>
//   gpu::ForwardVectors out;  out.mu.resize(B * N * E);                             // empty: not computed
//   forward.run(q, options, out, stream);
//   gpu::OutputGradientVectors incoming;  incoming.mu = …;  gpu::BackwardVectors grads;  (sized)
//   backward.run(q, options, out, incoming, grads, stream);                          // out: saved state
#pragma once

#include <gauge_attn/error.hpp>
#include <gauge_attn/options.hpp>

#include <thrust/device_vector.h>

#include <cstddef>

#include "device_beliefs.cuh"
#include "device_gradients.cuh"

namespace gauge_attn::gpu {

namespace detail {

/// The data of `v` (a const or mutable device_vector) when it holds exactly `expected` elements;
/// null when it is empty and optional.
template <class Vector>
auto data_of(Vector& v, std::size_t expected, const char* name, bool required = true) {
  if (v.empty() && !required) return decltype(thrust::raw_pointer_cast(v.data())){nullptr};
  gauge_attn::detail::require(v.size() == expected, name, "has ", v.size(), " elements, the shape needs ", expected,
                              required ? "" : " (or 0: not computed)");
  return thrust::raw_pointer_cast(v.data());
}

/// The device pointer of a workspace vector.
template <class T>
T* raw(thrust::device_vector<T>& v) {
  return thrust::raw_pointer_cast(v.data());
}

/// Grows a workspace vector to at least n elements (never shrinks it: the next run may reuse it).
template <class T>
void grow(thrust::device_vector<T>& v, std::size_t n) {
  if (v.size() < n) v.resize(n);
}

/// Elements of Σ^agg: (B, N, E) for diagonal beliefs, (B, N, E, E) for full ones.
template <class T>
std::size_t covariance_size(const DeviceBeliefsOf<T>& q) {
  const std::size_t BNE = std::size_t(q.batch) * q.tokens * q.embed_dim;
  return q.covariance == Covariance::diagonal ? BNE : BNE * q.embed_dim;
}

}  // namespace detail

/// Beliefs in Thrust device vectors: μ (B, N, E), Σ (B, N, E) or (B, N, E, E), φ (B, N, 3).
/// The vectors must outlive every run that uses the view.
template <class T>
DeviceBeliefsOf<T> device_beliefs(int batch, int tokens, int embed_dim, Covariance covariance,
                                  const thrust::device_vector<T>& mu, const thrust::device_vector<T>& sigma,
                                  const thrust::device_vector<T>& phi) {
  using gauge_attn::detail::require;
  require(batch >= 1 && tokens >= 1 && embed_dim >= 1, "shape", "B, N and E must be >= 1, got ", batch, ", ", tokens,
          ", ", embed_dim);
  DeviceBeliefsOf<T> q{batch, tokens, embed_dim, covariance, nullptr, nullptr, nullptr};
  const std::size_t rows = std::size_t(batch) * tokens;
  q.mu = detail::data_of(mu, rows * embed_dim, "mu");
  q.sigma = detail::data_of(sigma, detail::covariance_size(q), "sigma");
  q.phi = detail::data_of(phi, rows * 3, "phi");
  return q;
}

/// Outputs of the fused forward (layouts of DeviceOutputs); `mu` is required, an empty optional
/// vector is not computed, and the three row statistics go together.
struct ForwardVectors {
  thrust::device_vector<float> mu, sigma, lse, row_std, uniform_row_std, entropy, energy;
};

/// Incoming gradients of a forward's outputs for gpu::Backward (layouts of DeviceOutputGradients);
/// an empty vector is a zero gradient. The saved state is the forward's ForwardVectors.
struct OutputGradientVectors {
  thrust::device_vector<float> mu, sigma, energy;
};

/// What gpu::Backward returns (layouts of DeviceGradients); every vector is required.
struct BackwardVectors {
  thrust::device_vector<float> mu, sigma, phi, kappa;
};

/// Outputs of the pair-by-pair path (layouts of PairwiseOutputsOf); mu is required, an empty kl or
/// beta is not written.
template <class T>
struct PairwiseVectorsOf {
  thrust::device_vector<T> kl, beta, mu, sigma, row_std, uniform_row_std, entropy;
};

/// Pointers into `v`, every size checked against the beliefs' shape and H heads.
inline DeviceOutputs device_outputs(const DeviceBeliefs& q, int heads, ForwardVectors& v) {
  const std::size_t rows = std::size_t(q.batch) * q.tokens, per_row = rows * heads;
  DeviceOutputs o;
  o.mu = detail::data_of(v.mu, rows * q.embed_dim, "outputs.mu", true);
  o.sigma = detail::data_of(v.sigma, detail::covariance_size(q), "outputs.sigma", false);
  o.lse = detail::data_of(v.lse, per_row, "outputs.lse", false);
  o.row_std = detail::data_of(v.row_std, per_row, "outputs.row_std", false);
  o.uniform_row_std = detail::data_of(v.uniform_row_std, per_row, "outputs.uniform_row_std", false);
  o.entropy = detail::data_of(v.entropy, per_row, "outputs.entropy", false);
  o.energy = detail::data_of(v.energy, per_row, "outputs.energy", false);
  return o;
}

/// The forward's outputs in `v` as the backward's saved state; which of them the backward needs is
/// checked by the backward (an empty vector is a null pointer), their sizes here.
inline DeviceSaved saved_outputs(const DeviceBeliefs& q, int heads, const ForwardVectors& v) {
  const std::size_t rows = std::size_t(q.batch) * q.tokens, per_row = rows * heads;
  DeviceSaved o;
  o.mu = detail::data_of(v.mu, rows * q.embed_dim, "saved.mu", false);
  o.sigma = detail::data_of(v.sigma, detail::covariance_size(q), "saved.sigma", false);
  o.energy = detail::data_of(v.energy, per_row, "saved.energy", false);
  o.lse = detail::data_of(v.lse, per_row, "saved.lse", false);
  return o;
}

inline DeviceOutputGradients incoming_gradients(const DeviceBeliefs& q, int heads, const OutputGradientVectors& v) {
  const std::size_t rows = std::size_t(q.batch) * q.tokens;
  DeviceOutputGradients o;
  o.mu = detail::data_of(v.mu, rows * q.embed_dim, "incoming.mu", false);
  o.sigma = detail::data_of(v.sigma, detail::covariance_size(q), "incoming.sigma", false);
  o.energy = detail::data_of(v.energy, rows * heads, "incoming.energy", false);
  return o;
}

inline DeviceGradients belief_gradients(const DeviceBeliefs& q, int heads, BackwardVectors& v) {
  const std::size_t rows = std::size_t(q.batch) * q.tokens;
  DeviceGradients o;
  o.mu = detail::data_of(v.mu, rows * q.embed_dim, "gradients.mu");
  o.sigma = detail::data_of(v.sigma, detail::covariance_size(q), "gradients.sigma");
  o.phi = detail::data_of(v.phi, rows * 3, "gradients.phi");
  o.kappa = detail::data_of(v.kappa, std::size_t(heads), "gradients.kappa");
  return o;
}

template <class T>
PairwiseOutputsOf<T> device_outputs(const DeviceBeliefsOf<T>& q, int heads, PairwiseVectorsOf<T>& v) {
  const std::size_t rows = std::size_t(q.batch) * q.tokens, per_row = rows * heads;
  PairwiseOutputsOf<T> o;
  o.kl = detail::data_of(v.kl, per_row * q.tokens, "outputs.kl", false);
  o.beta = detail::data_of(v.beta, per_row * q.tokens, "outputs.beta", false);
  o.mu = detail::data_of(v.mu, rows * q.embed_dim, "outputs.mu", true);
  o.sigma = detail::data_of(v.sigma, detail::covariance_size(q), "outputs.sigma", false);
  o.row_std = detail::data_of(v.row_std, per_row, "outputs.row_std", false);
  o.uniform_row_std = detail::data_of(v.uniform_row_std, per_row, "outputs.uniform_row_std", false);
  o.entropy = detail::data_of(v.entropy, per_row, "outputs.entropy", false);
  return o;
}

}  // namespace gauge_attn::gpu
