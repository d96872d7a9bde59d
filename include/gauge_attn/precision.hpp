// gauge_attn/precision.hpp: the a-priori bound on the rounding error of the (M8) scores, per
// (sequence, head), and the check that turns an exceeded bound into an error (docs/conventions.md,
// Precision). No Eigen: the CUDA host API includes it.
//
// A score s_ij = a_i·b_j (+ bias) summed in a precision of unit roundoff u from stored vectors
// rounded to that precision, in an FMA chain of P terms started at c (the ALiBi bias, or the GPU's
// running maximum, |c| ≤ max|s|) is off by at most (P + 4)·u·(|c| + Σ_p |a_ip b_jp|) (Higham, Thm 3.5,
// with the two storage roundings). Σ_p |a_ip b_jp| ≤ ‖a_i‖‖b_j‖ (Cauchy–Schwarz), so for every pair
// of the (sequence, head), with A = max_i ‖a_i‖, B = max_j ‖b_j‖ (b in nats, 1/κ included):
//   δ = 2 (P + 4) u (A·B + |slope|·(n − 1)) + 4·2⁻²⁴                                          (P1)
// (the last term: the float exponential, and the float rounding of s − max of the keys that carry
// weight). Logits off by at most δ move every weight by a factor in [e^−2δ, e^2δ], so Σ_j |Δβ_ij| ≤
// e^2δ − 1, and a message, a β-weighted mean of values v_j (ν_j, or S_j + ν_jν_jᵀ), moves by
//   ‖Δm_i‖ ≤ (e^2δ − 1) · max_j ‖v_j − c‖   for any c (Σ_j Δβ_ij = 0); for the mean, c = ν̄.      (P2)
#pragma once

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "config.hpp"
#include "error.hpp"
#include "irreps.hpp"
#include "mask.hpp"
#include "options.hpp"

namespace gauge_attn {

/// The bound of one (sequence, head) and what it was computed from.
struct HeadPrecision {
  double score_bound = 0;    // δ of (P1), nats of logit
  double message_bound = 0;  // e^2δ − 1 of (P2), relative to the spread D of the values
  double query_norm = 0;     // A = max_i ‖a_i‖
  double key_norm = 0;       // B = max_j ‖b_j‖ (nats)
  double mean_spread = 0;    // D = max_j ‖ν_j − ν̄‖
};

/// Unit roundoff of the scores: 2⁻²⁴ for float32, 2⁻⁵³ for float64.
GAUGE_ATTN_HOST_DEVICE constexpr double score_unit(bool float64) { return float64 ? 0x1p-53 : 0x1p-24; }

/// The roundings c of (P1), δ = 2·c·u·(A·B + |slope|·(n − 1)) + 4·2⁻²⁴, for a score of width P
/// summed in an FMA chain: P + 4.
GAUGE_ATTN_HOST_DEVICE constexpr double fma_score_roundings(int P) { return P + 4; }

/// The same for a score summed on the tensor cores in 3×TF32 (cuda/tf32x3.cuh), P padded to
/// P8 = 8⌈P/8⌉: the split (rounded queries, truncated keys) leaves 32u per product; each of the
/// 3·P8/8 m16n8k8 products adds its 8 products to the running sum in one step that aligns the 9
/// terms to the largest and truncates them (Fasi, Higham, Mikaitis & Pranesh, PeerJ CS 2021, on
/// NVIDIA tensor cores' float accumulation), ≤ 2u of each and 2u for the result, 20u of the
/// magnitudes; two storage roundings: 36 + 20·3·P8/8 = 36 + 7.5·P8 (ℓ2: 216 against the chain's 25).
GAUGE_ATTN_HOST_DEVICE constexpr double tensor_core_score_roundings(int P) { return 36 + 7.5 * ((P + 7) / 8 * 8); }

/// δ of (P1), nats: scores summed with `roundings` (above) of unit `unit` from vectors of norms at
/// most A = query_norm, B = key_norm, with a bias of magnitude at most `bias` (|slope|·(n − 1)).
GAUGE_ATTN_HOST_DEVICE inline double score_error_bound(double roundings, double unit, double query_norm,
                                                       double key_norm, double bias) {
  return 2 * roundings * unit * (query_norm * key_norm + bias) + 4 * 0x1p-24;
}

/// Whether each row's own score s_ii bounds the row's scores, so that a softmax may take it as its
/// reference from the start instead of a running maximum (the GPU's tile paths, docs/cuda.md).
/// The exact KL is ≥ 0 and KL_ii = 0 (Ω_ii = I), so without a logit bias the largest logit of row i
/// is its own, −½ ln det Σ_i / κ (M8); rounded scores pass it by at most 2δ. It holds when the
/// row's own key is allowed (no mask_self), there is no ALiBi bias, and every weight relative to it,
/// e^(s_ij − s_ii) ≤ e^{2δ}, stays ≤ 2^max_log2_weight (δ = score_bound, nats).
GAUGE_ATTN_HOST_DEVICE inline bool own_score_bounds_row(const MaskSpec& mask, double score_bound,
                                                        double max_log2_weight) {
  return !mask.mask_self && mask.alibi_slope == 0 && 2 * score_bound <= max_log2_weight * 0.6931471805599453;
}

/// (P1) and (P2) from the norms of the lifted vectors of a head over n valid tokens, its scores
/// summed with `roundings` (above) of unit `unit`.
inline HeadPrecision head_precision(double roundings, double unit, double query_norm, double key_norm,
                                    double mean_spread, double slope, int n) {
  HeadPrecision r;
  r.query_norm = query_norm;
  r.key_norm = key_norm;
  r.mean_spread = mean_spread;
  r.score_bound = score_error_bound(roundings, unit, query_norm, key_norm, std::abs(slope) * (n - 1));
  r.message_bound = std::expm1(2 * r.score_bound);  // +∞ once 2δ > ~709
  return r;
}

namespace detail {

/// Under PrecisionCheck::raise, throws InvalidArgument for the first (sequence, head) of `bounds`
/// ((B, H), Spec's heads) whose δ exceeds the tolerance. The argument named is what dominates the
/// query vectors a_i = [sym(S_i + ν_iν_iᵀ), ν_i, 1]: "mu" when the centred means do (D² > A/2), else
/// "sigma" (the variances' range; κ, which scales b, is quoted in the message).
template <class Spec>
void check_precision(const std::vector<HeadPrecision>& bounds, const AttentionOptions& o,
                     const std::vector<double>& kappa, bool float64_scores) {
  if (o.precision_check != PrecisionCheck::raise) return;
  for (std::size_t k = 0; k < bounds.size(); ++k) {
    const HeadPrecision& p = bounds[k];
    if (p.score_bound <= o.score_error_tolerance) continue;
    const int b = int(k / Spec::num_heads), h = int(k % Spec::num_heads);
    const bool means = p.mean_spread * p.mean_spread > p.query_norm / 2;
    throw InvalidArgument(
        means ? "mu" : "sigma",
        str("the ", float64_scores ? "float64" : "float32", " scores of head ", h, " (", irrep_label(Spec::head(h).l),
            ") in sequence ", b, " may be off by up to δ = ", p.score_bound, " nats (bound (P1): max |a_i| = ",
            p.query_norm, ", max |b_j| = ", p.key_norm, " at kappa = ", kappa[h], ", centred means up to ",
            p.mean_spread, "), above score_error_tolerance = ", o.score_error_tolerance,
            means ? ": the means are far apart for float scores" : ": the variances span too many decades for float scores",
            "; use double inputs or options.scores = Scores::float64 (on the GPU, gpu::Pairwise has no such bound), "
            "or PrecisionCheck::report to accept it"));
  }
}

}  // namespace detail
}  // namespace gauge_attn
