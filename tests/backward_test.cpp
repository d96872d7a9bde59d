// Tests of backward.hpp in exact mode: the gradients of μ, Σ, φ and κ against central finite
// differences in double for every named spec and a custom spec with ℓ = 4, both covariance kinds,
// every mask option, valid lengths, κ per head, both messages and the attention energy; the energy
// against the materialised matrices; float against double; padded tokens; bad input.
#include <gauge_attn/backward.hpp>
#include <gauge_attn/specs.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "gradient_check.hpp"
#include "test_support.hpp"

using namespace gauge_attn;
using namespace gauge_attn::testing;

namespace {

using CustomL4 = IrrepSpec<Irrep<4, 1>, Irrep<1, 1>>;  // E = 12: a head wider than any named spec's but ℓ9's
using ScalarsOnly = IrrepSpec<Irrep<0, 3>>;

/// Distinct temperatures per head, so that a gradient landing on the wrong head shows, growing with
/// the head's dimension K like the KL spread does: at a fixed κ a wide head's attention is one-hot,
/// its φ and κ gradients exponentially small and the differences all rounding.
template <class Spec>
std::vector<double> kappas(double base) {
  std::vector<double> k(Spec::num_heads);
  for (int h = 0; h < Spec::num_heads; ++h) k[h] = base * Spec::head(h).dim * (1.0 + 0.15 * h);
  return k;
}

/// The analytic gradients against central differences, norm-wise per input. With h = 1e-5 the
/// differences are good to ~1e-9 (truncation h², rounding ε/h); the backward is exact in double, so
/// 1e-6 leaves room for the ill-conditioned corners of random inputs and fails on any wrong term
/// (a dropped term of the chain rule moves a gradient by O(1) relative).
/// Wide specs difference every `every`-th entry of μ, Σ and φ, to keep the suite fast under the
/// sanitizers. Without `with_mean`, L leaves the mean messages out and their incoming gradient is null.
template <class Spec>
void check_against_differences(const Beliefs<double>& q, const AttentionOptions& opt, std::mt19937& rng,
                               std::size_t every = 1, bool with_mean = true) {
  Functional w = random_functional<Spec>(rng, q, opt);
  if (!with_mean) w.mu.clear();
  const AttentionResult<double> forward = attention_forward<Spec>(q.view(), opt);
  const BeliefGradients<double> g = attention_backward<Spec>(q.view(), opt, forward, w.incoming());
  const BeliefGradients<double> fd = finite_differences<Spec>(q, opt, w, 1e-5, every);
  constexpr double tolerance = 1e-6;
  INFO("mu " << relative_error(g.mu, fd.mu) << ", sigma " << relative_error(g.sigma, fd.sigma) << ", phi "
             << relative_error(g.phi, fd.phi) << ", kappa " << relative_error(g.kappa, fd.kappa));
  CHECK(relative_error(g.mu, fd.mu) < tolerance);
  CHECK(relative_error(g.sigma, fd.sigma) < tolerance);
  CHECK(relative_error(g.phi, fd.phi) < tolerance);
  CHECK(relative_error(g.kappa, fd.kappa) < tolerance);
}

template <class Spec>
AttentionOptions all_outputs(AttentionOptions opt) {
  opt.kappa = kappas<Spec>(0.6);
  opt.covariance_message = true;
  opt.attention_energy = true;
  return opt;
}

}  // namespace

TEMPLATE_TEST_CASE("exact gradients match finite differences for every named spec and ℓ = 4", "[backward]",
                   specs::Upstream, specs::MoreTensor, specs::HigherRank, specs::Scaled, specs::SingleL9, CustomL4) {
  std::mt19937 rng(101);
  AttentionOptions opt;
  opt.mask.causal = true;
  opt.mask.alibi_slope = 0.2;
  opt = all_outputs<TestType>(opt);
  for (Covariance kind : {Covariance::diagonal, Covariance::full}) {
    SECTION(kind == Covariance::diagonal ? "diagonal" : "full") {
      const bool wide = TestType::embed_dim > 40 || TestType::max_l > 4;
      check_against_differences<TestType>(random_beliefs<TestType>(rng, 2, wide ? 3 : 5, kind, 0.8), opt, rng,
                                          wide ? 5 : 1);
    }
  }
}

TEST_CASE("exact gradients match finite differences under every mask option and valid lengths", "[backward][mask]") {
  using Spec = specs::Upstream;
  std::mt19937 rng(202);
  std::vector<AttentionOptions> variants = mask_variants(0.7, 3, 4, 0.3, -0.25);
  AttentionOptions lengths;
  lengths.mask.causal = true;
  lengths.valid_lengths = {6, 2};
  variants.push_back(lengths);
  for (std::size_t v = 0; v < variants.size(); ++v)
    for (Covariance kind : {Covariance::diagonal, Covariance::full}) {
      INFO("mask variant " << v << (kind == Covariance::full ? ", full" : ", diagonal"));
      check_against_differences<Spec>(random_beliefs<Spec>(rng, 2, 6, kind, 1.0), all_outputs<Spec>(variants[v]), rng);
    }
}

TEST_CASE("exact gradients of each output alone match finite differences", "[backward]") {
  using Spec = specs::Upstream;
  std::mt19937 rng(303);
  AttentionOptions opt;
  opt.mask.causal = true;
  opt.kappa = kappas<Spec>(0.4);
  const auto q = random_beliefs<Spec>(rng, 1, 7, Covariance::full, 1.2);
  SECTION("mean message") { check_against_differences<Spec>(q, opt, rng); }
  SECTION("covariance message") {
    opt.covariance_message = true;
    check_against_differences<Spec>(q, opt, rng, 1, false);
  }
  SECTION("attention energy") {
    opt.attention_energy = true;
    check_against_differences<Spec>(q, opt, rng, 1, false);
  }
}

TEST_CASE("the attention energy is the β-weighted KL of the materialised matrices", "[backward][energy]") {
  using Spec = specs::HigherRank;
  std::mt19937 rng(404);
  for (const AttentionOptions& base : mask_variants(0.5, 4, 6, 0.3, 0.1)) {
    AttentionOptions opt = base;
    opt.attention_energy = true;
    opt.return_matrices = true;
    const int B = 2, N = 9, H = Spec::num_heads;
    const auto q = random_beliefs<Spec>(rng, B, N, Covariance::full, 1.0);
    const auto r = attention_forward<Spec>(q.view(), opt);
    double worst = 0;
    for (int b = 0; b < B; ++b)
      for (int h = 0; h < H; ++h)
        for (int i = 0; i < N; ++i) {
          double e = 0;
          for (int j = 0; j < N; ++j) e += r.beta[r.pair_index(b, h, i, j)] * r.kl[r.pair_index(b, h, i, j)];
          worst = std::max(worst, std::abs(e - r.energy[r.row_index(b, h, i)]) / std::max(1.0, std::abs(e)));
        }
    CHECK(worst < 1e-12);  // the same sums in another order, in double
  }
}

TEST_CASE("scalar heads give the frames no gradient", "[backward][symmetry]") {
  std::mt19937 rng(505);
  const auto q = random_beliefs<ScalarsOnly>(rng, 2, 6, Covariance::diagonal, 1.0);
  AttentionOptions opt = all_outputs<ScalarsOnly>(AttentionOptions{});
  const Functional w = random_functional<ScalarsOnly>(rng, q, opt);
  const auto g = attention_backward<ScalarsOnly>(q.view(), opt, attention_forward<ScalarsOnly>(q.view(), opt), w.incoming());
  for (double x : g.phi) CHECK(x == 0.0);
  CHECK(relative_error(g.mu, finite_differences<ScalarsOnly>(q, opt, w).mu) < 1e-6);
}

TEST_CASE("padded tokens get zero gradients", "[backward]") {
  using Spec = specs::Upstream;
  std::mt19937 rng(606);
  AttentionOptions opt = all_outputs<Spec>(AttentionOptions{});
  opt.mask.causal = true;
  opt.valid_lengths = {3, 5};
  for (Covariance kind : {Covariance::diagonal, Covariance::full}) {
    const auto q = random_beliefs<Spec>(rng, 2, 5, kind);
    const Functional w = random_functional<Spec>(rng, q, opt);
    const auto g = attention_backward<Spec>(q.view(), opt, attention_forward<Spec>(q.view(), opt), w.incoming());
    const std::size_t E = Spec::embed_dim, stride = q.view().sigma_stride();
    for (int i = 3; i < 5; ++i) {  // sequence 0, tokens 3 and 4
      for (std::size_t e = 0; e < E; ++e) CHECK(g.mu[i * E + e] == 0.0);
      for (std::size_t e = 0; e < stride; ++e) CHECK(g.sigma[i * stride + e] == 0.0);
      for (int a = 0; a < 3; ++a) CHECK(g.phi[i * 3 + a] == 0.0);
    }
  }
}

TEST_CASE("the float backward computes what the double one does", "[backward][precision]") {
  using Spec = specs::Upstream;
  std::mt19937 rng(707);
  AttentionOptions opt = all_outputs<Spec>(AttentionOptions{});
  opt.mask.causal = true;
  for (Covariance kind : {Covariance::diagonal, Covariance::full}) {
    const auto qd = random_beliefs<Spec>(rng, 2, 40, kind);
    const auto qf = qd.cast<float>();
    const Functional w = random_functional<Spec>(rng, qd, opt);
    const std::vector<float> wmu(w.mu.begin(), w.mu.end()), wsigma(w.sigma.begin(), w.sigma.end()),
        wenergy(w.energy.begin(), w.energy.end());
    const auto gd = attention_backward<Spec>(qd.view(), opt, attention_forward<Spec>(qd.view(), opt), w.incoming());
    const auto gf = attention_backward<Spec>(qf.view(), opt, attention_forward<Spec>(qf.view(), opt),
                                             {wmu.data(), wsigma.data(), wenergy.data()});
    // The float path differs by its float inputs' rounding (1e-7 relative) and the float row
    // log-sum-exp (β off by ~|L|·1e-7): a few 1e-6; 1e-4 still catches any real error.
    INFO("mu " << relative_error(gf.mu, gd.mu) << " sigma " << relative_error(gf.sigma, gd.sigma) << " phi "
               << relative_error(gf.phi, gd.phi) << " kappa " << relative_error(gf.kappa, gd.kappa));
    CHECK(relative_error(gf.mu, gd.mu) < 1e-4);
    CHECK(relative_error(gf.sigma, gd.sigma) < 1e-4);
    CHECK(relative_error(gf.phi, gd.phi) < 1e-4);
    CHECK(relative_error(gf.kappa, gd.kappa) < 1e-4);
  }
}

TEST_CASE("the backward refuses bad input, naming the argument", "[backward][errors]") {
  using Spec = specs::Upstream;
  std::mt19937 rng(808);
  const auto q = random_beliefs<Spec>(rng, 1, 4, Covariance::diagonal);
  AttentionOptions opt;
  const auto forward = attention_forward<Spec>(q.view(), opt);
  std::vector<double> g(q.mu.size(), 1.0), gs(q.sigma.size(), 1.0), ge(4 * Spec::num_heads, 1.0);
  auto argument_of = [&](const AttentionOptions& o, const AttentionResult<double>& f, const OutputGradients<double>& in,
                         const BeliefView<double>& view) {
    try {
      attention_backward<Spec>(view, o, f, in);
    } catch (const InvalidArgument& e) {
      return e.argument();
    }
    return std::string("nothing thrown");
  };
  CHECK(argument_of(opt, forward, {g.data(), gs.data(), nullptr}, q.view()) == "incoming.sigma");
  CHECK(argument_of(opt, forward, {g.data(), nullptr, ge.data()}, q.view()) == "incoming.energy");
  g[5] = std::numeric_limits<double>::quiet_NaN();
  CHECK(argument_of(opt, forward, {g.data(), nullptr, nullptr}, q.view()) == "incoming.mu");
  g[5] = 1.0;
  AttentionResult<double> no_lse = forward;
  no_lse.lse.clear();
  CHECK(argument_of(opt, no_lse, {g.data(), nullptr, nullptr}, q.view()) == "forward.lse");
  AttentionOptions upstream = opt;
  upstream.mode = Mode::upstream;  // an upstream-mode forward saves no log-sum-exp
  CHECK(argument_of(opt, attention_forward<Spec>(q.view(), upstream), {g.data(), nullptr, nullptr}, q.view()) ==
        "forward.lse");
  const auto longer = random_beliefs<Spec>(rng, 1, 5, Covariance::diagonal);
  CHECK(argument_of(opt, forward, {g.data(), nullptr, nullptr}, longer.view()) == "forward");
  AttentionOptions energy = opt;
  energy.attention_energy = true;
  CHECK(argument_of(energy, forward, {g.data(), nullptr, ge.data()}, q.view()) == "forward.energy");
}
