// Learning beliefs with the backward pass: a few hundred steps of Adam on the means μ, the
// variances σ, the frames φ and the per-head temperatures κ of the upstream spec, so that the
// attention messages match those of a hidden "teacher" (docs/gradients.md).
//
//   learn_beliefs [--steps N] [--print-every K] [--seed S] [--device cpu|cuda]
//
// The teacher is a second set of random beliefs and temperatures; its messages m*_i are the
// targets, so the optimum is reachable and the loss can fall far. The loss is
//
//   L = ½·mean_(b,i) ‖m_i − m*_i‖²  +  λ·mean_(b,h,i) e_ih,     e_ih = Σ_j β_ij KL_ij   (G1)
//
// a data term on the mean messages (M6) plus a small attention energy, the belief-alignment term of
// the upstream free energy. The student matches the teacher's messages, not its parameters: other
// beliefs and temperatures give the same messages, so its κ need not come out as the teacher's.
//
// Every step is one forward, the loss and its incoming gradients, one backward, the chain rule
// through the reparametrisations and one Adam update. Only evaluate() talks to the library: the
// parameters, the loss bookkeeping and the optimiser work on plain host vectors, and --device cuda
// swaps in gpu::Forward and gpu::Backward (learn_beliefs_gpu.cu, in float; built when CUDA is).
// Exits with 1 if the loss did not fall (the example tests rely on it), 77 for --device cuda
// without a GPU (CTest: skipped).
#include <gauge_attn/backward.hpp>
#include <gauge_attn/gauge_attn.hpp>

#if defined(GAUGE_ATTN_EXAMPLE_CUDA)
#include "learn_beliefs_gpu.hpp"
#endif

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <random>
#include <string>
#include <vector>

using namespace gauge_attn;
using Spec = specs::Upstream;  // ℓ0×5, ℓ1×3, ℓ2×1: E = 19, H = 9

namespace {

constexpr int B = 4;                    // sequences
constexpr int N = 32;                   // tokens per sequence, causal mask
constexpr int E = Spec::embed_dim;      // 19
constexpr int H = Spec::num_heads;      // 9
constexpr double lambda = 0.01;         // weight of the attention energy
constexpr double learning_rate = 0.05;  // Adam's step size, the same for every tensor

/// What is learnt, as flat C-order vectors. The variances and the temperatures are stored through
/// their logarithms, so that any update keeps them positive: σ = exp(s), κ = exp(k).
struct Parameters {
  std::vector<double> mu = std::vector<double>(std::size_t(B) * N * E);         // (B, N, E) μ
  std::vector<double> log_sigma = std::vector<double>(std::size_t(B) * N * E);  // (B, N, E) s = log σ
  std::vector<double> phi = std::vector<double>(std::size_t(B) * N * 3);        // (B, N, 3) φ
  std::vector<double> log_kappa = std::vector<double>(H);                       // (H)       k = log κ

  /// The four tensors, for the loops that treat them alike (the optimiser).
  std::array<std::vector<double>*, 4> tensors() { return {&mu, &log_sigma, &phi, &log_kappa}; }
  std::array<const std::vector<double>*, 4> tensors() const { return {&mu, &log_sigma, &phi, &log_kappa}; }

  /// The beliefs the forward reads: μ, σ = exp(s) (diagonal covariances), φ.
  Beliefs<double> beliefs() const {
    Beliefs<double> q(B, N, E, Covariance::diagonal);
    q.mu = mu;
    std::transform(log_sigma.begin(), log_sigma.end(), q.sigma.begin(), [](double s) { return std::exp(s); });
    q.phi = phi;
    return q;
  }
  /// κ = exp(k), one temperature per head.
  std::vector<double> kappa() const {
    std::vector<double> k(H);
    std::transform(log_kappa.begin(), log_kappa.end(), k.begin(), [](double x) { return std::exp(x); });
    return k;
  }
};

/// Random beliefs like the quick start's: μ ~ N(0, 1), σ ~ U(0.5, 2), φ ~ N(0, 0.5²), and one κ
/// per head ~ U(kappa_low, kappa_high).
Parameters random_parameters(std::mt19937& rng, double kappa_low, double kappa_high) {
  std::normal_distribution<double> normal(0.0, 1.0);
  std::uniform_real_distribution<double> variance(0.5, 2.0), temperature(kappa_low, kappa_high);
  Parameters p;
  for (auto& x : p.mu) x = normal(rng);
  for (auto& x : p.log_sigma) x = std::log(variance(rng));
  for (auto& x : p.phi) x = 0.5 * normal(rng);
  for (auto& x : p.log_kappa) x = std::log(temperature(rng));
  return p;
}

/// The forward's options: causal, one κ per head; the energy e_ih (G1) on request.
AttentionOptions options(const Parameters& p, bool energy) {
  AttentionOptions opt;
  opt.kappa = p.kappa();
  opt.mask.causal = true;
  opt.attention_energy = energy;
  return opt;
}

/// The loss of one forward and its gradients with respect to the forward's outputs.
struct Loss {
  double data = 0;    // ½·mean_(b,i) ‖m_i − m*_i‖²
  double energy = 0;  // mean_(b,h,i) e_ih
  double total() const { return data + lambda * energy; }
  std::vector<double> dL_dm;  // (B, N, E) = (m − m*)/(B·N)
  std::vector<double> dL_de;  // (B, H, N) = λ/(B·N·H), the same for every row and head
};

/// Backend-free: the messages m (B, N, E) and energies e (B, H, N) of the forward, the targets m*.
Loss loss(const std::vector<double>& m, const std::vector<double>& e, const std::vector<double>& target) {
  Loss l;
  const double rows = double(B) * N;
  l.dL_dm.resize(m.size());
  for (std::size_t k = 0; k < m.size(); ++k) {
    const double r = m[k] - target[k];
    l.data += 0.5 * r * r / rows;
    l.dL_dm[k] = r / rows;
  }
  for (double x : e) l.energy += x / (rows * H);
  l.dL_de.assign(e.size(), lambda / (rows * H));
  return l;
}

/// dL/d(parameters) from dL/d(beliefs): dμ as is, ds = σ·dσ (σ = exp s), dφ as is, dk = κ·dκ.
Parameters chain_rule(const Parameters& p, const BeliefGradients<double>& g) {
  Parameters d;
  d.mu = g.mu;
  for (std::size_t k = 0; k < d.log_sigma.size(); ++k) d.log_sigma[k] = std::exp(p.log_sigma[k]) * g.sigma[k];
  d.phi = g.phi;
  for (int h = 0; h < H; ++h) d.log_kappa[h] = std::exp(p.log_kappa[h]) * g.kappa[h];
  return d;
}

/// The loss at p and its gradient dL/d(parameters).
struct Evaluation {
  Loss loss;
  Parameters gradient;
};

#if defined(GAUGE_ATTN_EXAMPLE_CUDA)
/// The same step on the GPU: one gpu::Forward and one gpu::Backward, through the vectors of the
/// host (the beliefs go up and the gradients come down every step, which a real trainer would not do).
Evaluation evaluate_gpu(learn_beliefs::GpuAttention& gpu, const Parameters& p, const std::vector<double>& target) {
  const Beliefs<double> q = p.beliefs();
  std::vector<double> m, e;
  gpu.forward(q.mu, q.sigma, q.phi, p.kappa(), m, e);
  Evaluation ev;
  ev.loss = loss(m, e, target);
  BeliefGradients<double> g(B, N, E, H, Covariance::diagonal);
  gpu.backward(ev.loss.dL_dm, ev.loss.dL_de, g.mu, g.sigma, g.phi, g.kappa);
  ev.gradient = chain_rule(p, g);
  return ev;
}
#endif

/// One forward and one backward on the CPU: the only library calls of the example.
Evaluation evaluate(const Parameters& p, const std::vector<double>& target) {
  const Beliefs<double> q = p.beliefs();
  const AttentionOptions opt = options(p, true);
  // Forward: out.mu (B, N, E) the messages m_i (M6), out.energy (B, H, N) the e_ih (G1), and
  // out.lse (B, H, N), the row log-sum-exp the backward recomputes β from.
  const AttentionResult<double> out = attention_forward<Spec>(q.view(), opt);
  Evaluation ev;
  ev.loss = loss(out.mu, out.energy, target);
  // Backward: the incoming dL/dm and dL/de (no covariance messages were asked for, so no dL/dΣ^agg)
  // give dL/dμ, dL/dσ (G12), dL/dφ (G13) and dL/dκ per head (G9).
  OutputGradients<double> incoming;
  incoming.mu = ev.loss.dL_dm.data();
  incoming.energy = ev.loss.dL_de.data();
  const BeliefGradients<double> g = attention_backward<Spec>(q.view(), opt, out, incoming);
  ev.gradient = chain_rule(p, g);
  return ev;
}

/// Adam (Kingma & Ba 2015) with bias correction, one learning rate for every tensor.
struct Adam {
  double lr = learning_rate, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  int t = 0;
  Parameters m, v;  // first and second moments, shaped like the parameters, zero at the start
  void step(Parameters& p, const Parameters& g) {
    ++t;
    const double c1 = 1 - std::pow(beta1, t), c2 = 1 - std::pow(beta2, t);
    const auto ps = p.tensors(), ms = m.tensors(), vs = v.tensors();
    const auto gs = g.tensors();
    for (std::size_t k = 0; k < ps.size(); ++k)
      for (std::size_t e = 0; e < ps[k]->size(); ++e) {
        const double ge = (*gs[k])[e];
        double& me = (*ms[k])[e];
        double& ve = (*vs[k])[e];
        me = beta1 * me + (1 - beta1) * ge;
        ve = beta2 * ve + (1 - beta2) * ge * ge;
        (*ps[k])[e] -= lr * (me / c1) / (std::sqrt(ve / c2) + eps);
      }
  }
};

/// --steps N, --print-every K, --seed S.
struct Arguments {
  int steps = 300, print_every = 25;
  unsigned seed = 1;
  bool cuda = false;  // --device cuda
};
Arguments parse(int argc, char** argv) {
  Arguments a;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::printf("usage: learn_beliefs [--steps N (300)] [--print-every K (25)] [--seed S (1)] [--device cpu|cuda]\n");
      std::exit(0);
    }
    detail::require(i + 1 < argc, flag.c_str(), "needs a value");
    if (flag == "--device") {
      const std::string device = argv[++i];
      detail::require(device == "cpu" || device == "cuda", "--device", "is cpu or cuda, got '", device, "'");
      a.cuda = device == "cuda";
      continue;
    }
    char* end = nullptr;
    const long value = std::strtol(argv[++i], &end, 10);
    detail::require(*argv[i] != '\0' && *end == '\0', flag.c_str(), "expects an integer, got '", argv[i], "'");
    if (flag == "--steps") {
      detail::require(value >= 1, "--steps", "must be >= 1, got ", value);
      a.steps = int(value);
    } else if (flag == "--print-every") {
      detail::require(value >= 1, "--print-every", "must be >= 1, got ", value);
      a.print_every = int(value);
    } else if (flag == "--seed") {
      detail::require(value >= 0, "--seed", "must be >= 0, got ", value);
      a.seed = unsigned(value);
    } else {
      detail::require(false, flag.c_str(), "unknown option (known: --steps, --print-every, --seed, --device)");
    }
  }
  return a;
}

void print_row(int step, const Loss& l, const Parameters& p) {
  const std::vector<double> k = p.kappa();
  std::printf("%5d  %11.6f  %11.6f  %9.5f   %.3f..%.3f\n", step, l.total(), l.data, l.energy,
              *std::min_element(k.begin(), k.end()), *std::max_element(k.begin(), k.end()));
}

}  // namespace

int main(int argc, char** argv) try {
  const Arguments args = parse(argc, argv);
  std::mt19937 rng(args.seed);
#if defined(GAUGE_ATTN_EXAMPLE_CUDA)
  if (args.cuda && learn_beliefs::GpuAttention::devices() == 0) {
    std::printf("learn_beliefs: no CUDA device, skipped\n");
    return 77;
  }
  std::unique_ptr<learn_beliefs::GpuAttention> gpu;
  if (args.cuda) gpu = std::make_unique<learn_beliefs::GpuAttention>(B, N);
  auto step_at = [&](const Parameters& p, const std::vector<double>& t) { return gpu ? evaluate_gpu(*gpu, p, t) : evaluate(p, t); };
#else
  detail::require(!args.cuda, "--device", "cuda: this build has no CUDA (configure with GAUGE_ATTN_ENABLE_CUDA=ON)");
  auto step_at = [](const Parameters& p, const std::vector<double>& t) { return evaluate(p, t); };
#endif

  // The teacher: random beliefs and κ* ~ U(0.5, 2) per head; its messages m* (B, N, E) are the targets.
  const Parameters teacher = random_parameters(rng, 0.5, 2.0);
  const std::vector<double> target = attention_forward<Spec>(teacher.beliefs().view(), options(teacher, false)).mu;

  // The student: other random beliefs of the same distribution, κ = 1 for every head.
  Parameters student = random_parameters(rng, 1.0, 1.0);
  Adam adam;

  std::printf("learn_beliefs: upstream spec (ℓ0×5, ℓ1×3, ℓ2×1, E = %d, H = %d), B = %d, N = %d, causal, on the %s\n",
              E, H, B, N, args.cuda ? "GPU" : "CPU");
  std::printf("L = ½·mean ‖m − m*‖² + λ·mean e (λ = %g); Adam lr = %g on μ, log σ, φ, log κ; %d steps, seed %u\n",
              lambda, learning_rate, args.steps, args.seed);
  std::printf("%5s  %11s  %11s  %9s   %s\n", "step", "loss", "data", "energy", "κ min..max");

  const auto start = std::chrono::steady_clock::now();
  double first = 0;
  for (int step = 0; step < args.steps; ++step) {
    const Evaluation ev = step_at(student, target);  // L at the current parameters, and dL/d(parameters)
    if (step == 0) first = ev.loss.total();
    if (step % args.print_every == 0) print_row(step, ev.loss, student);
    adam.step(student, ev.gradient);
  }
  const Evaluation final_ev = step_at(student, target);  // the loss after the last update
  print_row(args.steps, final_ev.loss, student);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%d steps in %.2f s\n", args.steps, seconds);

  const double last = final_ev.loss.total();
  if (!(std::isfinite(last) && last < first)) {
    std::printf("loss did not fall: from %.6g to %.6g\n", first, last);
    return 1;
  }
  std::printf("loss fell from %.6g to %.6g (×%.1f)\n", first, last, first / last);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "learn_beliefs: %s\n", e.what());
  return 2;
}
