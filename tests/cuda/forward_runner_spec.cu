// tests/cuda/forward_runner_spec.cu: one named spec's share of forward_runner.cu (the forward and
// the pair-by-pair path through gpu_runner.hpp's interface), compiled once per spec with
// GAUGE_ATTN_RUNNER_SPEC naming it (specs::Upstream, …, or WideHeads), so that the specs' kernels compile in
// parallel (tests/cuda/CMakeLists.txt, scripts/gpu_check.sh); forward_runner_spec.hpp declares them.
#include <gauge_attn/cuda/forward.cuh>
#include <gauge_attn/cuda/pairwise.cuh>
#include <gauge_attn/cuda/statistics.cuh>
#include <gauge_attn/specs.hpp>

#include <thrust/device_vector.h>

#include <type_traits>
#include <utility>

#include "forward_runner_spec.hpp"

#ifndef GAUGE_ATTN_RUNNER_SPEC
#error "compile with -DGAUGE_ATTN_RUNNER_SPEC=<a spec type, e.g. specs::Upstream>"
#endif

namespace gauge_attn::testing {

// What the attention kernel assumes of its layout (cuda/layout.cuh), checked at compile time for
// this spec: the build fails, with or without a GPU, where a change breaks it.
namespace layout_checks {
using Spec = GAUGE_ATTN_RUNNER_SPEC;
template <int... Ls>
constexpr bool key_rows_conflict_free(std::integer_sequence<int, Ls...>) {
  // Tensor-core heads read columns 2t, 2t + 1 of rows g … g + 3 per half-warp in 8-byte loads: the rows
  // must be ≡ 8 (mod 16) floats to fall in 32 distinct banks, and hold the padded width P8.
  return (... && (!gpu::uses_tensor_cores(LiftedWidths<2 * Ls + 1>::lifted, false) ||
                  (gpu::TensorCoreTileShape<2 * Ls + 1>::key_smem % 16 == 8 &&
                   gpu::TensorCoreTileShape<2 * Ls + 1>::key_smem >= gpu::TensorCoreTileShape<2 * Ls + 1>::P8)));
}
static_assert(key_rows_conflict_free(typename Spec::spins{}), "tensor-core key rows: 8-byte loads without bank conflicts");
// The kernel's block bound: as many blocks as its shared memory lets fit on an SM (228 KB, 1 KB
// reserved per block), at most four: two for ℓ8 + 2×ℓ4 (101 KB a block), one for single-ℓ9.
template <class Score, bool Covariance>
constexpr int blocks = gpu::attention_min_blocks<Spec, Score, Covariance>();
template <class Score, bool Covariance>
constexpr int block_bytes = gpu::attention_spec_smem_bytes<Score, Covariance>(typename Spec::spins{}) + 1024;
static_assert(blocks<float, false> * block_bytes<float, false> <= 228 * 1024 &&
                  blocks<double, false> * block_bytes<double, false> <= 228 * 1024,
              "the block bound fits the shared memory");
static_assert(blocks<float, false> == (std::is_same_v<Spec, WideHeads> ? 2 : std::is_same_v<Spec, specs::SingleL9> ? 1 : 4),
              "the block bound of the named specs (docs/cuda.md)");
}  // namespace layout_checks

template <class Spec>
std::string vector_size_error_of(const std::string& output) {
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

template <class Spec>
GpuRun run_forward_of(int batch, int tokens, Covariance covariance, const std::vector<float>& mu,
                      const std::vector<float>& sigma, const std::vector<float>& phi, const AttentionOptions& options,
                      bool covariance_message, bool statistics) {
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
}

template <class Spec, class T>
GpuPairwiseRun pairwise_of(int batch, int tokens, Covariance covariance, const std::vector<double>& mu,
                        const std::vector<double>& sigma, const std::vector<double>& phi,
                        const AttentionOptions& options, bool covariance_message, bool materialised) {
  const std::size_t rows = std::size_t(batch) * tokens, H = Spec::num_heads;
  auto device = [](const std::vector<double>& v) { return thrust::device_vector<T>(v.begin(), v.end()); };
  const thrust::device_vector<T> d_mu = device(mu), d_sigma = device(sigma), d_phi = device(phi);
  const gpu::DeviceBeliefsOf<T> q =
      gpu::device_beliefs(batch, tokens, int(Spec::embed_dim), covariance, d_mu, d_sigma, d_phi);
  gpu::PairwiseVectorsOf<T> out;
  if (materialised) {
    out.kl.resize(rows * H * tokens);
    out.beta.resize(out.kl.size());
  }
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

using RunnerSpec = GAUGE_ATTN_RUNNER_SPEC;
template std::string vector_size_error_of<RunnerSpec>(const std::string&);
template GpuRun run_forward_of<RunnerSpec>(int, int, Covariance, const std::vector<float>&, const std::vector<float>&,
                                           const std::vector<float>&, const AttentionOptions&, bool, bool);
#ifndef GAUGE_ATTN_RUNNER_FORWARD_ONLY  // the pair-by-pair path of the named specs
template GpuPairwiseRun pairwise_of<RunnerSpec, double>(int, int, Covariance, const std::vector<double>&,
                                                        const std::vector<double>&, const std::vector<double>&,
                                                        const AttentionOptions&, bool, bool);
#endif
#ifdef GAUGE_ATTN_RUNNER_FLOAT_PAIRWISE  // the float pair-by-pair path: the upstream spec's file only
template GpuPairwiseRun pairwise_of<RunnerSpec, float>(int, int, Covariance, const std::vector<double>&,
                                                       const std::vector<double>&, const std::vector<double>&,
                                                       const AttentionOptions&, bool, bool);
#endif

}  // namespace gauge_attn::testing
