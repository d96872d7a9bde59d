// python/csrc/ops_cuda.cu: the CUDA kernels of kl_attention and kl_attention_backward (schemas in
// ops.cpp): the library's fused exact-mode forward and backward (cuda/include/gauge_attn/cuda/
// forward.cuh, backward.cuh), float32, on torch's current stream of the inputs' device. The spec
// units (cuda_spec.cuh) hold the kernels per spec; this unit turns tensors into device pointers.
// Outputs and copies are allocated by torch's caching allocator; the kernels' own workspace is
// kept per device and stream (cuda_spec.cuh).

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <vector>

#include "cuda_kernels.h"
#include "ops.h"

namespace gauge_attn_torch {
inline namespace GAUGE_ATTN_LIBRARY_TAG {
namespace {

namespace gpu = gauge_attn::gpu;

/// The CUDA kernels of the call's spec, once the call is checked to be what they compute: float32
/// beliefs on a CUDA device, the exact mode. (make_call has put μ, Σ and φ on one device; a CUDA κ
/// or valid_lengths beside CPU beliefs also lands here.)
const CudaKernels& cuda_kernels_of(const Call& c) {
  TORCH_CHECK_VALUE(c.mu.is_cuda(), "gauge_attn: 'mu', 'sigma' and 'phi' are on ", c.mu.device(),
                    " but 'kappa' or 'valid_lengths' is a CUDA tensor: put the beliefs on the GPU, or κ and the "
                    "lengths on the CPU");
  TORCH_CHECK_TYPE(c.mu.scalar_type() == at::kFloat, "gauge_attn: 'mu' is ", c.mu.scalar_type(), " on ",
                   c.mu.device(), ", but the CUDA kernels compute in float32 only: pass float32 CUDA tensors, or "
                   "CPU tensors for float64");
  TORCH_CHECK_VALUE(c.options.mode == gauge_attn::Mode::exact, "gauge_attn: 'mode' is 'upstream', which runs on "
                    "the CPU only (the CUDA kernels compute the exact mode): pass CPU tensors for mode='upstream'");
  return kernels_of<CudaKernels>(c, "CUDA");
}

float* data_or_null(Tensor& t) { return t.numel() ? t.data_ptr<float>() : nullptr; }

gpu::DeviceBeliefs device_beliefs(const Call& c) {
  return {int(c.batch), int(c.tokens), int(c.embed_dim), c.covariance, c.mu.data_ptr<float>(),
          c.sigma.data_ptr<float>(), c.phi.data_ptr<float>()};
}

Outputs kl_attention_cuda(GAUGE_ATTN_OP_PARAMETERS) {
  const Call c = make_call(GAUGE_ATTN_OP_PASS);
  const CudaKernels& k = cuda_kernels_of(c);
  const c10::cuda::CUDAGuard guard(c.mu.device());
  const int64_t B = c.batch, N = c.tokens, H = k.num_heads;
  const auto o = c.mu.options();
  Tensor mu_out = at::empty(c.mu.sizes(), o);
  Tensor sigma_out = c.options.covariance_message ? at::empty(c.sigma.sizes(), o) : at::empty({0}, o);
  Tensor energy = c.options.attention_energy ? at::empty({B, H, N}, o) : at::empty({0}, o);
  Tensor lse = at::empty({B, H, N}, o);  // always: the backward recomputes β from it
  gpu::DeviceOutputs out;
  out.mu = mu_out.data_ptr<float>();
  out.sigma = data_or_null(sigma_out);
  out.energy = data_or_null(energy);
  out.lse = lse.data_ptr<float>();
  library_call([&] { k.forward(device_beliefs(c), c.options, out, c.check_inputs, at::cuda::getCurrentCUDAStream()); });
  return {mu_out, sigma_out, energy, lse};
}

Outputs kl_attention_backward_cuda(const c10::optional<Tensor>& grad_mu, const c10::optional<Tensor>& grad_sigma,
                                   const c10::optional<Tensor>& grad_energy, const Tensor& mu_out,
                                   const Tensor& sigma_out, const Tensor& energy, const Tensor& lse,
                                   GAUGE_ATTN_OP_PARAMETERS) {
  const Call c = make_call(GAUGE_ATTN_OP_PASS);
  const CudaKernels& k = cuda_kernels_of(c);
  const c10::cuda::CUDAGuard guard(c.mu.device());
  const int64_t B = c.batch, N = c.tokens, H = k.num_heads;
  const auto o = c.mu.options();
  // The saved outputs go to the kernels as raw pointers: their shapes are checked here. Σ^agg and
  // the energy are (0,) when the forward did not produce them.
  std::vector<Tensor> keep;  // owns the contiguous copies the pointers below point into
  gpu::DeviceSaved saved;
  saved.mu = kept<float>(mu_out, c.mu.sizes(), "mu_out", o, keep);
  saved.lse = kept<float>(lse, {B, H, N}, "lse", o, keep);
  if (sigma_out.numel()) saved.sigma = kept<float>(sigma_out, c.sigma.sizes(), "sigma_out", o, keep);
  if (energy.numel()) saved.energy = kept<float>(energy, {B, H, N}, "energy", o, keep);
  gpu::DeviceOutputGradients in;
  in.mu = incoming<float>(grad_mu, mu_out, "grad_mu", keep);
  in.sigma = incoming<float>(grad_sigma, sigma_out, "grad_sigma", keep);
  in.energy = incoming<float>(grad_energy, energy, "grad_energy", keep);
  Tensor g_mu = at::empty(c.mu.sizes(), o), g_sigma = at::empty(c.sigma.sizes(), o),
         g_phi = at::empty(c.phi.sizes(), o), g_kappa = at::empty({H}, o);
  const gpu::DeviceGradients grads{g_mu.data_ptr<float>(), g_sigma.data_ptr<float>(), g_phi.data_ptr<float>(),
                                   g_kappa.data_ptr<float>()};
  library_call([&] {
    k.backward(device_beliefs(c), c.options, saved, in, grads, c.check_inputs, at::cuda::getCurrentCUDAStream());
  });
  return {g_mu, g_sigma, g_phi, kappa_gradient(g_kappa, kappa)};
}

}  // namespace
}  // namespace GAUGE_ATTN_LIBRARY_TAG
}  // namespace gauge_attn_torch

GAUGE_ATTN_TORCH_LIBRARY_IMPL(GAUGE_ATTN_NAMESPACE, CUDA, m) {
  m.impl("kl_attention", &gauge_attn_torch::kl_attention_cuda);
  m.impl("kl_attention_backward", &gauge_attn_torch::kl_attention_backward_cuda);
}
