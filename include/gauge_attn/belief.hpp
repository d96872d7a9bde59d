// gauge_attn/belief.hpp: batched Gaussian beliefs in the upstream layouts (math.md §4),
// as views over the caller's memory and as an owning container.
//
//   μ  (B, N, E)                 means, heads concatenated in spec order
//   Σ  (B, N, E) or (B, N, E, E) variances, or full covariances of which only the
//                                per-head K×K diagonal blocks are read
//   φ  (B, N, 3)                 gauge frames, one per token, shared by all heads
#pragma once

#include <Eigen/Core>
#include <cmath>
#include <algorithm>
#include <cstddef>
#include <type_traits>
#include <vector>

#include "error.hpp"
#include "options.hpp"

namespace gauge_attn {

/// A non-owning view of a batch of beliefs; all arrays are C order.
template <class Scalar>
struct BeliefView {
  static_assert(std::is_floating_point_v<Scalar>, "gauge_attn::BeliefView: Scalar must be float or double");
  using Vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;
  using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

  int batch = 0;
  int tokens = 0;
  int embed_dim = 0;
  Covariance covariance = Covariance::diagonal;
  const Scalar* mu = nullptr;     // (B, N, E)
  const Scalar* sigma = nullptr;  // (B, N, E) or (B, N, E, E)
  const Scalar* phi = nullptr;    // (B, N, 3)

  std::size_t token_index(int b, int n) const {
    return static_cast<std::size_t>(b) * static_cast<std::size_t>(tokens) + static_cast<std::size_t>(n);
  }
  std::size_t sigma_stride() const {
    const auto E = static_cast<std::size_t>(embed_dim);
    return covariance == Covariance::diagonal ? E : E * E;
  }
  /// μ of token (b, n) restricted to [offset, offset + dim).
  Eigen::Map<const Vector> mean(int b, int n, int offset, int dim) const {
    return Eigen::Map<const Vector>(mu + token_index(b, n) * embed_dim + offset, dim);
  }
  /// Variances of token (b, n) in [offset, offset + dim) (diagonal covariance only).
  Eigen::Map<const Vector> variances(int b, int n, int offset, int dim) const {
    return Eigen::Map<const Vector>(sigma + token_index(b, n) * sigma_stride() + offset, dim);
  }
  /// The dim×dim diagonal block at offset of token (b, n) (full covariance only).
  Eigen::Map<const Matrix, 0, Eigen::OuterStride<>> block(int b, int n, int offset, int dim) const {
    const Scalar* first = sigma + token_index(b, n) * sigma_stride() + static_cast<std::size_t>(offset) * embed_dim + offset;
    return {first, dim, dim, Eigen::OuterStride<>(embed_dim)};
  }
  /// Σ of token (b, n) on a head, as a dense matrix (diagonal covariances expanded).
  Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic> covariance_block(int b, int n, int offset, int dim) const {
    if (covariance == Covariance::diagonal) return variances(b, n, offset, dim).template cast<double>().asDiagonal();
    return block(b, n, offset, dim).template cast<double>();
  }
  Eigen::Vector3d frame(int b, int n) const {
    const Scalar* p = phi + token_index(b, n) * 3;
    return {double(p[0]), double(p[1]), double(p[2])};
  }
};

/// Checks the view's shapes and pointers; throws InvalidArgument naming the argument.
template <class Scalar>
void validate_shape(const BeliefView<Scalar>& q, int expected_embed_dim) {
  using detail::require;
  require(q.batch >= 1, "batch", "must be >= 1, got ", q.batch);
  require(q.tokens >= 1, "tokens", "must be >= 1 (N = 0 has no attention), got ", q.tokens);
  require(q.embed_dim == expected_embed_dim, "embed_dim", "got ", q.embed_dim, " but the irrep spec has E = ",
          expected_embed_dim);
  require(q.mu != nullptr, "mu", "null pointer");
  require(q.sigma != nullptr, "sigma", "null pointer");
  require(q.phi != nullptr, "phi", "null pointer");
}

/// Checks that μ, φ and Σ of the valid tokens (n < valid_lengths[b]; empty: all) are finite and
/// that variances are > 0; throws InvalidArgument naming the argument, the value and its index.
/// Symmetry and positive definiteness of full blocks are checked per head where they are read.
template <class Scalar>
void validate_values(const BeliefView<Scalar>& q, const std::vector<int>& valid_lengths = {}) {
  using detail::require;
  const std::size_t E = q.embed_dim;
  for (int b = 0; b < q.batch; ++b) {
    const int n = valid_lengths.empty() ? q.tokens : valid_lengths[b];
    for (int i = 0; i < n; ++i) {
      const std::size_t t = q.token_index(b, i);
      auto check_finite = [&](const Scalar* data, std::size_t count, const char* name) {
        for (std::size_t e = 0; e < count; ++e)
          require(std::isfinite(data[t * count + e]), name, "non-finite value ", data[t * count + e], " at (b=", b,
                  ", n=", i, ", ", e, ")");
      };
      check_finite(q.mu, E, "mu");
      check_finite(q.phi, 3, "phi");
      check_finite(q.sigma, q.sigma_stride(), "sigma");
      if (q.covariance == Covariance::diagonal)
        for (std::size_t e = 0; e < E; ++e)
          require(q.sigma[t * E + e] > 0, "sigma", "variance ", q.sigma[t * E + e], " <= 0 at (b=", b, ", n=", i,
                  ", e=", e, ")");
    }
  }
}

/// Owning storage for a batch of beliefs, e.g. for tests, examples and files read from disk.
template <class Scalar>
struct Beliefs {
  int batch = 0, tokens = 0, embed_dim = 0;
  Covariance covariance = Covariance::diagonal;
  std::vector<Scalar> mu, sigma, phi;

  Beliefs() = default;
  Beliefs(int B, int N, int E, Covariance kind)
      : batch(B), tokens(N), embed_dim(E), covariance(kind),
        mu(std::size_t(B) * N * E),
        sigma(std::size_t(B) * N * E * (kind == Covariance::full ? E : 1)),
        phi(std::size_t(B) * N * 3) {}

  BeliefView<Scalar> view() const {
    return {batch, tokens, embed_dim, covariance, mu.data(), sigma.data(), phi.data()};
  }
  template <class Other>
  Beliefs<Other> cast() const {
    Beliefs<Other> out(batch, tokens, embed_dim, covariance);
    std::copy(mu.begin(), mu.end(), out.mu.begin());
    std::copy(sigma.begin(), sigma.end(), out.sigma.begin());
    std::copy(phi.begin(), phi.end(), out.phi.begin());
    return out;
  }
};

}  // namespace gauge_attn
