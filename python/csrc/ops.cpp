// python/csrc/ops.cpp: the PyTorch operators of gauge_attn, compiled from the library's headers.
//
//   gauge_attn::kl_attention           attention_forward<Spec>  -> (mu_out, sigma_out, energy, lse)
//   gauge_attn::kl_attention_backward  attention_backward<Spec> -> (grad_mu, grad_sigma, grad_phi, grad_kappa)
//
// The schemas are defined here once; the kernels below are registered for the CPU dispatch key
// alone, so a CUDA kernel joins them with a TORCH_LIBRARY_IMPL for the CUDA key (see the end of
// this file) and nothing else changes. The fake (meta) kernels and the autograd formula are registered from Python
// (gauge_attn/__init__.py), as PyTorch recommends for C++ operators.
//
// The forward returns the row log-sum-exp (exact mode) beside its outputs, and the backward takes
// all four back: the backward operator rebuilds the AttentionResult from them, so it keeps no state
// between the two calls and torch.compile can trace both.
//
// Which specs a build holds: the package's extension gauge_attn._C, the five named specs of
// gauge_attn::specs, in the namespace gauge_attn. For any other spec the Python package compiles
// this same file just in time (gauge_attn/__init__.py, _build_spec) from a generated source that
// defines GAUGE_ATTN_SPEC (the spec's IrrepSpec<...> type), GAUGE_ATTN_SPEC_NAME (its "HxL+..."
// string) and GAUGE_ATTN_NAMESPACE (one namespace per spec, as two libraries cannot share one).

#ifndef GAUGE_ATTN_SPEC
// gauge_attn._C is built against CPython's limited API (one wheel for every Python >= 3.9); it
// uses Python only for the module-init function at the end of this file.
#include <Python.h>
#endif

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <gauge_attn/attention.hpp>
#include <gauge_attn/backward.hpp>
#include <gauge_attn/specs.hpp>

#include <algorithm>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

namespace {

using at::Tensor;
using Outputs = std::tuple<Tensor, Tensor, Tensor, Tensor>;

/// Calls f(Spec{}) with the compile-time spec of a name; throws InvalidArgument for a name this
/// build does not hold.
template <class F>
decltype(auto) visit_spec(std::string_view name, F&& f) {
#ifdef GAUGE_ATTN_SPEC
  if (name != GAUGE_ATTN_SPEC_NAME)
    throw gauge_attn::InvalidArgument("spec", gauge_attn::detail::str("this build holds the spec '",
                                                                     GAUGE_ATTN_SPEC_NAME, "' alone, not '", name, "'"));
  return f(GAUGE_ATTN_SPEC{});
#else
  return gauge_attn::specs::visit(name, std::forward<F>(f));
#endif
}

// The arguments that both operators end with (the forward's whole list). Both schemas and both
// kernels spell them in this order; the Python side passes them through as one tuple.
#define GAUGE_ATTN_OP_ARGUMENTS                                                                              \
  "Tensor mu, Tensor sigma, Tensor phi, Tensor kappa, Tensor? valid_lengths, str spec, str mode, "           \
  "str exponential, bool causal, bool mask_self, int window, float alibi_slope, bool identity_transport, " \
  "bool covariance_message, bool attention_energy"

/// The shared arguments, checked and turned into the library's terms.
struct Call {
  Tensor mu, sigma, phi;  // contiguous
  std::string spec;
  gauge_attn::AttentionOptions options;
  gauge_attn::Covariance covariance = gauge_attn::Covariance::diagonal;
  int64_t batch = 0, tokens = 0, embed_dim = 0;

  template <class Scalar>
  gauge_attn::BeliefView<Scalar> view() const {
    return {int(batch), int(tokens), int(embed_dim), covariance, mu.data_ptr<Scalar>(), sigma.data_ptr<Scalar>(),
            phi.data_ptr<Scalar>()};
  }
};

// Shapes and dtypes are checked here as well as in Python: the kernel hands raw pointers to the
// library, which trusts them, so a direct call of the operator with bad shapes must stop here.
// Values (variances > 0, κ > 0, finite inputs, SPD blocks, lengths in range) the library checks.
Call make_call(const Tensor& mu, const Tensor& sigma, const Tensor& phi, const Tensor& kappa,
               const c10::optional<Tensor>& valid_lengths, c10::string_view spec, c10::string_view mode,
               c10::string_view exponential, bool causal, bool mask_self, int64_t window, double alibi_slope,
               bool identity_transport, bool covariance_message, bool attention_energy) {
  TORCH_CHECK_TYPE(mu.scalar_type() == at::kFloat || mu.scalar_type() == at::kDouble,
                   "gauge_attn: 'mu' must be float32 or float64, got ", mu.scalar_type());
  TORCH_CHECK_TYPE(sigma.scalar_type() == mu.scalar_type() && phi.scalar_type() == mu.scalar_type(),
                   "gauge_attn: 'sigma' and 'phi' must have the dtype of 'mu' (", mu.scalar_type(), "), got ",
                   sigma.scalar_type(), " and ", phi.scalar_type());
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

  Call c{mu.contiguous(), sigma.contiguous(), phi.contiguous(), std::string(spec), {}, {}, B, N, E};
  c.covariance = diagonal ? gauge_attn::Covariance::diagonal : gauge_attn::Covariance::full;
  auto& o = c.options;
  const Tensor k = kappa.to(at::kDouble).contiguous();
  o.kappa.assign(k.data_ptr<double>(), k.data_ptr<double>() + k.numel());
  if (valid_lengths) {
    const Tensor& v = *valid_lengths;
    TORCH_CHECK_VALUE(v.dim() == 1 && v.size(0) == B && !at::isFloatingType(v.scalar_type()),
                      "gauge_attn: 'valid_lengths' must be an integer tensor of shape (B,) = (", B, ",), got ",
                      v.sizes(), " ", v.scalar_type());
    const Tensor l = v.to(at::kLong).contiguous();
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

/// A new tensor of `shape` and `options` holding `values`; an empty vector gives a (0,) tensor
/// (an output that was not requested).
template <class T>
Tensor to_tensor(const std::vector<T>& values, at::IntArrayRef shape, const at::TensorOptions& options) {
  if (values.empty()) return at::empty({0}, options);
  Tensor t = at::empty(shape, options.dtype(c10::CppTypeToScalarType<T>::value));
  std::copy(values.begin(), values.end(), t.data_ptr<T>());
  return t.to(options.dtype());
}

/// The library's pointer to the incoming gradient of `output`: null (a zero gradient) when the
/// caller passed none or the output is empty (not requested); else into a contiguous copy in `keep`.
template <class Scalar>
const Scalar* incoming(const c10::optional<Tensor>& grad, const Tensor& output, const char* name,
                       std::vector<Tensor>& keep) {
  if (!grad || output.numel() == 0) return nullptr;
  TORCH_CHECK_VALUE(grad->sizes() == output.sizes(), "gauge_attn: '", name, "' must have the shape of its output ",
                    output.sizes(), ", got ", grad->sizes());
  keep.push_back(grad->to(c10::CppTypeToScalarType<Scalar>::value).contiguous());
  return keep.back().data_ptr<Scalar>();
}

/// Calls f(Spec{}, Scalar{}) for the call's spec and dtype: the one place where a spec name becomes
/// a compile-time spec. The library's InvalidArgument, which names the argument, becomes a Python
/// ValueError.
template <class F>
Outputs dispatch(const Call& c, F&& f) {
  try {
    return AT_DISPATCH_FLOATING_TYPES(c.mu.scalar_type(), "gauge_attn", [&] {
      return visit_spec(c.spec, [&](auto spec) { return f(spec, scalar_t(0)); });
    });
  } catch (const gauge_attn::InvalidArgument& e) {
    C10_THROW_ERROR(ValueError, e.what());
  }
}

Outputs kl_attention_cpu(const Tensor& mu, const Tensor& sigma, const Tensor& phi, const Tensor& kappa,
                         const c10::optional<Tensor>& valid_lengths, c10::string_view spec, c10::string_view mode,
                         c10::string_view exponential, bool causal, bool mask_self, int64_t window, double alibi_slope,
                         bool identity_transport, bool covariance_message, bool attention_energy) {
  const Call c = make_call(mu, sigma, phi, kappa, valid_lengths, spec, mode, exponential, causal, mask_self, window,
                           alibi_slope, identity_transport, covariance_message, attention_energy);
  return dispatch(c, [&](auto spec, auto scalar) -> Outputs {
    using Spec = decltype(spec);
    using Scalar = decltype(scalar);
    const auto r = gauge_attn::attention_forward<Spec>(c.view<Scalar>(), c.options);
    const auto o = c.mu.options();
    const int64_t B = c.batch, N = c.tokens, H = Spec::num_heads;
    return {to_tensor(r.mu, c.mu.sizes(), o), to_tensor(r.sigma, c.sigma.sizes(), o), to_tensor(r.energy, {B, H, N}, o),
            to_tensor(r.lse, {B, H, N}, o)};
  });
}

Outputs kl_attention_backward_cpu(const c10::optional<Tensor>& grad_mu, const c10::optional<Tensor>& grad_sigma,
                                  const c10::optional<Tensor>& grad_energy, const Tensor& mu_out,
                                  const Tensor& sigma_out, const Tensor& energy, const Tensor& lse, const Tensor& mu,
                                  const Tensor& sigma, const Tensor& phi, const Tensor& kappa,
                                  const c10::optional<Tensor>& valid_lengths, c10::string_view spec,
                                  c10::string_view mode, c10::string_view exponential, bool causal, bool mask_self,
                                  int64_t window, double alibi_slope, bool identity_transport,
                                  bool covariance_message, bool attention_energy) {
  const Call c = make_call(mu, sigma, phi, kappa, valid_lengths, spec, mode, exponential, causal, mask_self, window,
                           alibi_slope, identity_transport, covariance_message, attention_energy);
  return dispatch(c, [&](auto spec, auto scalar) -> Outputs {
    using Spec = decltype(spec);
    using Scalar = decltype(scalar);
    // The forward's result, as far as the backward reads it (attention_backward checks the sizes).
    gauge_attn::AttentionResult<Scalar> r;
    r.batch = int(c.batch);
    r.tokens = int(c.tokens);
    r.embed_dim = int(c.embed_dim);
    r.num_heads = Spec::num_heads;
    r.covariance = c.covariance;
    auto fill = [](std::vector<Scalar>& v, const Tensor& t) {
      const Tensor u = t.to(c10::CppTypeToScalarType<Scalar>::value).contiguous();
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
    const auto grads = gauge_attn::attention_backward<Spec>(c.view<Scalar>(), c.options, r, g);
    const auto o = c.mu.options();
    // One κ for every head receives the sum of the per-head gradients.
    Tensor grad_kappa = to_tensor(grads.kappa, {Spec::num_heads}, kappa.options());
    if (kappa.numel() == 1) grad_kappa = grad_kappa.sum().reshape({1});
    return {to_tensor(grads.mu, c.mu.sizes(), o), to_tensor(grads.sigma, c.sigma.sizes(), o),
            to_tensor(grads.phi, c.phi.sizes(), o), grad_kappa};
  });
}

}  // namespace

#ifndef GAUGE_ATTN_SPEC
#define GAUGE_ATTN_NAMESPACE gauge_attn
#endif
// TORCH_LIBRARY pastes and stringifies its namespace argument as written: one more macro level
// expands GAUGE_ATTN_NAMESPACE first.
#define GAUGE_ATTN_LIBRARY(ns, m) TORCH_LIBRARY(ns, m)
#define GAUGE_ATTN_LIBRARY_IMPL(ns, key, m) TORCH_LIBRARY_IMPL(ns, key, m)

GAUGE_ATTN_LIBRARY(GAUGE_ATTN_NAMESPACE, m) {
  m.def("kl_attention(" GAUGE_ATTN_OP_ARGUMENTS ") -> (Tensor mu_out, Tensor sigma_out, Tensor energy, Tensor lse)");
  m.def("kl_attention_backward(Tensor? grad_mu, Tensor? grad_sigma, Tensor? grad_energy, Tensor mu_out, "
        "Tensor sigma_out, Tensor energy, Tensor lse, " GAUGE_ATTN_OP_ARGUMENTS
        ") -> (Tensor grad_mu, Tensor grad_sigma, Tensor grad_phi, Tensor grad_kappa)");
}

GAUGE_ATTN_LIBRARY_IMPL(GAUGE_ATTN_NAMESPACE, CPU, m) {
  m.impl("kl_attention", &kl_attention_cpu);
  m.impl("kl_attention_backward", &kl_attention_backward_cpu);
}

#ifndef GAUGE_ATTN_SPEC
// `import gauge_attn._C` loads this library, which runs the registrations above; the module
// itself is empty. (A just-in-time build is loaded with torch.ops.load_library instead.)
extern "C" PyObject* PyInit__C(void) {
  static PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module);
}
#endif
