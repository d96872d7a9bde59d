// study_gpu.cu: see study_gpu.hpp.
#include "study_gpu.hpp"

#include <gauge_attn/cuda/check.cuh>
#include <gauge_attn/cuda/device_vectors.cuh>
#include <gauge_attn/cuda/pairwise.cuh>
#include <gauge_attn/cuda/statistics.cuh>
#include <gauge_attn/specs.hpp>

#include <thrust/device_vector.h>

#include <cstddef>

namespace gauge_attn_study {

using namespace gauge_attn;

namespace {

/// Device memory of one run of Pairwise<Spec, double>: the beliefs, three (B, H, N, N) matrices
/// (KL and β out, the KL workspace), the transports E_i and E_i⁻¹ of every head and token, μ out
/// and the per-row statistics.
template <class Spec>
std::size_t pairwise_bytes(int batch, int tokens, std::size_t belief_values) {
  const std::size_t rows = std::size_t(batch) * tokens, H = Spec::num_heads;
  std::size_t transports = 0;
  for (int h = 0; h < Spec::num_heads; ++h) transports += 2 * rows * Spec::head(h).dim * Spec::head(h).dim;
  return sizeof(double) * (belief_values + 3 * rows * H * tokens + transports + rows * Spec::embed_dim + 3 * rows * H);
}

std::vector<double> download(const thrust::device_vector<double>& v, std::size_t count) {
  std::vector<double> host(count);
  GAUGE_ATTN_CUDA_CHECK(cudaMemcpy(host.data(), thrust::raw_pointer_cast(v.data()), count * sizeof(double),
                                   cudaMemcpyDeviceToHost));
  return host;
}

template <class Spec>
GpuAttention run(int batch, int tokens, Covariance covariance, const double* mu, const double* sigma,
                 const double* phi, const AttentionOptions& options, int matrix_sequences) {
  constexpr int H = Spec::num_heads, E = Spec::embed_dim;
  const std::size_t rows = std::size_t(batch) * tokens;
  const std::size_t sigma_values = rows * (covariance == Covariance::diagonal ? E : E * E);
  std::size_t free = 0, total = 0;
  GAUGE_ATTN_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  const std::size_t need = pairwise_bytes<Spec>(batch, tokens, rows * (E + 3) + sigma_values);
  constexpr std::size_t MiB = std::size_t(1) << 20;
  detail::require(need <= free, "--device", "cuda: the float64 KL and beta matrices (B, H, N, N) for B = ", batch,
                  ", H = ", H, ", N = ", tokens, " need ", need / MiB, " MiB of GPU memory, ", free / MiB,
                  " MiB are free: use fewer sequences or tokens, or --device cpu");

  const thrust::device_vector<double> d_mu(mu, mu + rows * E), d_sigma(sigma, sigma + sigma_values),
      d_phi(phi, phi + rows * 3);
  const gpu::DeviceBeliefsOf<double> q = gpu::device_beliefs(batch, tokens, E, covariance, d_mu, d_sigma, d_phi);
  gpu::PairwiseVectorsOf<double> out;
  out.kl.resize(rows * H * tokens);
  out.beta.resize(out.kl.size());
  out.mu.resize(rows * E);
  for (auto* v : {&out.row_std, &out.uniform_row_std, &out.entropy}) v->resize(rows * H);
  gpu::Pairwise<Spec, double> pairwise;
  pairwise.run(q, options, out);
  pairwise.check_inputs();

  const gpu::PairwiseOutputsOf<double> o = gpu::device_outputs(q, H, out);
  const std::size_t matrices = std::size_t(matrix_sequences) * H * tokens * tokens;
  return {download(out.mu, out.mu.size()), download(out.kl, matrices), download(out.beta, matrices),
          gpu::reduce_row_statistics(o.row_std, o.uniform_row_std, o.entropy, batch, H, tokens,
                                     detail::lengths_per_sequence(options, batch, tokens), options.mask)};
}

}  // namespace

GpuProbe probe_gpu() {
  int count = 0;
  const cudaError_t found = cudaGetDeviceCount(&count);  // fails without a driver or a device: not an error here
  if (found != cudaSuccess) return {false, std::string(cudaGetErrorName(found)) + ": " + cudaGetErrorString(found)};
  if (count == 0) return {false, "no CUDA device"};
  int device = 0;
  GAUGE_ATTN_CUDA_CHECK(cudaGetDevice(&device));
  cudaDeviceProp properties;
  GAUGE_ATTN_CUDA_CHECK(cudaGetDeviceProperties(&properties, device));
  return {true, properties.name};
}

GpuAttention gpu_attention(const std::string& spec, int batch, int tokens, Covariance covariance, const double* mu,
                           const double* sigma, const double* phi, const AttentionOptions& options,
                           int matrix_sequences) {
  return specs::visit(spec, [&](auto s) {
    return run<decltype(s)>(batch, tokens, covariance, mu, sigma, phi, options, matrix_sequences);
  });
}

}  // namespace gauge_attn_study
