// device.cpp: the only place that knows whether the tool was built with CUDA (GAUGE_ATTN_STUDY_CUDA).
#include "device.hpp"

#if GAUGE_ATTN_STUDY_CUDA
#include "study_gpu.hpp"
#endif

#if defined(_OPENMP)
#include <omp.h>
#endif

#include <utility>

namespace gauge_attn_study {

using namespace gauge_attn;

const char* to_string(Device d) {
  switch (d) {
    case Device::cpu:
      return "cpu";
    case Device::cuda:
      return "cuda";
    case Device::automatic:
      break;
  }
  return "auto";
}

namespace {

DeviceChoice cpu() {
#if defined(_OPENMP)
  const int threads = omp_get_max_threads();
#else
  const int threads = 1;
#endif
  return {Device::cpu, std::to_string(threads) + (threads == 1 ? " thread" : " threads"),
          study::cpu_attention<double>};
}

#if GAUGE_ATTN_STUDY_CUDA
/// The attention through the GPU path, as the AttentionResult that attention_forward gives: the KL
/// statistics from the KL of sequence 0 (downloaded for them alone when no matrices are asked for).
AttentionResult<double> gpu_attention_result(const std::string& spec, const BeliefView<double>& q,
                                             const AttentionOptions& options) {
  const int sequences = options.return_matrices ? q.batch : options.kl_statistics ? 1 : 0;
  GpuAttention g =
      gpu_attention(spec, q.batch, q.tokens, q.covariance, q.mu, q.sigma, q.phi, options, sequences);
  AttentionResult<double> r;
  r.batch = q.batch;
  r.tokens = q.tokens;
  r.embed_dim = q.embed_dim;
  r.num_heads = int(g.row_statistics.size()) / q.batch;
  r.covariance = q.covariance;
  r.mu = std::move(g.mu);
  r.row_statistics = std::move(g.row_statistics);
  if (options.kl_statistics) {
    const int n = detail::lengths_per_sequence(options, q.batch, q.tokens)[0];
    r.kl_statistics = detail::head_averaged_kl_statistics(n, r.num_heads, [&](int h, int i, int j) {
      return g.kl[(std::size_t(h) * q.tokens + i) * q.tokens + j];
    });
  }
  if (options.return_matrices) {
    r.kl = std::move(g.kl);
    r.beta = std::move(g.beta);
  }
  return r;
}
#endif

}  // namespace

DeviceChoice choose_device(Device requested) {
  if (requested == Device::cpu) return cpu();
#if GAUGE_ATTN_STUDY_CUDA
  const GpuProbe gpu = probe_gpu();
  if (gpu.found) return {Device::cuda, gpu.description, gpu_attention_result};
  detail::require(requested == Device::automatic, "--device", "cuda: no CUDA GPU found (", gpu.description,
                  "); use --device cpu or auto");
#else
  detail::require(requested == Device::automatic, "--device",
                  "cuda: this gauge_attn_study was built without CUDA (configure with nvcc present and "
                  "GAUGE_ATTN_ENABLE_CUDA=ON); use --device cpu or auto");
#endif
  return cpu();
}

}  // namespace gauge_attn_study
