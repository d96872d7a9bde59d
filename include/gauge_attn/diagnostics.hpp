// gauge_attn/diagnostics.hpp: the upstream attention diagnostics (math.md §7) and their
// calibrated companions: per-head row_std with its class, the uniform baseline under the same
// mask, the normalised entropy, and the diversity of the beliefs.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "attention.hpp"
#include "belief.hpp"
#include "irreps.hpp"

namespace gauge_attn {

/// The upstream classes of a head's row_std: > 0.10 SHARP, > 0.05 MEDIUM, otherwise UNIFORM.
enum class AttentionClass { uniform, medium, sharp };

inline AttentionClass classify(double row_std) {
  return row_std > 0.10 ? AttentionClass::sharp : row_std > 0.05 ? AttentionClass::medium : AttentionClass::uniform;
}

inline const char* to_string(AttentionClass c) {
  switch (c) {
    case AttentionClass::sharp:
      return "SHARP";
    case AttentionClass::medium:
      return "MEDIUM";
    case AttentionClass::uniform:
      break;
  }
  return "UNIFORM";
}

struct HeadDiagnostics {
  int head = 0;
  int l = 0;
  RowStatistics rows;
  AttentionClass attention_class = AttentionClass::uniform;
  std::string label() const { return irrep_label(l); }
};

/// Per-head diagnostics of sequence b (the upstream report uses b = 0).
template <class Spec, class Scalar>
std::vector<HeadDiagnostics> head_diagnostics(const AttentionResult<Scalar>& r, int b = 0) {
  detail::require(b >= 0 && b < r.batch, "b", "sequence ", b, " is outside [0, ", r.batch, ")");
  std::vector<HeadDiagnostics> out;
  for (int h = 0; h < Spec::num_heads; ++h) {
    const RowStatistics& s = r.statistics(b, h);
    out.push_back({h, Spec::head(h).l, s, classify(s.row_std)});
  }
  return out;
}

/// The upstream line, e.g. `Head 8 (ℓ2): row_std=0.0684 [MEDIUM]`.
inline std::string format_upstream(const HeadDiagnostics& d) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "Head %d (%s): row_std=%.4f [%s]", d.head, d.label().c_str(), d.rows.row_std,
                to_string(d.attention_class));
  return buf;
}

/// The upstream line followed by the uniform baseline and the normalised entropy.
inline std::string format_calibrated(const HeadDiagnostics& d) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "  uniform=%.4f  entropy=%.3f", d.rows.uniform_row_std, d.rows.entropy);
  return format_upstream(d) + buf;
}

/// The diversity of the beliefs of sequence 0 (§7), with the KL statistics of the attention.
struct Diversity {
  double mu_dist = 0;     // mean off-diagonal Euclidean distance between the μ_i (whole embedding)
  double phi_std = 0;     // mean over the 3 components of the population std of φ across positions
  double sigma_min = 0, sigma_max = 0, sigma_mean = 0;  // over all variances (diagonals of full Σ)
  KlStatistics kl;        // head-averaged KL over off-diagonal pairs (attention_forward, kl_statistics)
};

/// Diversity of the first `n` tokens of sequence 0 (n = 0: all tokens). `kl` comes from an
/// attention_forward run with `kl_statistics` on.
template <class Scalar>
Diversity diversity(const BeliefView<Scalar>& q, const KlStatistics& kl, int n = 0) {
  if (n == 0) n = q.tokens;
  detail::require(n >= 1 && n <= q.tokens, "n", "token count ", n, " is outside [1, ", q.tokens, "]");
  const int E = q.embed_dim;
  Diversity d;
  d.kl = kl;
  double dist = 0;
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j)
      if (i != j) dist += (q.mean(0, i, 0, E) - q.mean(0, j, 0, E)).template cast<double>().norm();
  d.mu_dist = n > 1 ? dist / (double(n) * (n - 1)) : 0.0;
  Eigen::Vector3d mean = Eigen::Vector3d::Zero(), sq = Eigen::Vector3d::Zero();
  for (int i = 0; i < n; ++i) mean += q.frame(0, i) / n;
  for (int i = 0; i < n; ++i) sq += (q.frame(0, i) - mean).cwiseAbs2() / n;
  d.phi_std = sq.cwiseSqrt().mean();
  d.sigma_min = std::numeric_limits<double>::infinity();
  d.sigma_max = -d.sigma_min;
  double sum = 0;
  for (int i = 0; i < n; ++i)
    for (int e = 0; e < E; ++e) {
      const double v = q.covariance == Covariance::diagonal ? double(q.variances(0, i, 0, E)(e))
                                                              : double(q.block(0, i, 0, E)(e, e));
      d.sigma_min = std::min(d.sigma_min, v);
      d.sigma_max = std::max(d.sigma_max, v);
      sum += v;
    }
  d.sigma_mean = sum / (double(n) * E);
  return d;
}

/// The `[DIVERSITY]` block in the upstream format.
inline std::string format_diversity(const Diversity& d) {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "[DIVERSITY] mu_dist=%.4f phi_std=%.4f KL_std=%.4f\n"
                "[DIVERSITY] KL range=[%.4f, %.4f] mean=%.4f\n"
                "[DIVERSITY] sigma range=[%.6f, %.6f] mean=%.6f\n",
                d.mu_dist, d.phi_std, d.kl.std, d.kl.min, d.kl.max, d.kl.mean, d.sigma_min, d.sigma_max, d.sigma_mean);
  return buf;
}

}  // namespace gauge_attn
