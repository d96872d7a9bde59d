// gauge_attn/row_statistics.hpp: per-row statistics of an attention matrix, computed row by row
// so that β is never stored (math.md §7).
//
// The upstream row_std of row i is the population std of β_ij over the N − 1 entries j ≠ i
// (the diagonal set to NaN), masked entries included at their stored value (1e-8 after the
// upstream clamp, 0 in the exact mode); a head's row_std is its mean over rows. Because it
// depends on N and the mask, the same statistic of uniform attention under the same mask is
// reported beside it, and so is the entropy H_i / ln n_i (n_i allowed keys), which does not.
#pragma once

#include <cmath>

#include "mask.hpp"

namespace gauge_attn {

/// Means over the rows of one (sequence, head).
struct RowStatistics {
  double row_std = 0;          // upstream row_std
  double uniform_row_std = 0;  // row_std of β = 1/n_i on the allowed keys, same mask and clamp
  double entropy = 0;          // mean of H_i / ln n_i over rows with n_i > 1 (1 = uniform, 0 = one key)
  int rows = 0;                // rows in row_std's mean (N, or 0 when N = 1)
  int entropy_rows = 0;        // rows in the entropy's mean
};

/// Accumulates RowStatistics one row at a time.
class RowStatisticsAccumulator {
 public:
  /// `masked_value` is what masked entries hold (0, or 1e-8 after the upstream clamp).
  RowStatisticsAccumulator(int n, double masked_value) : n_(n), masked_(masked_value) {}

  /// Adds row i, whose allowed keys are `keys` and whose weights over them have
  /// Σ_{j allowed, j≠i} β = sum_off, Σ_{j allowed, j≠i} β² = sumsq_off, entropy −Σ β ln β = entropy
  /// (unclamped β), and which counts `allowed_off` allowed keys other than i.
  void add_row(const KeyRange& keys, int i, double sum_off, double sumsq_off, double entropy) {
    const int allowed_off = keys.count() - (keys.allows(i) ? 1 : 0);
    if (n_ > 1) {
      stats_.row_std += population_std(allowed_off, sum_off, sumsq_off);
      const double u = std::fmax(1.0 / keys.count(), masked_);
      stats_.uniform_row_std += population_std(allowed_off, allowed_off * u, allowed_off * u * u);
      ++stats_.rows;
    }
    if (keys.count() > 1) {
      stats_.entropy += entropy / std::log(double(keys.count()));
      ++stats_.entropy_rows;
    }
  }

  void merge(const RowStatisticsAccumulator& other) {
    stats_.row_std += other.stats_.row_std;
    stats_.uniform_row_std += other.stats_.uniform_row_std;
    stats_.entropy += other.stats_.entropy;
    stats_.rows += other.stats_.rows;
    stats_.entropy_rows += other.stats_.entropy_rows;
  }

  RowStatistics result() const {
    RowStatistics r = stats_;
    if (r.rows > 0) {
      r.row_std /= r.rows;
      r.uniform_row_std /= r.rows;
    }
    if (r.entropy_rows > 0) r.entropy /= r.entropy_rows;
    return r;
  }

 private:
  // Population std over the N − 1 off-diagonal entries: `allowed` of them sum to s with squares
  // summing to s2, the rest hold the masked value. Centred on the masked value for accuracy.
  double population_std(int allowed, double s, double s2) const {
    const double m = n_ - 1.0;
    const double c = masked_;
    const double d1 = s - allowed * c;                    // Σ (x − c)
    const double d2 = s2 - 2 * c * s + allowed * c * c;  // Σ (x − c)²
    const double var = d2 / m - (d1 / m) * (d1 / m);
    return std::sqrt(std::fmax(var, 0.0));
  }

  int n_;
  double masked_;
  RowStatistics stats_;
};

}  // namespace gauge_attn
