// gauge_attn/backward.hpp: the backward pass of KL attention on the CPU (docs/gradients.md).
//
//   AttentionOptions opt;  opt.covariance_message = true;  opt.attention_energy = true;
//   const AttentionResult<double> out = attention_forward<Spec>(q, opt);
//   OutputGradients<double> g;  g.mu = dL_dmu.data();  g.sigma = …;  g.energy = …;
//   const BeliefGradients<double> grad = attention_backward<Spec>(q, opt, out, g);
//
// Exact mode recomputes the O(N) lift and every β_ij from the lifted vectors and the saved row
// log-sum-exp (FlashAttention-2's recomputation): nothing of size N² is stored. Upstream mode
// differentiates the upstream layer pair by pair (upstream_backward.hpp), for small N.
#pragma once

#include <cstddef>
#include <vector>

#include "attention.hpp"
#include "belief.hpp"
#include "error.hpp"
#include "exact_backward.hpp"
#include "gradients.hpp"
#include "options.hpp"
#include "upstream_backward.hpp"

namespace gauge_attn {

/// Gradients of L with respect to μ, Σ, φ and κ (per head), given the forward's inputs, options
/// and result and the incoming gradients of its outputs. Throws InvalidArgument for shapes that do
/// not match, saved state that is missing (the log-sum-exp of an exact forward; an output whose
/// gradient is given but that the forward did not produce) and non-finite incoming gradients.
template <class Spec, class Scalar>
BeliefGradients<Scalar> attention_backward(const BeliefView<Scalar>& q, const AttentionOptions& opt,
                                           const AttentionResult<Scalar>& forward,
                                           const OutputGradients<Scalar>& incoming) {
  using detail::require;
  validate_shape(q, Spec::embed_dim);
  detail::check_mask(opt.mask);
  const std::vector<double> kappa = detail::kappa_per_head(opt, Spec::num_heads);
  const std::vector<int> lengths = detail::lengths_per_sequence(opt, q.batch, q.tokens);
  validate_values(q, lengths);
  require(forward.batch == q.batch && forward.tokens == q.tokens && forward.embed_dim == q.embed_dim &&
              forward.num_heads == Spec::num_heads && forward.covariance == q.covariance,
          "forward", "the result is of shape (B=", forward.batch, ", N=", forward.tokens, ", E=", forward.embed_dim,
          ", H=", forward.num_heads, ") but the beliefs are (B=", q.batch, ", N=", q.tokens, ", E=", q.embed_dim,
          ", H=", Spec::num_heads, ") or of the other covariance kind");
  const std::size_t rows = std::size_t(q.batch) * q.tokens, per_head = rows * Spec::num_heads;
  require(forward.mu.size() == rows * q.embed_dim, "forward.mu", "has ", forward.mu.size(), " values, expected ",
          rows * q.embed_dim);
  if (opt.mode == Mode::exact)
    require(forward.lse.size() == per_head, "forward.lse",
            "missing saved state: the exact backward needs the row log-sum-exp of an exact-mode forward (",
            per_head, " values), got ", forward.lse.size());
  require(incoming.sigma == nullptr || opt.covariance_message, "incoming.sigma",
          "a gradient of the covariance messages was given, but options.covariance_message is off");
  require(incoming.sigma == nullptr || forward.sigma.size() == rows * q.sigma_stride(), "forward.sigma",
          "missing saved state: the covariance messages of the forward (", rows * q.sigma_stride(), " values), got ",
          forward.sigma.size());
  require(incoming.energy == nullptr || opt.attention_energy, "incoming.energy",
          "a gradient of the attention energy was given, but options.attention_energy is off");
  require(incoming.energy == nullptr || forward.energy.size() == per_head, "forward.energy",
          "missing saved state: the attention energy of the forward (", per_head, " values), got ",
          forward.energy.size());
  detail::require_finite_gradient(incoming.mu, rows * q.embed_dim, "incoming.mu");
  detail::require_finite_gradient(incoming.sigma, rows * q.sigma_stride(), "incoming.sigma");
  detail::require_finite_gradient(incoming.energy, per_head, "incoming.energy");

  BeliefGradients<Scalar> grads(q.batch, q.tokens, q.embed_dim, Spec::num_heads, q.covariance);
  if (opt.mode == Mode::exact)
    detail::exact_backward<Spec>(q, opt, kappa, lengths, forward, incoming, grads);
  else
    detail::upstream_backward<Spec>(q, opt, kappa, lengths, incoming, grads);
  return grads;
}

}  // namespace gauge_attn
