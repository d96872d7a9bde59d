// tests/accurate_reference.hpp: the exact forward's mean messages for diagonal beliefs, pair by pair
// in long double with the KL as a sum of positive terms (the form of detail/kl_factors.hpp, written
// out here on its own):
//   KL_ij = ½ (Σ_rc Ω_rc² σ_i,r / σ_j,c + Σ_c (μ_j − Ωᵀμ_i)_c² / σ_j,c − K) + ½ Σ ln σ_j − ½ Σ ln σ_i
// Nothing cancels, so its error does not grow with the variances' range or the means' scale: the
// reference of the accuracy tests of the GPU pair-by-pair path and of bench/float_error.cpp
// (docs/conventions.md, Precision). O(N² K²) per head and sequence.
#pragma once

#include <gauge_attn/irreps.hpp>
#include <gauge_attn/mask.hpp>
#include <gauge_attn/options.hpp>
#include <gauge_attn/wigner.hpp>

#include <Eigen/Core>
#include <cmath>
#include <vector>

namespace gauge_attn::testing {

/// m_i = Σ_j β_ij Ω_ij μ_j (M5, M6) of Mode::exact: beliefs (B, N, E) with diagonal Σ, frames (B, N, 3),
/// κ, masks, ALiBi, valid lengths and identity transport from `o`; output (B, N, E), padded rows 0.
template <class Spec>
std::vector<long double> accurate_mean_messages(int B, int N, const std::vector<double>& mu,
                                                const std::vector<double>& sigma, const std::vector<double>& phi,
                                                const AttentionOptions& o) {
  using M = Eigen::Matrix<long double, Eigen::Dynamic, Eigen::Dynamic>;
  constexpr int E = Spec::embed_dim;
  const std::vector<double> kappa = detail::kappa_per_head(o, Spec::num_heads);
  const std::vector<int> lengths = detail::lengths_per_sequence(o, B, N);
  std::vector<long double> out(std::size_t(B) * N * E, 0.0L);
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < Spec::num_heads; ++h) {
      const HeadInfo head = Spec::head(h);
      const int K = head.dim, n = lengths[b];
      auto at = [&](const std::vector<double>& v, int t, int k) {
        return static_cast<long double>(v[(std::size_t(b) * N + t) * E + head.offset + k]);
      };
      std::vector<M> R(n);
      for (int t = 0; t < n; ++t) {
        const std::size_t f = (std::size_t(b) * N + t) * 3;
        R[t] = o.identity_transport ? M(M::Identity(K, K))
                                    : M(wigner_d(head.l, Eigen::Vector3d(phi[f], phi[f + 1], phi[f + 2]))
                                            .template cast<long double>());
      }
      for (int i = 0; i < n; ++i) {
        const KeyRange keys = key_range(o.mask, i, n);
        std::vector<long double> logit(n, 0.0L);
        std::vector<M> omega(n);
        long double top = -INFINITY;
        for (int j = keys.begin; j < keys.end; ++j) {
          if (!keys.allows(j)) continue;
          omega[j] = R[i] * R[j].transpose();  // Ω_ij (M3)
          const M& W = omega[j];
          long double trace = 0, quadratic = 0, logdets = 0;
          for (int c = 0; c < K; ++c) {
            long double d = at(mu, j, c);  // (μ_j − Ωᵀμ_i)_c
            for (int r = 0; r < K; ++r) {
              trace += W(r, c) * W(r, c) * at(sigma, i, r) / at(sigma, j, c);
              d -= W(r, c) * at(mu, i, r);
            }
            quadratic += d * d / at(sigma, j, c);
            logdets += std::log(at(sigma, j, c)) - std::log(at(sigma, i, c));
          }
          const long double kl = 0.5L * (trace + quadratic - K + logdets);
          logit[j] = -kl / kappa[h] + static_cast<long double>(logit_bias(o.mask, i, j));
          top = std::max(top, logit[j]);
        }
        long double total = 0;
        for (int j = keys.begin; j < keys.end; ++j)
          if (keys.allows(j)) total += std::exp(logit[j] - top);
        for (int j = keys.begin; j < keys.end; ++j) {
          if (!keys.allows(j)) continue;
          const long double beta = std::exp(logit[j] - top) / total;
          for (int r = 0; r < K; ++r) {
            long double transported = 0;  // (Ω μ_j)_r
            for (int c = 0; c < K; ++c) transported += omega[j](r, c) * at(mu, j, c);
            out[(std::size_t(b) * N + i) * E + head.offset + r] += beta * transported;
          }
        }
      }
    }
  return out;
}

}  // namespace gauge_attn::testing
