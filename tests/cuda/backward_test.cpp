// GPU backward (cuda/backward.cuh) against the float64 CPU reference (backward.hpp) on random
// inputs: every named spec and an ℓ = 4 spec, diagonal and full covariances, the gradients of the
// mean and covariance messages and of the energy, every mask option, κ per head, awkward sizes and
// valid lengths; bad input. The backward is given the CPU forward's outputs (in float) as its saved
// state, except in the end-to-end test, where it reads the GPU forward's (whose energy and
// log-sum-exp are checked there too). The measured errors are printed. Without a GPU the program
// prints a skip and exits 77 (CTest: skipped).
#define CATCH_CONFIG_RUNNER
#include <gauge_attn/attention.hpp>
#include <gauge_attn/backward.hpp>
#include <gauge_attn/specs.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "../test_support.hpp"
#include "backward_runner.hpp"
#include "gpu_runner.hpp"

using namespace gauge_attn;

namespace {

using HigherSpin = IrrepSpec<Irrep<4, 1>, Irrep<1, 2>>;  // "l4-l1" in the runner

/// ‖got − ref‖ / max(‖ref‖, floor), ‖got‖ when both are zero (the frames under identity transport).
/// The floor is the scale below which a reference counts as zero: at N = 1 the frames' gradient
/// vanishes identically (m = μ whatever φ) and fp32 returns rounding.
double relative_error(const std::vector<float>& got, const std::vector<double>& ref, double floor = 0) {
  REQUIRE(got.size() == ref.size());
  double num = 0, den = 0;
  for (std::size_t k = 0; k < ref.size(); ++k) {
    num += (got[k] - ref[k]) * (got[k] - ref[k]);
    den += ref[k] * ref[k];
  }
  const double scale = std::max(std::sqrt(den), floor);
  return scale > 0 ? std::sqrt(num) / scale : std::sqrt(num);
}

double norm(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x * x;
  return std::sqrt(s);
}

std::vector<float> to_float(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

/// N(0, 1) values rounded to float (what the GPU sees), never all zero.
std::vector<double> random_gradient(std::mt19937& rng, std::size_t n) {
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> v(n);
  for (double& x : v) x = double(float(normal(rng)));
  return v;
}

// Float pair arithmetic against float64: each β_ij carries ~|score|·2⁻²³ relative error (scores
// a_i·k_j reach ~10² for these beliefs; ex2.approx adds 2⁻²²), the row sums of ≤ 200 terms and the
// softmax's cancellation (Σ_j s̄_ij = 0) add a few times that: ~1e-5 expected, 2e-4 allowed.
constexpr double gradient_tolerance = 2e-4;

struct Incoming {
  bool sigma = true, energy = true;  // which output gradients come in (the mean's always does)
};

struct Errors {
  double mu, sigma, phi, kappa;
};

Errors errors_of(const testing::GpuGradients& gpu, const BeliefGradients<double>& ref) {
  // The frames' gradient is measured against the means' gradient as its natural scale.
  return {relative_error(gpu.mu, ref.mu), relative_error(gpu.sigma, ref.sigma),
          relative_error(gpu.phi, ref.phi, 1e-3 * norm(ref.mu)), relative_error(gpu.kappa, ref.kappa)};
}

void check_errors(const std::string& name, int B, int N, Covariance kind, const AttentionOptions& o,
                  const Errors& e) {
  std::printf("%-11s B=%d N=%-4d %s dΣ=%d de=%d causal=%d self=%d window=%-2d alibi=%-5g identity=%d lengths=%zu: "
              "relative errors mu %.1e sigma %.1e phi %.1e kappa %.1e\n",
              name.c_str(), B, N, kind == Covariance::full ? "full" : "diag", o.covariance_message,
              o.attention_energy, o.mask.causal, o.mask.mask_self, o.mask.window, o.mask.alibi_slope,
              o.identity_transport, o.valid_lengths.size(), e.mu, e.sigma, e.phi, e.kappa);
  CHECK(e.mu < gradient_tolerance);
  CHECK(e.sigma < gradient_tolerance);
  CHECK(e.phi < gradient_tolerance);
  CHECK(e.kappa < gradient_tolerance);
}

/// Random float-rounded beliefs and incoming gradients for a run.
template <class Spec>
struct Inputs {
  Beliefs<double> q;
  std::vector<double> g_mu, g_sigma, g_energy;

  Inputs(std::mt19937& rng, int B, int N, Covariance kind, Incoming incoming)
      : q(testing::random_beliefs<Spec>(rng, B, N, kind).template cast<float>().template cast<double>()) {
    const std::size_t rows = std::size_t(B) * N;
    g_mu = random_gradient(rng, rows * Spec::embed_dim);
    if (incoming.sigma) g_sigma = random_gradient(rng, q.sigma.size());
    if (incoming.energy) g_energy = random_gradient(rng, rows * Spec::num_heads);
  }
  OutputGradients<double> cpu() const {
    return {g_mu.data(), g_sigma.empty() ? nullptr : g_sigma.data(), g_energy.empty() ? nullptr : g_energy.data()};
  }
  testing::GpuIncoming gpu() const { return {to_float(g_mu), to_float(g_sigma), to_float(g_energy)}; }
};

/// The GPU backward, given the CPU forward's outputs (rounded to float) as its saved state, against
/// the CPU float64 backward on the same float inputs.
template <class Spec>
void compare(const std::string& name, int B, int N, Covariance kind, AttentionOptions o, std::mt19937& rng,
             Incoming incoming = {}) {
  INFO(name << " B=" << B << " N=" << N << " full=" << (kind == Covariance::full) << " dsigma=" << incoming.sigma
            << " denergy=" << incoming.energy << " causal=" << o.mask.causal << " self=" << o.mask.mask_self
            << " window=" << o.mask.window << " alibi=" << o.mask.alibi_slope << " identity=" << o.identity_transport
            << " lengths=" << o.valid_lengths.size());
  o.covariance_message = incoming.sigma;
  o.attention_energy = incoming.energy;
  const Inputs<Spec> in(rng, B, N, kind, incoming);
  const auto forward = attention_forward<Spec>(in.q.view(), o);
  const testing::GpuSaved saved{to_float(forward.mu), to_float(forward.sigma), to_float(forward.energy),
                                to_float(forward.lse)};
  const auto gpu = testing::run_gpu_backward(name, B, N, kind, to_float(in.q.mu), to_float(in.q.sigma),
                                             to_float(in.q.phi), o, saved, in.gpu());
  check_errors(name, B, N, kind, o, errors_of(gpu, attention_backward<Spec>(in.q.view(), o, forward, in.cpu())));
}

/// Distinct temperatures per head, growing with the head's dimension K like the KL spread: at a
/// fixed κ a wide head's attention is one-hot and its κ and φ gradients are rounding.
template <class Spec>
std::vector<double> kappa_per_head() {
  std::vector<double> kappa;
  for (int h = 0; h < Spec::num_heads; ++h) kappa.push_back((0.5 + 0.1 * h) * Spec::head(h).dim / 3.0);
  return kappa;
}

}  // namespace

TEST_CASE("GPU forward then backward match the CPU reference", "[gpu]") {
  // The training step's pipeline on the device: the backward reads the GPU forward's own outputs.
  std::mt19937 rng(201);
  using Spec = specs::Upstream;
  for (const auto& base : testing::mask_variants(0.8, 17, 40, -0.05, -0.02))
    for (Covariance kind : {Covariance::diagonal, Covariance::full}) {
      AttentionOptions o = base;
      o.covariance_message = o.attention_energy = true;
      const int B = 2, N = 77;
      const Inputs<Spec> in(rng, B, N, kind, {});
      testing::GpuSaved saved;
      const auto gpu = testing::run_gpu_forward_backward(B, N, kind, to_float(in.q.mu), to_float(in.q.sigma),
                                                         to_float(in.q.phi), o, in.gpu(), saved);
      const auto forward = attention_forward<Spec>(in.q.view(), o);
      // The energy e_i = −κ ln 2 (Σ_j β_ij a_i·k_j) − ½ ln det Σ_i (G1) cancels terms of size
      // κ·|score| down to a KL: fp32 scores leave ~1e-5 of it.
      const double energy_error = relative_error(saved.energy, forward.energy);
      std::printf("forward energy (upstream, %s): relative error %.1e\n", kind == Covariance::full ? "full" : "diag",
                  energy_error);
      CHECK(energy_error < 1e-4);
      CHECK(relative_error(saved.lse, forward.lse) < 1e-5);
      check_errors("upstream", B, N, kind, o, errors_of(gpu, attention_backward<Spec>(in.q.view(), o, forward, in.cpu())));
    }
}

TEMPLATE_TEST_CASE("GPU backward matches the CPU reference for every named spec", "[gpu]", specs::Upstream,
                   specs::MoreTensor, specs::HigherRank, specs::Scaled, specs::SingleL9, HigherSpin) {
  std::mt19937 rng(202);
  std::string name = "l4-l1";
  if (std::is_same_v<TestType, specs::Upstream>) name = "upstream";
  if (std::is_same_v<TestType, specs::MoreTensor>) name = "more-tensor";
  if (std::is_same_v<TestType, specs::HigherRank>) name = "higher-rank";
  if (std::is_same_v<TestType, specs::Scaled>) name = "scaled";
  if (std::is_same_v<TestType, specs::SingleL9>) name = "single-l9";
  AttentionOptions o;
  o.mask.causal = true;
  o.kappa = kappa_per_head<TestType>();
  for (Covariance kind : {Covariance::diagonal, Covariance::full}) compare<TestType>(name, 2, 65, kind, o, rng);
}

TEST_CASE("GPU backward matches the CPU reference for each output's gradient", "[gpu]") {
  std::mt19937 rng(203);
  AttentionOptions o;
  o.mask.causal = true;
  o.kappa = kappa_per_head<specs::Upstream>();
  for (Covariance kind : {Covariance::diagonal, Covariance::full})
    for (Incoming in : {Incoming{false, false}, Incoming{true, false}, Incoming{false, true}})
      compare<specs::Upstream>("upstream", 2, 70, kind, o, rng, in);
}

TEST_CASE("GPU backward matches the CPU reference under every mask option", "[gpu]") {
  std::mt19937 rng(204);
  for (const auto& o : testing::mask_variants(0.8, 17, 40, -0.05, -0.02))
    for (Covariance kind : {Covariance::diagonal, Covariance::full})
      compare<specs::Upstream>("upstream", 2, 130, kind, o, rng);
  AttentionOptions o;  // a window and the self-mask together, without causality
  o.mask.window = 31;
  o.mask.mask_self = true;
  compare<specs::HigherRank>("higher-rank", 1, 150, Covariance::diagonal, o, rng);
}

TEST_CASE("GPU backward handles awkward sizes and valid lengths", "[gpu]") {
  std::mt19937 rng(205);
  AttentionOptions o;
  o.mask.causal = true;
  for (int N : {1, 2, 77, 200}) compare<specs::Upstream>("upstream", 2, N, Covariance::diagonal, o, rng);
  o.valid_lengths = {200, 1, 129};
  compare<specs::Upstream>("upstream", 3, 200, Covariance::full, o, rng);
  o.mask = MaskSpec{};
  o.valid_lengths = {77, 200};
  compare<specs::MoreTensor>("more-tensor", 2, 200, Covariance::diagonal, o, rng);
}

TEST_CASE("GPU backward reports bad input naming the argument", "[gpu]") {
  // Missing saved state, Mode::upstream and vectors of the wrong size, checked on the host.
  const std::pair<const char*, const char*> cases[] = {
      {"no lse", "saved.lse"},         {"no sigma", "saved.sigma"},         {"no energy", "saved.energy"},
      {"upstream", "mode"},            {"saved.lse", "saved.lse"},          {"incoming.mu", "incoming.mu"},
      {"incoming.energy", "incoming.energy"}, {"gradients.sigma", "gradients.sigma"},
      {"gradients.phi", "gradients.phi"},     {"gradients.kappa", "gradients.kappa"}};
  for (const auto& [what, argument] : cases) {
    INFO(what);
    CHECK(testing::backward_error(what) == argument);
  }
  CHECK(testing::backward_error("nothing wrong").empty());

  // Non-finite incoming gradients, found on the device and reported by check_inputs with the first
  // offending (b, n, head).
  std::mt19937 rng(206);
  using Spec = specs::Upstream;
  const int B = 2, N = 9, E = Spec::embed_dim, H = Spec::num_heads;
  const auto q = testing::random_beliefs<Spec>(rng, B, N, Covariance::diagonal).cast<float>().cast<double>();
  AttentionOptions o;
  o.covariance_message = o.attention_energy = true;
  const auto forward = attention_forward<Spec>(q.view(), o);
  const testing::GpuSaved saved{to_float(forward.mu), to_float(forward.sigma), to_float(forward.energy),
                                to_float(forward.lse)};
  const std::size_t rows = std::size_t(B) * N;
  const testing::GpuIncoming finite{std::vector<float>(rows * E, 0.5f), std::vector<float>(rows * E, 0.25f),
                                    std::vector<float>(rows * H, 1.f)};
  auto fails_with = [&](const testing::GpuIncoming& in, const std::string& argument, const std::string& where) {
    try {
      testing::run_gpu_backward("upstream", B, N, Covariance::diagonal, to_float(q.mu), to_float(q.sigma),
                                to_float(q.phi), o, saved, in);
    } catch (const InvalidArgument& e) {
      CHECK(e.argument() == argument);
      CHECK_THAT(e.what(), Catch::Contains(where));
      return;
    }
    FAIL("no InvalidArgument for " << argument);
  };
  auto bad = finite;
  bad.mu[(std::size_t(1) * N + 3) * E + Spec::head(6).offset + 1] = std::nanf("");
  fails_with(bad, "incoming.mu", "head 6 (\u21131) at (b=1, n=3)");
  bad = finite;
  bad.sigma[std::size_t(4) * E + Spec::head(8).offset] = INFINITY;
  fails_with(bad, "incoming.sigma", "head 8 (\u21132) at (b=0, n=4)");
  bad = finite;
  bad.energy[(std::size_t(1) * H + 2) * N + 7] = -INFINITY;  // (B, H, N)
  fails_with(bad, "incoming.energy", "head 2 (\u21130) at (b=1, n=7)");
}

int main(int argc, char** argv) {
  if (gauge_attn::testing::gpu_count() == 0) {
    std::puts("gpu_backward_test: no CUDA device, skipped");
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
