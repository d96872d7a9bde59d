// gauge_attn/gradients.hpp: what the backward pass takes and returns (docs/gradients.md).
//
//   incoming  dL/dm      (B, N, E)               gradient of the mean messages
//             dL/dΣ^agg  (B, N, E) or (B, N, E, E) of the covariance messages, when produced
//             dL/de      (B, H, N)               of the attention energy e_ih = Σ_j β_ij KL_ij
//   returned  dL/dμ (B, N, E), dL/dΣ (B, N, E) or (B, N, E, E), dL/dφ (B, N, 3), dL/dκ (H)
//
// A full covariance returns the symmetric gradient of each head's SPD block, (G + Gᵀ)/2, with
// zeros outside the blocks. Padded tokens (n ≥ valid length) get zero gradients. κ gets one
// value per head; a caller who gave one κ for every head adds them up.
#pragma once

#include <cmath>
#include <cstddef>
#include <vector>

#include "error.hpp"
#include "options.hpp"

namespace gauge_attn {

/// The incoming gradients dL/d(output) of one forward call, as views over the caller's memory
/// (C order, the layouts of AttentionResult). A null pointer means a zero gradient; a non-null one
/// must belong to an output the forward produced.
template <class Scalar>
struct OutputGradients {
  const Scalar* mu = nullptr;      // (B, N, E)
  const Scalar* sigma = nullptr;   // (B, N, E) for diagonal beliefs, (B, N, E, E) for full ones
  const Scalar* energy = nullptr;  // (B, H, N)
};

/// dL/d(input) of one backward call.
template <class Scalar>
struct BeliefGradients {
  int batch = 0, tokens = 0, embed_dim = 0, num_heads = 0;
  Covariance covariance = Covariance::diagonal;
  std::vector<Scalar> mu;     // (B, N, E)
  std::vector<Scalar> sigma;  // (B, N, E) or (B, N, E, E), symmetric per head block
  std::vector<Scalar> phi;    // (B, N, 3)
  std::vector<double> kappa;  // (H)

  BeliefGradients() = default;
  BeliefGradients(int B, int N, int E, int H, Covariance kind)
      : batch(B), tokens(N), embed_dim(E), num_heads(H), covariance(kind),
        mu(std::size_t(B) * N * E, Scalar(0)),
        sigma(std::size_t(B) * N * E * (kind == Covariance::full ? E : 1), Scalar(0)),
        phi(std::size_t(B) * N * 3, Scalar(0)),
        kappa(H, 0.0) {}
};

namespace detail {

/// Every entry of an incoming gradient must be finite: a NaN would silently poison every
/// gradient of its sequence (the softmax couples the whole row).
template <class Scalar>
void require_finite_gradient(const Scalar* g, std::size_t count, const char* name) {
  if (g == nullptr) return;
  for (std::size_t e = 0; e < count; ++e)
    require(std::isfinite(g[e]), name, "non-finite incoming gradient ", g[e], " at flat index ", e);
}

}  // namespace detail
}  // namespace gauge_attn
