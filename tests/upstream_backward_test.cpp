// Tests of upstream_backward.hpp through attention_backward: the upstream project's own autograd
// (the gradient fixture, with and without upstream_detached_kl), central finite differences of the
// upstream forward under every option (gradient_check.hpp), and the clamps that cut the gradient
// (docs/gradients.md §7).
#include <gauge_attn/backward.hpp>
#include <gauge_attn/npy.hpp>
#include <gauge_attn/specs.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gradient_check.hpp"
#include "test_support.hpp"

using namespace gauge_attn;
using namespace gauge_attn::testing;
using Spec = specs::Upstream;

namespace {

/// The gradient fixture, the sibling of the parity fixture that GAUGE_ATTN_FIXTURE_DIR names.
std::string grad_fixture(const std::string& name) {
  return std::string(GAUGE_ATTN_FIXTURE_DIR) + "/../upstream_grad_small/" + name;
}

/// A full-covariance gradient, (E, E) per token: the symmetric part (G + Gᵀ)/2 of every head's
/// diagonal block, NaN outside the blocks (which relative_error then leaves out).
std::vector<double> symmetric_head_blocks(const std::vector<double>& g) {
  constexpr std::size_t E = Spec::embed_dim;
  std::vector<double> out(g.size(), std::numeric_limits<double>::quiet_NaN());
  for (std::size_t t = 0; t < g.size() / (E * E); ++t)
    for (int h = 0; h < Spec::num_heads; ++h) {
      const HeadInfo head = Spec::head(h);
      for (int r = 0; r < head.dim; ++r)
        for (int c = 0; c < head.dim; ++c) {
          const std::size_t rc = (t * E + head.offset + r) * E + head.offset + c;
          const std::size_t cr = (t * E + head.offset + c) * E + head.offset + r;
          out[rc] = 0.5 * (g[rc] + g[cr]);
        }
    }
  return out;
}

/// The relative errors of gradients against the fixture case's: μ and φ; Σ as it is for diagonal
/// beliefs, and for full ones against the symmetric part of autograd's entry-wise gradient on the
/// head blocks; κ as Σ_h κ̄_h (one κ for every head) against the fixture's dL/dκ.
GradientErrors against_fixture(const BeliefGradients<double>& g, const std::string& name, bool full) {
  const auto ref_sigma = read_npy(grad_fixture(name + "_grad_sigma.npy")).data;
  double kappa = 0;
  for (double k : g.kappa) kappa += k;
  const double ref_kappa = read_npy(grad_fixture(name + "_grad_kappa.npy")).data[0];
  return {relative_error(g.mu, read_npy(grad_fixture(name + "_grad_mu.npy")).data),
          relative_error(g.sigma, full ? symmetric_head_blocks(ref_sigma) : ref_sigma),
          relative_error(g.phi, read_npy(grad_fixture(name + "_grad_phi.npy")).data),
          std::abs(kappa - ref_kappa) / std::abs(ref_kappa)};
}

/// The analytic gradients (grad) against central differences of L (gradient_check.hpp) with step
/// h = 1e-5·max(1, |x|), every `every`-th entry of μ, Σ and φ and every κ_h: the truncation error
/// O(h²) and the rounding error ~1e-16·|L|/h leave ~1e-8 relative at worst here (at h = 1e-6 the
/// rounding reaches 5e-7 on the full Taylor-4 case), below the 1e-6 allowed, while a wrong term
/// (≥ 1e-3 of the gradient) fails. Full blocks must also come back exactly symmetric.
void check_against_differences(const Beliefs<double>& q, const AttentionOptions& o, const Functional& w,
                               const BeliefGradients<double>& grad, std::size_t every, const std::string& name) {
  const GradientErrors e = gradient_errors(grad, finite_differences<Spec>(q, o, w, 1e-5, every));
  WARN(name << " against central differences, relative: " << e);
  CHECK(e.mu < 1e-6);
  CHECK(e.sigma < 1e-6);
  CHECK(e.phi < 1e-6);
  CHECK(e.kappa < 1e-6);
  if (q.covariance == Covariance::full) CHECK(relative_error(grad.sigma, symmetric_head_blocks(grad.sigma)) == 0.0);
}

}  // namespace

TEST_CASE("the upstream backward reproduces the upstream gradient fixture", "[upstream_backward]") {
  const auto mu = read_npy(grad_fixture("mu.npy"));
  const auto phi = read_npy(grad_fixture("phi.npy"));
  const auto w_mu = read_npy(grad_fixture("w_mu.npy"));
  REQUIRE(mu.shape == std::vector<std::size_t>{1, 16, 19});
  struct Case {
    const char* name;
    bool full, taylor, self, covariance;
    double forward_tol;
  };
  // Forward: the diagonal cases are the same float64 arithmetic as upstream (1e-12 relative); the
  // full case differs by the upstream CPU path's own regularisation (~1e-7, 1e-5 allowed).
  const Case cases[] = {{"diag_exact", false, false, true, true, 1e-12},
                        {"full_exact", true, false, false, true, 1e-5},
                        {"diag_taylor", false, true, true, false, 1e-12}};
  for (const Case& c : cases) {
    INFO(c.name);
    const std::string n = c.name;
    Beliefs<double> q(1, 16, 19, c.full ? Covariance::full : Covariance::diagonal);
    q.mu = mu.data;
    q.phi = phi.data;
    q.sigma = read_npy(grad_fixture(c.full ? "sigma_full.npy" : "sigma_diag.npy")).data;
    AttentionOptions o;
    o.mode = Mode::upstream;
    o.exponential = c.taylor ? UpstreamExponential::taylor4 : UpstreamExponential::pade;
    o.kappa = {0.43};
    o.mask.causal = true;
    o.mask.mask_self = c.self;
    o.covariance_message = c.covariance;
    const auto r = attention_forward<Spec>(q.view(), o);
    const double e_forward = relative_error(r.mu, read_npy(grad_fixture(n + "_mu_out.npy")).data);
    WARN(n << " forward mu_out: " << e_forward);
    CHECK(e_forward < c.forward_tol);

    Functional w{w_mu.data, {}, {}};
    if (c.covariance) w.sigma = read_npy(grad_fixture(c.full ? "w_sigma_full.npy" : "w_sigma_diag.npy")).data;
    const auto grad = analytic_gradients<Spec>(q, o, w);
    const GradientErrors e = against_fixture(grad, n, c.full);
    WARN(n << " against the fixture, relative: " << e);
    // The fixture's dL/dκ is a central difference of L with h = 1e-6·κ: good to ~1e-6 at best.
    CHECK(e.kappa < 1e-5);
    if (!c.full) {
      // Float64 autograd through the same clamps and exponentials: 1e-8 relative (the fixture's
      // README) leaves room over the rounding of the exponentials and their derivatives (~1e-15).
      CHECK(e.mu < 1e-8);
      CHECK(e.sigma < 1e-8);
      CHECK(e.phi < 1e-8);
      continue;
    }
    // Full case: the upstream CPU path computes the KL matrix outside autograd (Numba, on detached
    // copies), so its grad_mu, grad_sigma and grad_phi hold the KL and β fixed and are not the
    // derivative of its own L (in full they differ by O(1)). Its outputs and its dL/dκ, a
    // difference of L, do match ours (checked above). upstream_detached_kl reproduces that
    // autograd: 1e-4 relative, the full case's target (the README), as the forwards differ by ~1e-7.
    AttentionOptions detached = o;
    detached.upstream_detached_kl = true;
    const auto grad_detached = analytic_gradients<Spec>(q, detached, w);
    const GradientErrors ed = against_fixture(grad_detached, n, true);
    WARN(n << " with upstream_detached_kl against the fixture, relative: " << ed);
    CHECK(ed.mu < 1e-4);
    CHECK(ed.sigma < 1e-4);
    CHECK(ed.phi < 1e-4);
    for (double k : grad_detached.kappa) CHECK(k == 0.0);  // autograd's κ is a float: no gradient
    // The default, the true derivative of the forward that matches L, at the fixture's inputs: by
    // central differences of every 5th entry (a stride prime to the 19 means, 3 frame angles and
    // 38 block entries per token, so every component is sampled) to keep the test short.
    check_against_differences(q, o, w, grad, 5, n);
  }
}

TEST_CASE("the upstream backward matches central finite differences under every option", "[upstream_backward]") {
  // Inputs away from every clamp, so that L is smooth: variances ~U[0.5, 2] (the 1e-6 floors are
  // far), κ per head in [0.8, 2.4] and μ ~ N(0, 0.5²) keep the allowed weights well above 1e-8.
  // Tolerance 1e-6 relative: see check_against_differences.
  struct FdCase {
    const char* name;
    Covariance kind;
    UpstreamExponential exponential;
    MaskSpec mask;
    bool identity_transport;
  };
  using UE = UpstreamExponential;
  constexpr Covariance diag = Covariance::diagonal, full = Covariance::full;
  const FdCase cases[] = {
      {"diagonal, Padé, causal + mask_self", diag, UE::pade, {true, true, 0, 0.0}, false},
      {"full, Padé, causal window 3 + ALiBi", full, UE::pade, {true, false, 3, -0.3}, false},
      {"diagonal, Taylor-4, window 4 + ALiBi", diag, UE::taylor4, {false, false, 4, 0.2}, false},
      {"full, Taylor-4, causal + mask_self", full, UE::taylor4, {true, true, 0, 0.0}, false},
      {"diagonal, identity transport, no mask", diag, UE::pade, {}, true},
      {"full, identity transport, causal + ALiBi", full, UE::pade, {true, false, 0, 0.25}, true},
  };
  std::mt19937 rng(41);
  std::uniform_real_distribution<double> variance(0.5, 2.0);
  const int B = 2, N = 5, E = Spec::embed_dim;
  for (const FdCase& c : cases) {
    INFO(c.name);
    auto q = testing::random_beliefs<Spec>(rng, B, N, c.kind);
    for (auto& x : q.mu) x *= 0.5;
    if (c.kind == Covariance::diagonal)
      for (auto& x : q.sigma) x = variance(rng);
    AttentionOptions o;
    o.mode = Mode::upstream;
    o.exponential = c.exponential;
    o.mask = c.mask;
    o.identity_transport = c.identity_transport;
    o.covariance_message = true;
    o.attention_energy = true;
    o.valid_lengths = {5, 3};
    o.kappa.clear();
    for (int h = 0; h < Spec::num_heads; ++h) o.kappa.push_back(0.8 + 0.2 * h);
    const Functional w = random_functional<Spec>(rng, q, o);
    const auto grad = analytic_gradients<Spec>(q, o, w);
    check_against_differences(q, o, w, grad, 1, c.name);
    if (c.identity_transport)
      for (double x : grad.phi) CHECK(x == 0.0);
    // Padded tokens (sequence 1, n ≥ 3) get zeros.
    const std::size_t stride = q.view().sigma_stride();
    for (std::size_t t = N + 3; t < std::size_t(2 * N); ++t) {
      for (int e = 0; e < E; ++e) CHECK(grad.mu[t * E + e] == 0.0);
      for (std::size_t e = 0; e < stride; ++e) CHECK(grad.sigma[t * stride + e] == 0.0);
      for (int a = 0; a < 3; ++a) CHECK(grad.phi[t * 3 + a] == 0.0);
    }
  }
}

TEST_CASE("upstream_detached_kl holds the KL and β fixed, for full covariances only", "[upstream_backward]") {
  // With the KL and β constants, L reaches the inputs through the messages' values alone: the
  // energy Σ_j β_ij KL_ij and κ get no gradient. Diagonal beliefs are not affected (the upstream's
  // diagonal path is differentiable: its autograd is the true derivative).
  std::mt19937 rng(45);
  AttentionOptions o;
  o.mode = Mode::upstream;
  o.mask.causal = true;
  o.covariance_message = true;
  o.attention_energy = true;
  o.kappa = {0.9};
  AttentionOptions detached = o;
  detached.upstream_detached_kl = true;
  const int B = 2, N = 5, E = Spec::embed_dim;

  SECTION("diagonal beliefs: the true derivative, unchanged") {
    const auto q = random_beliefs<Spec>(rng, B, N, Covariance::diagonal);
    const Functional w = random_functional<Spec>(rng, q, o);
    const auto on = analytic_gradients<Spec>(q, detached, w), off = analytic_gradients<Spec>(q, o, w);
    CHECK(on.mu == off.mu);
    CHECK(on.sigma == off.sigma);
    CHECK(on.phi == off.phi);
    CHECK(on.kappa == off.kappa);
  }

  SECTION("full beliefs: the energy and κ get nothing") {
    const auto q = random_beliefs<Spec>(rng, B, N, Covariance::full);
    Functional w = random_functional<Spec>(rng, q, o);
    for (double k : analytic_gradients<Spec>(q, detached, w).kappa) CHECK(k == 0.0);
    w.mu.assign(w.mu.size(), 0.0);  // L = Σ w_e·e alone
    w.sigma.assign(w.sigma.size(), 0.0);
    const auto g = analytic_gradients<Spec>(q, detached, w);
    CHECK(std::all_of(g.mu.begin(), g.mu.end(), [](double x) { return x == 0.0; }));
    CHECK(std::all_of(g.sigma.begin(), g.sigma.end(), [](double x) { return x == 0.0; }));
    CHECK(std::all_of(g.phi.begin(), g.phi.end(), [](double x) { return x == 0.0; }));
  }

  SECTION("full beliefs, mean message, Ω = I: μ̄_j = Σ_i β_ij w_i with the forward's β") {
    const auto q = random_beliefs<Spec>(rng, 1, N, Covariance::full);
    AttentionOptions mean_only = detached;
    mean_only.covariance_message = mean_only.attention_energy = false;
    mean_only.identity_transport = true;
    mean_only.return_matrices = true;
    const Functional w = random_functional<Spec>(rng, q, mean_only);
    const auto r = attention_forward<Spec>(q.view(), mean_only);
    const auto g = attention_backward<Spec>(q.view(), mean_only, r, w.incoming());
    for (int h = 0; h < Spec::num_heads; ++h) {
      const HeadInfo head = Spec::head(h);
      for (int j = 0; j < N; ++j)
        for (int k = head.offset; k < head.offset + head.dim; ++k) {
          double expected = 0;
          for (int i = 0; i < N; ++i) expected += r.beta[r.pair_index(0, h, i, j)] * w.mu[std::size_t(i) * E + k];
          CHECK(g.mu[std::size_t(j) * E + k] == Approx(expected).epsilon(1e-12).margin(1e-15));
        }
    }
    CHECK(std::all_of(g.sigma.begin(), g.sigma.end(), [](double x) { return x == 0.0; }));
    CHECK(std::all_of(g.phi.begin(), g.phi.end(), [](double x) { return x == 0.0; }));
  }
}

TEST_CASE("an active clamp passes no gradient", "[upstream_backward]") {
  std::mt19937 rng(43);
  const int N = 6, E = Spec::embed_dim;
  auto q = testing::random_beliefs<Spec>(rng, 1, N, Covariance::diagonal);
  AttentionOptions o;
  o.mode = Mode::upstream;
  o.mask.causal = true;
  o.kappa = {0.7};
  const auto r = attention_forward<Spec>(q.view(), o);

  SECTION("the β floor: masked keys reach the loss through their values only") {
    // L = w·m_0. Row 0 attends to itself alone; keys j > 0 are masked and held at β = 1e-8. So
    // μ_j receives exactly 1e-8·Ω_0jᵀ w, and nothing reaches Σ or κ: no weight of row 0 moves.
    std::vector<double> w(std::size_t(N) * E, 0.0);
    for (int e = 0; e < E; ++e) w[e] = 1.0 + 0.1 * e;
    OutputGradients<double> g;
    g.mu = w.data();
    const auto grad = attention_backward<Spec>(q.view(), o, r, g);
    for (double x : grad.sigma) CHECK(x == 0.0);
    for (double x : grad.kappa) CHECK(x == 0.0);
    const auto v = q.view();
    for (int h = 0; h < Spec::num_heads; ++h) {
      const HeadInfo head = Spec::head(h);
      const Generators& G = upstream_generators(head.l);
      const Eigen::MatrixXd F0 = expm_pade(algebra_element(G, v.frame(0, 0)));
      const Eigen::VectorXd wh = Eigen::Map<const Eigen::VectorXd>(w.data() + head.offset, head.dim);
      for (int j = 1; j < N; ++j) {
        const Eigen::MatrixXd omega = F0 * expm_pade(-algebra_element(G, v.frame(0, j)));
        const Eigen::VectorXd expected = 1e-8 * omega.transpose() * wh;
        for (int k = 0; k < head.dim; ++k)
          CHECK(grad.mu[std::size_t(j) * E + head.offset + k] == Approx(expected(k)).epsilon(1e-12).margin(1e-22));
      }
    }
  }

  SECTION("the variance floor: a variance below 1e-6 gets no gradient through the KL") {
    // Token 2's variance on head 0 (ℓ0, Ω = 1) is below the floor, so σ_i and σ' = σ_j are clamped
    // in every pair it enters; with the mean message and the energy only, L does not depend on it.
    q.sigma[2 * E + 0] = 1e-7;
    AttentionOptions oe = o;
    oe.attention_energy = true;
    const auto re = attention_forward<Spec>(q.view(), oe);
    std::vector<double> wm(std::size_t(N) * E, 0.3), we(std::size_t(Spec::num_heads) * N, -0.7);
    OutputGradients<double> g;
    g.mu = wm.data();
    g.energy = we.data();
    const auto grad = attention_backward<Spec>(q.view(), oe, re, g);
    CHECK(grad.sigma[2 * E + 0] == 0.0);
    CHECK(grad.sigma[3 * E + 0] != 0.0);  // its neighbour, above the floor, does get one
  }
}

TEST_CASE("the upstream backward of float beliefs is computed in double", "[upstream_backward]") {
  // Both runs see the same float-rounded inputs and weights; they differ only by rounding the
  // gradients to float at the end, ~6e-8 relative.
  std::mt19937 rng(44);
  const auto qf = testing::random_beliefs<Spec, float>(rng, 1, 6, Covariance::full);
  const auto qd = qf.cast<double>();
  AttentionOptions o;
  o.mode = Mode::upstream;
  o.mask.causal = true;
  o.covariance_message = true;
  o.kappa = {0.9};
  std::vector<float> wf(std::size_t(6) * Spec::embed_dim), sf(std::size_t(6) * Spec::embed_dim * Spec::embed_dim);
  std::uniform_real_distribution<float> u(-1, 1);
  for (auto& x : wf) x = u(rng);
  for (auto& x : sf) x = u(rng);
  const std::vector<double> wd(wf.begin(), wf.end()), sd(sf.begin(), sf.end());
  const auto gf = attention_backward<Spec>(qf.view(), o, attention_forward<Spec>(qf.view(), o),
                                           OutputGradients<float>{wf.data(), sf.data(), nullptr});
  const auto gd = attention_backward<Spec>(qd.view(), o, attention_forward<Spec>(qd.view(), o),
                                           OutputGradients<double>{wd.data(), sd.data(), nullptr});
  CHECK(relative_error(gf.mu, gd.mu) < 1e-6);
  CHECK(relative_error(gf.sigma, gd.sigma) < 1e-6);
  CHECK(relative_error(gf.phi, gd.phi) < 1e-6);
  CHECK(relative_error(gf.kappa, gd.kappa) < 1e-12);
}
