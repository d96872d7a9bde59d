// tests/test_support.hpp: random beliefs and the paths the tests read data from.
#pragma once

#include <gauge_attn/belief.hpp>
#include <gauge_attn/irreps.hpp>
#include <gauge_attn/options.hpp>

#include <Eigen/Core>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#ifndef GAUGE_ATTN_FIXTURE_DIR
#define GAUGE_ATTN_FIXTURE_DIR "../shared/fixtures/upstream_parity_small"
#endif

namespace gauge_attn::testing {

inline std::string fixture(const std::string& name) { return std::string(GAUGE_ATTN_FIXTURE_DIR) + "/" + name; }

/// ‖got − want‖ / ‖want‖ over every component, in long double (either side may be).
template <class A, class B>
double norm_relative_error(const A& got, const B& want) {
  long double num = 0, den = 0;
  for (std::size_t k = 0; k < want.size(); ++k) {
    const long double d = static_cast<long double>(got[k]) - static_cast<long double>(want[k]);
    num += d * d;
    den += static_cast<long double>(want[k]) * static_cast<long double>(want[k]);
  }
  return double(std::sqrt(num / den));
}

/// Random beliefs for a spec: μ ~ N(0, 1), frames φ ~ N(0, s²) per component, variances
/// uniform in [0.3, 3] or, for full covariances, per-head blocks A Aᵀ/K + 0.3 I (SPD, condition
/// number a few tens) with zero off-block entries. Never zeros.
template <class Spec, class Scalar = double>
Beliefs<Scalar> random_beliefs(std::mt19937& rng, int B, int N, Covariance kind, double frame_scale = 1.0) {
  constexpr int E = Spec::embed_dim;
  std::normal_distribution<double> normal(0.0, 1.0);
  std::uniform_real_distribution<double> variance(0.3, 3.0);
  Beliefs<Scalar> q(B, N, E, kind);
  for (auto& x : q.mu) x = Scalar(normal(rng));
  for (auto& x : q.phi) x = Scalar(frame_scale * normal(rng));
  if (kind == Covariance::diagonal) {
    for (auto& x : q.sigma) x = Scalar(variance(rng));
    return q;
  }
  for (int t = 0; t < B * N; ++t)
    for (int h = 0; h < Spec::num_heads; ++h) {
      const HeadInfo head = Spec::head(h);
      const int K = head.dim;
      Eigen::MatrixXd A(K, K);
      for (int r = 0; r < K; ++r)
        for (int c = 0; c < K; ++c) A(r, c) = normal(rng);
      const Eigen::MatrixXd S = A * A.transpose() / K + 0.3 * Eigen::MatrixXd::Identity(K, K);
      for (int r = 0; r < K; ++r)
        for (int c = 0; c < K; ++c)
          q.sigma[(std::size_t(t) * E + head.offset + r) * E + head.offset + c] = Scalar(S(r, c));
    }
  return q;
}

/// One option set per mask feature: none, causal, causal + self-mask, + causal window, a
/// non-causal window with ALiBi, causal with ALiBi and identity transport. Window sizes and
/// slopes are the caller's, to suit its N.
inline std::vector<AttentionOptions> mask_variants(double kappa, int causal_window, int window, double alibi,
                                                   double causal_alibi) {
  std::vector<AttentionOptions> all;
  AttentionOptions o;
  o.kappa = {kappa};
  all.push_back(o);
  o.mask.causal = true;
  all.push_back(o);
  o.mask.mask_self = true;
  all.push_back(o);
  o.mask.window = causal_window;
  all.push_back(o);
  o.mask = MaskSpec{};
  o.mask.window = window;
  o.mask.alibi_slope = alibi;
  all.push_back(o);
  o.mask = MaskSpec{true, false, 0, causal_alibi};
  o.identity_transport = true;
  all.push_back(o);
  return all;
}

}  // namespace gauge_attn::testing
