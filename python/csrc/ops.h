// python/csrc/ops.h: what the operator kernels of both devices share (ops.cpp, ops_cuda.cu): the
// schema's argument list, the checked arguments in the library's terms, the tensors handed to the
// library as pointers, and the library's errors as Python errors.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <gauge_attn/error.hpp>
#include <gauge_attn/options.hpp>

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "registry.h"

// The arguments that both operators end with (the forward's whole list). Both schemas and the
// kernels of both devices spell them in this order; the Python side passes them through as one tuple.
#define GAUGE_ATTN_OP_ARGUMENTS                                                                              \
  "Tensor mu, Tensor sigma, Tensor phi, Tensor kappa, Tensor? valid_lengths, str spec, str mode, "           \
  "str exponential, bool causal, bool mask_self, int window, float alibi_slope, bool identity_transport, " \
  "bool covariance_message, bool attention_energy, bool check_inputs"

// The same as C++ parameters, and as the arguments that pass them on.
#define GAUGE_ATTN_OP_PARAMETERS                                                                               \
  const at::Tensor &mu, const at::Tensor &sigma, const at::Tensor &phi, const at::Tensor &kappa,               \
      const c10::optional<at::Tensor> &valid_lengths, c10::string_view spec, c10::string_view mode,            \
      c10::string_view exponential, bool causal, bool mask_self, int64_t window, double alibi_slope,           \
      bool identity_transport, bool covariance_message, bool attention_energy, bool check_inputs
#define GAUGE_ATTN_OP_PASS                                                                                    \
  mu, sigma, phi, kappa, valid_lengths, spec, mode, exponential, causal, mask_self, window, alibi_slope,      \
      identity_transport, covariance_message, attention_energy, check_inputs

namespace gauge_attn_torch {
inline namespace GAUGE_ATTN_LIBRARY_TAG {

using at::Tensor;
using Outputs = std::tuple<Tensor, Tensor, Tensor, Tensor>;

/// The shared arguments, checked and turned into the library's terms.
struct Call {
  Tensor mu, sigma, phi;  // contiguous, on their device
  std::string spec;
  gauge_attn::AttentionOptions options;
  gauge_attn::Covariance covariance = gauge_attn::Covariance::diagonal;
  int64_t batch = 0, tokens = 0, embed_dim = 0;
  bool check_inputs = true;  // the CUDA kernels' device-side value checks (the CPU always checks)
};

/// Checks shapes, dtypes and choices (the kernels hand raw pointers to the library, which trusts
/// them, so a direct call of the operator with bad shapes must stop here). κ and the valid lengths
/// are read on the host, from any device. Values (variances > 0, κ > 0, finite inputs, SPD blocks,
/// lengths in range) the library checks.
Call make_call(GAUGE_ATTN_OP_PARAMETERS);

/// The kernels of the call's spec on one device; a ValueError naming the spec when this operator
/// library does not hold it.
template <class Kernels>
const Kernels& kernels_of(const Call& c, const char* device) {
  const Kernels* kernels = Specs<Kernels>::find(c.spec);
  TORCH_CHECK_VALUE(kernels != nullptr, "gauge_attn: 'spec' is '", c.spec, "', which this operator library does not ",
                    "hold (its ", device, " kernels: ", Specs<Kernels>::names(), "; GAUGE_ATTN_SPECS chooses the ",
                    "named specs compiled in); gauge_attn.kl_attention builds any other spec just in time");
  return *kernels;
}

/// The data of a contiguous copy of `t` in `options` (dtype and device), kept alive in `keep`;
/// `t` must have `shape`.
template <class Scalar>
const Scalar* kept(const Tensor& t, at::IntArrayRef shape, const char* name, const at::TensorOptions& options,
                   std::vector<Tensor>& keep) {
  TORCH_CHECK_VALUE(t.sizes() == shape, "gauge_attn: '", name, "' must have the shape ", shape, ", got ", t.sizes());
  keep.push_back(t.to(options).contiguous());
  return keep.back().data_ptr<Scalar>();
}

/// The library's pointer to the incoming gradient of `output`: null (a zero gradient) when the
/// caller passed none or the output is empty (not requested).
template <class Scalar>
const Scalar* incoming(const c10::optional<Tensor>& grad, const Tensor& output, const char* name,
                       std::vector<Tensor>& keep) {
  if (!grad || output.numel() == 0) return nullptr;
  return kept<Scalar>(*grad, output.sizes(), name, output.options(), keep);
}

/// dL/dκ in the shape, dtype and device of `kappa` from the per-head gradients: one κ for every
/// head receives their sum.
Tensor kappa_gradient(const Tensor& per_head, const Tensor& kappa);

/// f(), with the library's InvalidArgument (which names the argument) as a Python ValueError.
template <class F>
decltype(auto) library_call(F&& f) {
  try {
    return f();
  } catch (const gauge_attn::InvalidArgument& e) {
    C10_THROW_ERROR(ValueError, e.what());
  }
}

}  // namespace GAUGE_ATTN_LIBRARY_TAG
}  // namespace gauge_attn_torch
