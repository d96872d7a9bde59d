// gauge_attn/cuda/device_vectors.cuh: the GPU host API on Thrust device vectors. The vectors are
// viewed as the pointer structs the kernels take, each size checked against the shape, so that a
// vector of the wrong length is an InvalidArgument naming it, never an out-of-bounds access.
//
//   auto q = gpu::device_beliefs(B, N, E, Covariance::diagonal, mu, sigma, phi);  // device_vector<T>
//   gpu::ForwardVectors out;  out.mu.resize(B * N * E);                             // empty: not computed
//   forward.run(q, options, out, stream);
#pragma once

#include <gauge_attn/error.hpp>
#include <gauge_attn/options.hpp>

#include <thrust/device_vector.h>

#include <cstddef>

#include "device_beliefs.cuh"

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
  thrust::device_vector<float> mu, sigma, lse, row_std, uniform_row_std, entropy;
};

/// Outputs of the pair-by-pair path (layouts of PairwiseOutputsOf); kl, beta and mu are required.
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
  return o;
}

template <class T>
PairwiseOutputsOf<T> device_outputs(const DeviceBeliefsOf<T>& q, int heads, PairwiseVectorsOf<T>& v) {
  const std::size_t rows = std::size_t(q.batch) * q.tokens, per_row = rows * heads;
  PairwiseOutputsOf<T> o;
  o.kl = detail::data_of(v.kl, per_row * q.tokens, "outputs.kl", true);
  o.beta = detail::data_of(v.beta, per_row * q.tokens, "outputs.beta", true);
  o.mu = detail::data_of(v.mu, rows * q.embed_dim, "outputs.mu", true);
  o.sigma = detail::data_of(v.sigma, detail::covariance_size(q), "outputs.sigma", false);
  o.row_std = detail::data_of(v.row_std, per_row, "outputs.row_std", false);
  o.uniform_row_std = detail::data_of(v.uniform_row_std, per_row, "outputs.uniform_row_std", false);
  o.entropy = detail::data_of(v.entropy, per_row, "outputs.entropy", false);
  return o;
}

}  // namespace gauge_attn::gpu
