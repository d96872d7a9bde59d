// tests/gradient_check.hpp: central finite differences of a random linear functional of the
// forward's outputs, L = Σ w_μ·m + Σ w_Σ·Σ^agg + Σ w_e·e, the reference every backward is checked
// against (CPU exact and upstream modes; the GPU backward is checked against the CPU one).
#pragma once

#include <gauge_attn/attention.hpp>
#include <gauge_attn/backward.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <ostream>
#include <random>
#include <vector>

namespace gauge_attn::testing {

/// The weights of L; an empty vector leaves its output out of L (and its gradient null).
struct Functional {
  std::vector<double> mu, sigma, energy;

  OutputGradients<double> incoming() const {
    return {mu.empty() ? nullptr : mu.data(), sigma.empty() ? nullptr : sigma.data(),
            energy.empty() ? nullptr : energy.data()};
  }
};

/// Weights ~ N(0, 1) for every output the options produce (never zeros).
template <class Spec>
Functional random_functional(std::mt19937& rng, const Beliefs<double>& q, const AttentionOptions& opt) {
  std::normal_distribution<double> normal(0.0, 1.0);
  auto draw = [&](std::size_t n) {
    std::vector<double> w(n);
    for (auto& x : w) x = normal(rng);
    return w;
  };
  const std::size_t rows = std::size_t(q.batch) * q.tokens;
  Functional f;
  f.mu = draw(rows * q.embed_dim);
  if (opt.covariance_message) f.sigma = draw(q.sigma.size());
  if (opt.attention_energy) f.energy = draw(rows * Spec::num_heads);
  return f;
}

/// The backward's gradients of L at q: a forward, then attention_backward with w's weights.
template <class Spec>
BeliefGradients<double> analytic_gradients(const Beliefs<double>& q, const AttentionOptions& opt, const Functional& w) {
  return attention_backward<Spec>(q.view(), opt, attention_forward<Spec>(q.view(), opt), w.incoming());
}

template <class Spec>
double functional_value(const Beliefs<double>& q, const AttentionOptions& opt, const Functional& w) {
  const AttentionResult<double> r = attention_forward<Spec>(q.view(), opt);
  double L = 0;
  for (std::size_t k = 0; k < w.mu.size(); ++k) L += w.mu[k] * r.mu[k];
  for (std::size_t k = 0; k < w.sigma.size(); ++k) L += w.sigma[k] * r.sigma[k];
  for (std::size_t k = 0; k < w.energy.size(); ++k) L += w.energy[k] * r.energy[k];
  return L;
}

/// The factor by which the environment variable GAUGE_ATTN_TEST_FD_STRIDE (a positive integer,
/// default 1) thins every finite-difference check. `scripts/test.sh --sanitize` sets it: under the
/// sanitizers the checks are there for memory errors and undefined behaviour, which every code path
/// shows on its first evaluation, and differencing every entry at -O1 would take most of CI's time;
/// the Release run differences every entry.
inline std::size_t fd_stride_from_environment() {
  const char* text = std::getenv("GAUGE_ATTN_TEST_FD_STRIDE");
  if (text == nullptr) return 1;
  char* end = nullptr;
  const long stride = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || stride < 1)
    throw InvalidArgument("GAUGE_ATTN_TEST_FD_STRIDE", detail::str("must be a positive integer, got '", text, "'"));
  return std::size_t(stride);
}

/// Central differences with step h·max(1, |x|) of every input entry that the forward reads: μ, the
/// variances or the per-head covariance blocks (an off-diagonal pair moved together and halved, so
/// that the estimate is the symmetric gradient), φ, and κ per head (one κ given for every head is
/// differenced head by head, as the backward returns it).
/// Truncation error O(h²), rounding O(ε|L|/h): about 1e-9 relative at h = 1e-5. With every > 1
/// only every `every`-th entry of μ, Σ and φ is differenced (wide specs; κ always is), the others
/// are NaN, which relative_error skips; GAUGE_ATTN_TEST_FD_STRIDE multiplies `every`.
template <class Spec>
BeliefGradients<double> finite_differences(const Beliefs<double>& q, const AttentionOptions& opt, const Functional& w,
                                           double h = 1e-5, std::size_t every = 1) {
  every *= fd_stride_from_environment();
  BeliefGradients<double> g(q.batch, q.tokens, q.embed_dim, Spec::num_heads, q.covariance);
  AttentionOptions per_head = opt;
  if (per_head.kappa.size() == 1) per_head.kappa.assign(Spec::num_heads, opt.kappa[0]);
  const double skipped = std::numeric_limits<double>::quiet_NaN();
  std::fill(g.mu.begin(), g.mu.end(), skipped);
  std::fill(g.sigma.begin(), g.sigma.end(), skipped);
  std::fill(g.phi.begin(), g.phi.end(), skipped);
  auto derivative = [&](auto&& perturb) {  // perturb(delta) moves the input by delta, in a copy
    Beliefs<double> plus = q, minus = q;
    AttentionOptions op = per_head, om = per_head;
    const double step = perturb(plus, op, +1.0);
    perturb(minus, om, -1.0);
    return (functional_value<Spec>(plus, op, w) - functional_value<Spec>(minus, om, w)) / (2 * step);
  };
  auto entry = [&](auto member, std::size_t k) {
    return derivative([&, member, k](Beliefs<double>& p, AttentionOptions&, double sign) {
      auto& x = (p.*member)[k];
      const double step = h * std::max(1.0, std::abs(x));
      x += sign * step;
      return step;
    });
  };
  for (std::size_t k = 0; k < q.mu.size(); k += every) g.mu[k] = entry(&Beliefs<double>::mu, k);
  for (std::size_t k = 0; k < q.phi.size(); k += every) g.phi[k] = entry(&Beliefs<double>::phi, k);
  const std::size_t E = q.embed_dim;
  if (q.covariance == Covariance::diagonal) {
    for (std::size_t k = 0; k < q.sigma.size(); k += every) g.sigma[k] = entry(&Beliefs<double>::sigma, k);
  } else {
    std::fill(g.sigma.begin(), g.sigma.end(), 0.0);  // the forward reads nothing outside the head blocks
    std::size_t visited = 0;
    for (std::size_t t = 0; t < std::size_t(q.batch) * q.tokens; ++t)
      for (int hd = 0; hd < Spec::num_heads; ++hd) {
        const HeadInfo head = Spec::head(hd);
        for (int r = 0; r < head.dim; ++r)
          for (int c = r; c < head.dim; ++c) {
            const std::size_t rc = (t * E + head.offset + r) * E + head.offset + c;
            const std::size_t cr = (t * E + head.offset + c) * E + head.offset + r;
            if (visited++ % every != 0) {
              g.sigma[rc] = g.sigma[cr] = skipped;
              continue;
            }
            const double d = derivative([&](Beliefs<double>& p, AttentionOptions&, double sign) {
              const double step = h * std::max(1.0, std::abs(p.sigma[rc]));
              p.sigma[rc] += sign * step;
              if (cr != rc) p.sigma[cr] += sign * step;
              return step;
            });
            g.sigma[rc] = g.sigma[cr] = r == c ? d : d / 2;
          }
      }
  }
  for (int hd = 0; hd < Spec::num_heads; ++hd)
    g.kappa[hd] = derivative([&](Beliefs<double>&, AttentionOptions& o, double sign) {
      const double step = h * o.kappa[hd];
      o.kappa[hd] += sign * step;
      return step;
    });
  return g;
}

/// ‖a − b‖ / ‖b‖ (‖a‖ when b = 0) over the entries where b is not NaN; infinite when the sizes
/// differ, so that no tolerance passes.
template <class A, class B>
double relative_error(const A& a, const B& b) {
  if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
  double diff = 0, norm = 0;
  for (std::size_t k = 0; k < a.size(); ++k) {
    if (std::isnan(double(b[k]))) continue;
    diff += (double(a[k]) - double(b[k])) * (double(a[k]) - double(b[k]));
    norm += double(b[k]) * double(b[k]);
  }
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

/// relative_error of each gradient against a reference (finite differences, another backward).
struct GradientErrors {
  double mu, sigma, phi, kappa;
};

template <class A, class B>
GradientErrors gradient_errors(const BeliefGradients<A>& g, const BeliefGradients<B>& reference) {
  return {relative_error(g.mu, reference.mu), relative_error(g.sigma, reference.sigma),
          relative_error(g.phi, reference.phi), relative_error(g.kappa, reference.kappa)};
}

inline std::ostream& operator<<(std::ostream& out, const GradientErrors& e) {
  return out << "mu " << e.mu << ", sigma " << e.sigma << ", phi " << e.phi << ", kappa " << e.kappa;
}

}  // namespace gauge_attn::testing
