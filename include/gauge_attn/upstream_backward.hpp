// gauge_attn/upstream_backward.hpp: the backward pass of Mode::upstream (math.md §6), pair by pair.
// Work in progress on its own branch: this placeholder refuses to run.
#pragma once

#include <vector>

#include "belief.hpp"
#include "error.hpp"
#include "gradients.hpp"
#include "options.hpp"

namespace gauge_attn::detail {

template <class Spec, class Scalar>
void upstream_backward(const BeliefView<Scalar>&, const AttentionOptions&, const std::vector<double>&,
                       const std::vector<int>&, const OutputGradients<Scalar>&, BeliefGradients<Scalar>&) {
  throw InvalidArgument("mode", "the backward of Mode::upstream is not available yet");
}

}  // namespace gauge_attn::detail
