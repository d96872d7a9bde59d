// python/csrc/cpu_kernels.h: the CPU kernels of one spec, the library's forward and backward in
// float and double. A generated spec unit instantiates them for its spec (add_cpu_spec).
#pragma once

#include <gauge_attn/attention.hpp>
#include <gauge_attn/backward.hpp>

#include <type_traits>

#include "registry.h"

namespace gauge_attn_torch {
inline namespace GAUGE_ATTN_LIBRARY_TAG {

template <class Scalar>
struct CpuPasses {
  gauge_attn::AttentionResult<Scalar> (*forward)(const gauge_attn::BeliefView<Scalar>&,
                                                 const gauge_attn::AttentionOptions&);
  gauge_attn::BeliefGradients<Scalar> (*backward)(const gauge_attn::BeliefView<Scalar>&,
                                                  const gauge_attn::AttentionOptions&,
                                                  const gauge_attn::AttentionResult<Scalar>&,
                                                  const gauge_attn::OutputGradients<Scalar>&);
};

struct CpuKernels {
  int num_heads;
  CpuPasses<float> f32;
  CpuPasses<double> f64;

  template <class Scalar>
  const CpuPasses<Scalar>& passes() const {
    if constexpr (std::is_same_v<Scalar, float>)
      return f32;
    else
      return f64;
  }
};

template <class Spec>
bool add_cpu_spec(const char* name) {
  using gauge_attn::attention_backward;
  using gauge_attn::attention_forward;
  return Specs<CpuKernels>::add(name, {Spec::num_heads,
                                       {&attention_forward<Spec, float>, &attention_backward<Spec, float>},
                                       {&attention_forward<Spec, double>, &attention_backward<Spec, double>}});
}

}  // namespace GAUGE_ATTN_LIBRARY_TAG
}  // namespace gauge_attn_torch
