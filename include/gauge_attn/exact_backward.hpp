// gauge_attn/exact_backward.hpp: the exact-mode backward on the CPU (docs/gradients.md).
#pragma once

#include <vector>

#include "attention.hpp"
#include "gradients.hpp"

namespace gauge_attn::detail {

template <class Spec, class Scalar>
void exact_backward(const BeliefView<Scalar>&, const AttentionOptions&, const std::vector<double>&,
                    const std::vector<int>&, const AttentionResult<Scalar>&, const OutputGradients<Scalar>&,
                    BeliefGradients<Scalar>&) {
  throw InvalidArgument("mode", "the exact backward is not available yet");
}

}  // namespace gauge_attn::detail
