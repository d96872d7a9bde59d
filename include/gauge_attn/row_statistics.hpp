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

#include "config.hpp"
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

/// The upstream row_std of one row: population std over its n − 1 off-diagonal entries, of which
/// `allowed` sum to s with squares summing to s2 and the rest hold `masked` (§7). Centred on the
/// masked value, which keeps the one-pass formula accurate for the tiny masked values.
GAUGE_ATTN_HOST_DEVICE inline double row_std_of(int n, double masked, int allowed, double s, double s2) {
  if (n < 2) return 0.0;
  const double m = n - 1.0;
  const double d1 = s - allowed * masked;                         // Σ (x − c)
  const double d2 = s2 - 2 * masked * s + allowed * masked * masked;  // Σ (x − c)²
  const double var = d2 / m - (d1 / m) * (d1 / m);
  return std::sqrt(var > 0 ? var : 0.0);
}

/// The same statistic for uniform attention over the row's allowed keys (the calibration baseline).
GAUGE_ATTN_HOST_DEVICE inline double uniform_row_std_of(int n, double masked, const KeyRange& keys, int i) {
  const int allowed_off = keys.count() - (keys.allows(i) ? 1 : 0);
  const double u = 1.0 / keys.count() > masked ? 1.0 / keys.count() : masked;
  return row_std_of(n, masked, allowed_off, allowed_off * u, allowed_off * u * u);
}

/// H_i / ln n_i for a row with entropy H over n_i = keys.count() > 1 allowed keys.
GAUGE_ATTN_HOST_DEVICE inline double normalised_entropy_of(const KeyRange& keys, double entropy) {
  return entropy / std::log(double(keys.count()));
}

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
      stats_.row_std += row_std_of(n_, masked_, allowed_off, sum_off, sumsq_off);
      stats_.uniform_row_std += uniform_row_std_of(n_, masked_, keys, i);
      ++stats_.rows;
    }
    if (keys.count() > 1) {
      stats_.entropy += normalised_entropy_of(keys, entropy);
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
  int n_;
  double masked_;
  RowStatistics stats_;
};

}  // namespace gauge_attn
