// gauge_attn/study/study.hpp: the attention-uniformity study of the upstream note (upstream.md) as
// a library: synthetic beliefs calibrated to the upstream diversity (math.md §7), and a sweep of a
// named spec (§1) over temperatures κ and both modes (exact (M4), upstream §6), giving one row per
// head with the upstream row_std, its uniform baseline and the normalised entropy (§7), the KL
// statistics per head dimension K, and the attention maps β of sequence 0 at one κ.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "../attention.hpp"
#include "../belief.hpp"
#include "../diagnostics.hpp"
#include "../npy.hpp"
#include "../options.hpp"
#include "../specs.hpp"

namespace gauge_attn::study {

/// The upstream note's reported diversity at κ ≈ 0.0086 (math.md §7), the calibration targets.
struct UpstreamDiversity {
  static constexpr double mu_dist = 0.50, phi_std = 0.48, sigma_mean = 1.0;
  static constexpr double sigma_min = 0.0026, sigma_max = 6.71;  // the reported range, rounded inwards
  static constexpr double kl_mean = 0.0192;
};

/// The upstream shape and temperatures (upstream.md).
inline constexpr int upstream_batch = 24, upstream_tokens = 64;
inline const std::vector<double> upstream_kappas = {0.43, 0.0086, 0.00043};

/// The default κ list: the upstream values and a log grid of one point per decade, 1e-4 … 10,
/// in decreasing order (from uniform towards sharp attention).
inline std::vector<double> default_kappas() {
  std::vector<double> k = upstream_kappas;
  for (int e = -4; e <= 1; ++e) k.push_back(std::pow(10.0, e));
  std::sort(k.begin(), k.end(), [](double a, double b) { return a > b; });
  return k;
}

/// E‖x − y‖ for x, y independent N(0, s² I_E) is s·√2·E[χ_E], E[χ_E] = √2 Γ((E+1)/2) / Γ(E/2):
/// the per-component scale s whose expected μ_dist is `mu_dist` at embed dim E.
inline double mu_scale_for(double mu_dist, int embed_dim) {
  const double mean_chi = std::sqrt(2.0) * std::exp(std::lgamma((embed_dim + 1) / 2.0) - std::lgamma(embed_dim / 2.0));
  return mu_dist / (std::sqrt(2.0) * mean_chi);
}

/// The generating distribution, i.i.d. over batch, tokens and components:
///   μ ~ N(0, mu_scale²), φ ~ N(0, phi_std²), σ = clamp(exp(sigma_log_std·z − sigma_log_std²/2)), z ~ N(0, 1)
/// (so E σ = 1), clamped to the upstream σ range. mu_scale puts μ_dist at 0.50 for E = 19; the same
/// per-component scale is used for every spec, so that heads of one ℓ see the same data in every spec.
/// sigma_log_std is small because the upstream KL mean (0.0192) leaves little room for variance
/// differences between tokens: the wide upstream σ range is not reproduced, only its mean.
struct SyntheticOptions {
  int batch = upstream_batch, tokens = upstream_tokens;
  double mu_scale = mu_scale_for(UpstreamDiversity::mu_dist, 19);
  double phi_std = UpstreamDiversity::phi_std;
  double sigma_log_std = 0.1;
  std::uint32_t seed = 20251227;
};

/// Diagonal-covariance beliefs (B, N, E) drawn from the distribution above.
inline Beliefs<double> synthetic_beliefs(int embed_dim, const SyntheticOptions& o = {}) {
  detail::require(o.batch >= 1 && o.tokens >= 1, "synthetic", "batch and tokens must be >= 1, got ", o.batch, ", ",
                  o.tokens);
  Beliefs<double> q(o.batch, o.tokens, embed_dim, Covariance::diagonal);
  std::mt19937_64 rng(o.seed);
  std::normal_distribution<double> z(0.0, 1.0);
  for (double& x : q.mu) x = o.mu_scale * z(rng);
  for (double& x : q.phi) x = o.phi_std * z(rng);
  const double s = o.sigma_log_std;
  for (double& x : q.sigma)
    x = std::clamp(std::exp(s * z(rng) - s * s / 2), UpstreamDiversity::sigma_min, UpstreamDiversity::sigma_max);
  return q;
}

/// κ fixed for every spec, or scaled with the embed dim as the upstream training did (κ_base·E/11).
enum class KappaScaling { fixed, embed_dim };

inline const char* to_string(KappaScaling s) { return s == KappaScaling::fixed ? "fixed" : "embed-dim"; }
inline const char* to_string(Mode m) { return m == Mode::exact ? "exact" : "upstream"; }

/// One head of one spec at one κ in one mode (sequence 0, as the upstream report).
struct HeadRow {
  std::string spec;
  double kappa_base = 0, kappa = 0;
  Mode mode = Mode::exact;
  HeadDiagnostics head;
};

/// The diversity of the beliefs a spec ran on, with the KL statistics of one mode (KL does not
/// depend on κ, so one per spec and mode).
struct DiversityRow {
  std::string spec;
  Mode mode = Mode::exact;
  Diversity diversity;
};

/// The KL of the heads of one ℓ (dimension K = 2ℓ+1) of one spec and mode, over the off-diagonal
/// pairs of sequence 0 (masked pairs included) of every such head, pooled: the per-K companion of
/// the [DIVERSITY] KL, which averages over all heads first. KL does not depend on κ.
struct KlByDim {
  std::string spec;
  Mode mode = Mode::exact;
  int l = 0, heads = 0;
  KlStatistics kl;
  int dim() const { return 2 * l + 1; }
};

/// The attention weights β of every head on sequence 0 of one spec and mode at one κ.
struct AttentionMaps {
  std::string spec;
  double kappa_base = 0, kappa = 0;
  Mode mode = Mode::exact;
  MaskSpec mask;
  int tokens = 0;
  std::vector<int> l;        // (H) ℓ of each head
  std::vector<double> beta;  // (H, N, N)
  double at(int h, int i, int j) const { return beta[(std::size_t(h) * tokens + i) * tokens + j]; }
};

struct SweepResult {
  std::vector<HeadRow> heads;          // spec, κ, mode, head order
  std::vector<DiversityRow> diversity;  // spec, mode order
  std::vector<KlByDim> kl_by_dim;      // spec, mode, ℓ order
  std::vector<AttentionMaps> maps;     // spec, mode order
};

/// The attention options of the upstream study: causal, self-masked (math.md §6), KL statistics on.
inline AttentionOptions study_options(double kappa, Mode mode) {
  AttentionOptions o;
  o.kappa = {kappa};
  o.mask.causal = true;
  o.mask.mask_self = true;
  o.kl_statistics = true;
  o.mode = mode;
  return o;
}

/// How the sweep runs one attention of a named spec: attention_forward on the CPU (cpu_attention),
/// or another device's path with the same results to rounding (the study tool's --device).
template <class Scalar>
using AttentionRunner = std::function<AttentionResult<Scalar>(const std::string& spec, const BeliefView<Scalar>& q,
                                                              const AttentionOptions& options)>;

template <class Scalar>
AttentionResult<Scalar> cpu_attention(const std::string& spec, const BeliefView<Scalar>& q,
                                      const AttentionOptions& options) {
  return specs::visit(spec, [&](auto s) { return attention_forward<decltype(s)>(q, options); });
}

/// The number of attention runs sweep_spec makes for a list of `kappas` (for progress reports).
inline std::size_t sweep_runs(std::size_t kappas) { return 2 * (kappas + 1); }

/// Runs the named spec on q for every κ base in `kappas` and both modes, appending to `out`; then,
/// per mode, sequence 0 alone at κ base `map_kappa` for its attention maps and KL per ℓ. Calls
/// `on_run` after each of the sweep_runs() runs, each through `attention`. Throws InvalidArgument
/// for an unknown spec or beliefs whose E is not the spec's.
template <class Scalar>
void sweep_spec(const std::string& name, const BeliefView<Scalar>& q, const std::vector<double>& kappas,
                KappaScaling scaling, SweepResult& out, double map_kappa = upstream_kappas[1],
                const std::function<void()>& on_run = [] {},
                const AttentionRunner<Scalar>& attention = cpu_attention<Scalar>) {
  specs::visit(name, [&](auto spec) {
    using Spec = decltype(spec);
    detail::require(q.embed_dim == Spec::embed_dim, "spec", "'", name, "' has E = ", Spec::embed_dim,
                    " but the beliefs have E = ", q.embed_dim);
    auto scaled = [&](double base) {
      return scaling == KappaScaling::fixed ? base : upstream_scaled_kappa(base, Spec::embed_dim);
    };
    for (Mode mode : {Mode::exact, Mode::upstream}) {
      for (std::size_t k = 0; k < kappas.size(); ++k) {
        const double kappa = scaled(kappas[k]);
        const AttentionResult<Scalar> r = attention(name, q, study_options(kappa, mode));
        for (const HeadDiagnostics& d : head_diagnostics<Spec>(r)) out.heads.push_back({name, kappas[k], kappa, mode, d});
        if (k == 0) out.diversity.push_back({name, mode, diversity(q, r.kl_statistics)});
        on_run();
      }
      // Sequence 0 alone with its KL and β matrices: the maps at map_kappa, and the KL per ℓ (which
      // does not depend on κ) over the same pairs as the [DIVERSITY] KL.
      BeliefView<Scalar> first = q;  // sequence 0 leads every array
      first.batch = 1;
      AttentionOptions o = study_options(scaled(map_kappa), mode);
      o.kl_statistics = false;
      o.return_matrices = true;
      const AttentionResult<Scalar> r = attention(name, first, o);
      std::vector<int> l;
      for (int h = 0; h < Spec::num_heads; ++h) l.push_back(Spec::head(h).l);
      out.maps.push_back({name, map_kappa, o.kappa[0], mode, o.mask, q.tokens, l, {r.beta.begin(), r.beta.end()}});
      const int n = q.tokens;
      Spec::for_each_irrep([&](auto irrep, int first_head) {
        using Irrep = decltype(irrep);
        detail::RunningMoments kl;
        for (int h = first_head; h < first_head + Irrep::heads; ++h)
          for (int i = 0; i < n; ++i)
            for (int j = 0; j < n; ++j)
              if (i != j) kl.add(double(r.kl[r.pair_index(0, h, i, j)]));
        out.kl_by_dim.push_back({name, mode, Irrep::l, Irrep::heads, kl.statistics()});
      });
      on_run();
    }
  });
}

/// Heads of one ℓ at one (spec, κ, mode): means of the row statistics and the count per class.
struct SpinSummary {
  std::string spec;
  double kappa_base = 0, kappa = 0;
  Mode mode = Mode::exact;
  int l = 0, heads = 0;
  double row_std = 0, uniform_row_std = 0, entropy = 0;
  int uniform = 0, medium = 0, sharp = 0;
};

/// One SpinSummary per (spec, κ, mode, ℓ) of `rows`, in the order the rows first show them.
inline std::vector<SpinSummary> summarise_by_spin(const std::vector<HeadRow>& rows) {
  std::vector<SpinSummary> out;
  for (const HeadRow& r : rows) {
    auto same = [&](const SpinSummary& s) {
      return s.spec == r.spec && s.kappa_base == r.kappa_base && s.mode == r.mode && s.l == r.head.l;
    };
    auto it = std::find_if(out.begin(), out.end(), same);
    if (it == out.end()) it = out.insert(out.end(), SpinSummary{r.spec, r.kappa_base, r.kappa, r.mode, r.head.l});
    ++it->heads;
    it->row_std += r.head.rows.row_std;
    it->uniform_row_std += r.head.rows.uniform_row_std;
    it->entropy += r.head.rows.entropy;
    const AttentionClass c = r.head.attention_class;
    ++(c == AttentionClass::uniform ? it->uniform : c == AttentionClass::medium ? it->medium : it->sharp);
  }
  for (SpinSummary& s : out) {
    s.row_std /= s.heads;
    s.uniform_row_std /= s.heads;
    s.entropy /= s.heads;
  }
  return out;
}

/// The spec names a run over beliefs of embed dim E may use: those of `requested` (an empty list
/// or "all": every named spec) whose E matches. Throws InvalidArgument when none matches, when a
/// requested spec does not match, or when E fits several specs and none was requested by name.
inline std::vector<std::string> specs_for_embed_dim(const std::vector<std::string>& requested, int embed_dim) {
  const bool all = requested.empty() || (requested.size() == 1 && requested[0] == "all");
  std::vector<std::string> out;
  if (!all) {
    for (const std::string& name : requested) {
      const int E = specs::visit(name, [](auto spec) { return decltype(spec)::embed_dim; });
      detail::require(E == embed_dim, "spec", "'", name, "' has E = ", E, " but the input has E = ", embed_dim);
      out.push_back(name);
    }
    return out;
  }
  for (std::string_view name : specs::names)
    if (specs::visit(name, [](auto spec) { return decltype(spec)::embed_dim; }) == embed_dim) out.emplace_back(name);
  detail::require(!out.empty(), "spec", "no named spec has E = ", embed_dim);
  detail::require(out.size() == 1, "spec", "E = ", embed_dim, " fits several specs (", out[0], ", ", out[1],
                  "): name one with --spec");
  return out;
}

/// "ℓ0×5 ℓ1×3 ℓ2×1, E = 19, 9 heads" for a named spec.
inline std::string describe_spec(const std::string& name) {
  return specs::visit(name, [](auto spec) {
    using Spec = decltype(spec);
    std::string s;
    Spec::for_each_irrep([&](auto irrep, int) {
      s += irrep_label(decltype(irrep)::l) + "\u00d7" + std::to_string(decltype(irrep)::heads) + " ";
    });
    return s.substr(0, s.size() - 1) + ", E = " + std::to_string(Spec::embed_dim) + ", " +
           std::to_string(Spec::num_heads) + " heads";
  });
}

/// Beliefs from .npy files (float32 or float64): μ (B, N, E), Σ diagonal (B, N, E) or full
/// (B, N, E, E), φ (B, N, 3). Throws InvalidArgument (NpyError for unreadable files) naming the
/// file for a wrong rank or shape, a non-finite value (with its index) or a variance <= 0.
inline Beliefs<double> load_beliefs(const std::string& mu_path, const std::string& sigma_path,
                                    const std::string& phi_path) {
  const NpyArray mu = read_npy(mu_path), sigma = read_npy(sigma_path), phi = read_npy(phi_path);
  auto check_finite = [](const NpyArray& a, const std::string& path) {
    const std::size_t bad = first_non_finite(a);
    detail::require(bad == a.size(), path.c_str(), "non-finite value ", bad < a.size() ? a.data[bad] : 0.0,
                    " at flat index ", bad, " of shape ", detail::npy_shape_string(a.shape));
  };
  check_finite(mu, mu_path);
  check_finite(sigma, sigma_path);
  check_finite(phi, phi_path);
  detail::require(mu.rank() == 3 && mu.shape[0] >= 1 && mu.shape[1] >= 1 && mu.shape[2] >= 1, mu_path.c_str(),
                  "mu must have shape (B, N, E) with B, N, E >= 1, got ", detail::npy_shape_string(mu.shape));
  const std::size_t B = mu.shape[0], N = mu.shape[1], E = mu.shape[2];
  const bool diagonal = sigma.shape == std::vector<std::size_t>{B, N, E};
  detail::require(diagonal || sigma.shape == std::vector<std::size_t>{B, N, E, E}, sigma_path.c_str(),
                  "sigma must have shape (B, N, E) = ", detail::npy_shape_string({B, N, E}), " or (B, N, E, E), got ",
                  detail::npy_shape_string(sigma.shape));
  detail::require(phi.shape == std::vector<std::size_t>{B, N, 3}, phi_path.c_str(), "phi must have shape (B, N, 3) = ",
                  detail::npy_shape_string({B, N, 3}), ", got ", detail::npy_shape_string(phi.shape));
  Beliefs<double> q(int(B), int(N), int(E), diagonal ? Covariance::diagonal : Covariance::full);
  q.mu = mu.data;
  q.sigma = sigma.data;
  q.phi = phi.data;
  validate_values(q.view());
  return q;
}

}  // namespace gauge_attn::study
