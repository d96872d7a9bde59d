// gauge_attn/options.hpp: the options of the attention forward, shared by the CPU and CUDA
// paths, and their checks (no Eigen, so the CUDA host API can include it).
#pragma once

#include <cmath>
#include <vector>

#include "error.hpp"
#include "mask.hpp"

namespace gauge_attn {

/// How the covariances of the beliefs are given: K variances, or full K×K blocks.
enum class Covariance { diagonal, full };

enum class Mode {
  exact,    // (M4) through (M8), exact Wigner-D transport
  upstream  // math.md §6, for parity with the upstream project
};

/// The exponential of the upstream mode (the exact mode always uses wigner_d).
enum class UpstreamExponential { pade, taylor4 };

struct AttentionOptions {
  std::vector<double> kappa{1.0};  // temperature per head, or one value for every head; > 0
  MaskSpec mask;                   // causal, self-mask, local window, ALiBi
  bool identity_transport = false; // Ω = I (ablation): the frames φ are ignored
  std::vector<int> valid_lengths;  // per sequence, 1..N; empty: all N tokens valid
  bool covariance_message = false; // also Σ^agg (M7/M9)
  bool attention_energy = false;   // also e_ih = Σ_j β_ij KL_ij per row and head (docs/gradients.md G1)
  bool return_matrices = false;    // also KL and β, (B, H, N, N): for small N only
  bool kl_statistics = false;      // KL statistics of sequence 0 for the diversity report, O(N²)
  Mode mode = Mode::exact;
  UpstreamExponential exponential = UpstreamExponential::pade;
  // Mode::upstream backward, full Σ only: the upstream autograd's gradient, KL taken from detached inputs: KL, β fixed
  bool upstream_detached_kl = false;
};

/// The upstream training script's temperature, the same for every head: κ = κ_base·E/11.
inline double upstream_scaled_kappa(double kappa_base, int embed_dim) { return kappa_base * embed_dim / 11.0; }

/// Mean, std (population), min and max of the head-averaged KL over the off-diagonal pairs of
/// sequence 0, masked (future) pairs included, as the upstream diversity report has them (§7).
struct KlStatistics {
  double mean = 0, std = 0, min = 0, max = 0;
  long long count = 0;
};

namespace detail {

inline std::vector<double> kappa_per_head(const AttentionOptions& opt, int num_heads) {
  require(opt.kappa.size() == 1 || int(opt.kappa.size()) == num_heads, "kappa", "needs 1 or ", num_heads,
          " values (one per head), got ", opt.kappa.size());
  for (double k : opt.kappa) require(std::isfinite(k) && k > 0, "kappa", "must be finite and > 0, got ", k);
  return opt.kappa.size() == 1 ? std::vector<double>(num_heads, opt.kappa[0]) : opt.kappa;
}

inline std::vector<int> lengths_per_sequence(const AttentionOptions& opt, int batch, int tokens) {
  if (opt.valid_lengths.empty()) return std::vector<int>(batch, tokens);
  require(int(opt.valid_lengths.size()) == batch, "valid_lengths", "needs one length per sequence (", batch,
          "), got ", opt.valid_lengths.size());
  for (std::size_t b = 0; b < opt.valid_lengths.size(); ++b)
    require(opt.valid_lengths[b] >= 1 && opt.valid_lengths[b] <= tokens, "valid_lengths",
            "length ", opt.valid_lengths[b], " of sequence ", b, " is outside [1, ", tokens, "]");
  return opt.valid_lengths;
}

inline void check_mask(const MaskSpec& m) {
  require(m.window >= 0, "window", "must be >= 0 (0 = no window), got ", m.window);
  require(std::isfinite(m.alibi_slope), "alibi_slope", "must be finite, got ", m.alibi_slope);
}

}  // namespace detail
}  // namespace gauge_attn
