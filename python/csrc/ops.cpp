// python/csrc/ops.cpp: the PyTorch operators of gauge_attn and their CPU kernels.
//
//   <namespace>::kl_attention           attention_forward<Spec>  -> (mu_out, sigma_out, energy, lse)
//   <namespace>::kl_attention_backward  attention_backward<Spec> -> (grad_mu, grad_sigma, grad_phi, grad_kappa)
//   <namespace>::attention_matrices     attention_forward<Spec> with return_matrices -> (beta, kl), (B, H, N, N);
//                                       CPU only, no autograd: for inspecting small N
//
// The schemas are defined here once, with the CPU kernels; ops_cuda.cu registers the CUDA kernels
// for the same operators. The fake (meta) kernels and the autograd formula are registered from
// Python (gauge_attn/__init__.py), as PyTorch recommends for C++ operators. The spec units
// (registry.h) hold the compiled specs; a kernel finds its spec there by name.
//
// The forward returns the row log-sum-exp (exact mode) beside its outputs, and the backward takes
// all four back: the backward operator rebuilds the forward's result from them, so it keeps no
// state between the two calls and torch.compile can trace both.

#ifdef GAUGE_ATTN_PYTHON_MODULE
// gauge_attn._C is built against CPython's limited API (one wheel for every Python >= 3.10); it
// uses Python only for the module-init function at the end of this file.
#include <Python.h>
#endif

#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <algorithm>

#include "cpu_kernels.h"
#include "ops.h"

namespace gauge_attn_torch {
inline namespace GAUGE_ATTN_LIBRARY_TAG {

Call make_call(GAUGE_ATTN_OP_PARAMETERS) {
  TORCH_CHECK_TYPE(mu.scalar_type() == at::kFloat || mu.scalar_type() == at::kDouble,
                   "gauge_attn: 'mu' must be float32 or float64, got ", mu.scalar_type());
  TORCH_CHECK_TYPE(sigma.scalar_type() == mu.scalar_type() && phi.scalar_type() == mu.scalar_type(),
                   "gauge_attn: 'sigma' and 'phi' must have the dtype of 'mu' (", mu.scalar_type(), "), got ",
                   sigma.scalar_type(), " and ", phi.scalar_type());
  TORCH_CHECK_VALUE(sigma.device() == mu.device() && phi.device() == mu.device(),
                    "gauge_attn: 'sigma' and 'phi' must be on the device of 'mu' (", mu.device(), "), got ",
                    sigma.device(), " and ", phi.device());
  TORCH_CHECK_VALUE(mu.dim() == 3, "gauge_attn: 'mu' must be (B, N, E), got shape ", mu.sizes());
  const int64_t B = mu.size(0), N = mu.size(1), E = mu.size(2);
  const bool diagonal = sigma.dim() == 3;
  TORCH_CHECK_VALUE(diagonal ? sigma.sizes() == mu.sizes()
                             : sigma.dim() == 4 && sigma.sizes() == at::IntArrayRef({B, N, E, E}),
                    "gauge_attn: 'sigma' must be (B, N, E) or (B, N, E, E) with (B, N, E) = ", mu.sizes(), ", got ",
                    sigma.sizes());
  TORCH_CHECK_VALUE(phi.sizes() == at::IntArrayRef({B, N, 3}), "gauge_attn: 'phi' must be (B, N, 3) = (", B, ", ",
                    N, ", 3), got ", phi.sizes());
  TORCH_CHECK_VALUE(kappa.dim() == 1 && at::isFloatingType(kappa.scalar_type()),
                    "gauge_attn: 'kappa' must be a 1-d floating tensor (1 or H values), got ", kappa.sizes(), " ",
                    kappa.scalar_type());
  TORCH_CHECK_VALUE(mode == "exact" || mode == "upstream", "gauge_attn: 'mode' must be 'exact' or 'upstream', got '",
                    mode, "'");
  TORCH_CHECK_VALUE(exponential == "pade" || exponential == "taylor4",
                    "gauge_attn: 'exponential' must be 'pade' or 'taylor4', got '", exponential, "'");

  Call c{mu.contiguous(), sigma.contiguous(), phi.contiguous(), std::string(spec), {}, {}, B, N, E, check_inputs};
  c.covariance = diagonal ? gauge_attn::Covariance::diagonal : gauge_attn::Covariance::full;
  auto& o = c.options;
  // The library takes κ and the lengths as host values (launch parameters on the GPU).
  const Tensor k = kappa.to(at::kCPU, at::kDouble).contiguous();
  o.kappa.assign(k.data_ptr<double>(), k.data_ptr<double>() + k.numel());
  if (valid_lengths) {
    const Tensor& v = *valid_lengths;
    TORCH_CHECK_VALUE(v.dim() == 1 && v.size(0) == B && !at::isFloatingType(v.scalar_type()),
                      "gauge_attn: 'valid_lengths' must be an integer tensor of shape (B,) = (", B, ",), got ",
                      v.sizes(), " ", v.scalar_type());
    const Tensor l = v.to(at::kCPU, at::kLong).contiguous();
    o.valid_lengths.assign(l.data_ptr<int64_t>(), l.data_ptr<int64_t>() + B);
  }
  o.mode = mode == "exact" ? gauge_attn::Mode::exact : gauge_attn::Mode::upstream;
  o.exponential = exponential == "pade" ? gauge_attn::UpstreamExponential::pade : gauge_attn::UpstreamExponential::taylor4;
  o.mask.causal = causal;
  o.mask.mask_self = mask_self;
  o.mask.window = int(window);
  o.mask.alibi_slope = alibi_slope;
  o.identity_transport = identity_transport;
  o.covariance_message = covariance_message;
  o.attention_energy = attention_energy;
  return c;
}

Tensor kappa_gradient(const Tensor& per_head, const Tensor& kappa) {
  const Tensor g = per_head.to(kappa.options());
  return kappa.numel() == 1 ? g.sum().reshape({1}) : g;
}

namespace {

template <class Scalar>
gauge_attn::BeliefView<Scalar> view(const Call& c) {
  return {int(c.batch), int(c.tokens), int(c.embed_dim), c.covariance, c.mu.data_ptr<Scalar>(),
          c.sigma.data_ptr<Scalar>(), c.phi.data_ptr<Scalar>()};
}

/// A new tensor of `shape` and `options` holding `values`; an empty vector gives a (0,) tensor
/// (an output that was not requested).
template <class T>
Tensor to_tensor(const std::vector<T>& values, at::IntArrayRef shape, const at::TensorOptions& options) {
  if (values.empty()) return at::empty({0}, options);
  Tensor t = at::empty(shape, options.dtype(c10::CppTypeToScalarType<T>::value));
  std::copy(values.begin(), values.end(), t.data_ptr<T>());
  return t.to(options.dtype());
}

Outputs kl_attention_cpu(GAUGE_ATTN_OP_PARAMETERS) {
  const Call c = make_call(GAUGE_ATTN_OP_PASS);
  const CpuKernels& k = kernels_of<CpuKernels>(c, "CPU");
  return library_call([&] {
    return AT_DISPATCH_FLOATING_TYPES(c.mu.scalar_type(), "gauge_attn", [&]() -> Outputs {
      const auto r = k.passes<scalar_t>().forward(view<scalar_t>(c), c.options);
      const auto o = c.mu.options();
      const int64_t B = c.batch, N = c.tokens, H = k.num_heads;
      return {to_tensor(r.mu, c.mu.sizes(), o), to_tensor(r.sigma, c.sigma.sizes(), o),
              to_tensor(r.energy, {B, H, N}, o), to_tensor(r.lse, {B, H, N}, o)};
    });
  });
}

Outputs kl_attention_backward_cpu(const c10::optional<Tensor>& grad_mu, const c10::optional<Tensor>& grad_sigma,
                                  const c10::optional<Tensor>& grad_energy, const Tensor& mu_out,
                                  const Tensor& sigma_out, const Tensor& energy, const Tensor& lse,
                                  GAUGE_ATTN_OP_PARAMETERS) {
  const Call c = make_call(GAUGE_ATTN_OP_PASS);
  const CpuKernels& k = kernels_of<CpuKernels>(c, "CPU");
  return library_call([&] {
    return AT_DISPATCH_FLOATING_TYPES(c.mu.scalar_type(), "gauge_attn", [&]() -> Outputs {
      using Scalar = scalar_t;
      // The forward's result, as far as the backward reads it (attention_backward checks the sizes).
      gauge_attn::AttentionResult<Scalar> r;
      r.batch = int(c.batch);
      r.tokens = int(c.tokens);
      r.embed_dim = int(c.embed_dim);
      r.num_heads = k.num_heads;
      r.covariance = c.covariance;
      auto fill = [](std::vector<Scalar>& v, const Tensor& t) {
        const Tensor u = t.to(at::kCPU, c10::CppTypeToScalarType<Scalar>::value).contiguous();
        v.assign(u.data_ptr<Scalar>(), u.data_ptr<Scalar>() + u.numel());
      };
      fill(r.mu, mu_out);
      fill(r.sigma, sigma_out);
      fill(r.energy, energy);
      fill(r.lse, lse);
      std::vector<Tensor> keep;  // owns the contiguous copies the pointers below point into
      gauge_attn::OutputGradients<Scalar> g;
      g.mu = incoming<Scalar>(grad_mu, mu_out, "grad_mu", keep);
      g.sigma = incoming<Scalar>(grad_sigma, sigma_out, "grad_sigma", keep);
      g.energy = incoming<Scalar>(grad_energy, energy, "grad_energy", keep);
      const auto grads = k.passes<Scalar>().backward(view<Scalar>(c), c.options, r, g);
      const auto o = c.mu.options();
      return {to_tensor(grads.mu, c.mu.sizes(), o), to_tensor(grads.sigma, c.sigma.sizes(), o),
              to_tensor(grads.phi, c.phi.sizes(), o),
              kappa_gradient(to_tensor(grads.kappa, {k.num_heads}, o), kappa)};
    });
  });
}

std::tuple<Tensor, Tensor> attention_matrices_cpu(GAUGE_ATTN_OP_PARAMETERS) {
  Call c = make_call(GAUGE_ATTN_OP_PASS);
  const CpuKernels& k = kernels_of<CpuKernels>(c, "CPU");
  c.options.return_matrices = true;
  c.options.covariance_message = c.options.attention_energy = false;  // only β and KL are returned
  return library_call([&] {
    return AT_DISPATCH_FLOATING_TYPES(c.mu.scalar_type(), "gauge_attn", [&]() -> std::tuple<Tensor, Tensor> {
      const auto r = k.passes<scalar_t>().forward(view<scalar_t>(c), c.options);
      const auto o = c.mu.options();
      const int64_t B = c.batch, N = c.tokens, H = k.num_heads;
      return {to_tensor(r.beta, {B, H, N, N}, o), to_tensor(r.kl, {B, H, N, N}, o)};
    });
  });
}

}  // namespace
}  // namespace GAUGE_ATTN_LIBRARY_TAG
}  // namespace gauge_attn_torch

GAUGE_ATTN_TORCH_LIBRARY(GAUGE_ATTN_NAMESPACE, m) {
  m.def("kl_attention(" GAUGE_ATTN_OP_ARGUMENTS ") -> (Tensor mu_out, Tensor sigma_out, Tensor energy, Tensor lse)");
  m.def("kl_attention_backward(Tensor? grad_mu, Tensor? grad_sigma, Tensor? grad_energy, Tensor mu_out, "
        "Tensor sigma_out, Tensor energy, Tensor lse, " GAUGE_ATTN_OP_ARGUMENTS
        ") -> (Tensor grad_mu, Tensor grad_sigma, Tensor grad_phi, Tensor grad_kappa)");
  m.def("attention_matrices(" GAUGE_ATTN_OP_ARGUMENTS ") -> (Tensor beta, Tensor kl)");
}

GAUGE_ATTN_TORCH_LIBRARY_IMPL(GAUGE_ATTN_NAMESPACE, CPU, m) {
  m.impl("kl_attention", &gauge_attn_torch::kl_attention_cpu);
  m.impl("kl_attention_backward", &gauge_attn_torch::kl_attention_backward_cpu);
  m.impl("attention_matrices", &gauge_attn_torch::attention_matrices_cpu);
}

#ifdef GAUGE_ATTN_PYTHON_MODULE
// `import gauge_attn._C` loads this library, which runs the registrations above; the module
// itself is empty. (A just-in-time build is loaded with torch.ops.load_library instead.)
extern "C" PyObject* PyInit__C(void) {
  static PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module);
}
#endif
