// gauge_attn/mask.hpp: which keys a query may attend to, and the additive logit bias.
// Shared by the CPU loops and the CUDA kernels.
#pragma once

#include "config.hpp"

namespace gauge_attn {

/// The masking options of math.md §6 and the core-library issue.
struct MaskSpec {
  bool causal = false;     // j ≤ i
  bool mask_self = false;  // exclude j = i, except on rows with no other allowed key (upstream)
  int window = 0;          // 0: off; causal: i − W < j ≤ i; otherwise |i − j| ≤ W/2
  double alibi_slope = 0;  // logit += slope·(i − j)
};

/// The allowed keys of one row: the contiguous range [begin, end) less `excluded` (−1: none).
struct KeyRange {
  int begin = 0;
  int end = 0;
  int excluded = -1;
  GAUGE_ATTN_HOST_DEVICE constexpr int count() const { return end - begin - (excluded >= 0 ? 1 : 0); }
  GAUGE_ATTN_HOST_DEVICE constexpr bool allows(int j) const { return j >= begin && j < end && j != excluded; }
};

/// Keys of query i in a sequence whose first `n` tokens are valid (i < n).
GAUGE_ATTN_HOST_DEVICE constexpr KeyRange key_range(const MaskSpec& m, int i, int n) {
  KeyRange r{0, n, -1};
  if (m.causal) {
    r.end = i + 1;
    if (m.window > 0 && i - m.window + 1 > 0) r.begin = i - m.window + 1;
  } else if (m.window > 0) {
    const int half = m.window / 2;
    r.begin = i - half > 0 ? i - half : 0;
    r.end = i + half + 1 < n ? i + half + 1 : n;
  }
  if (m.mask_self && r.end - r.begin > 1) r.excluded = i;
  return r;
}

/// Additive logit bias of pair (i, j) (ALiBi).
GAUGE_ATTN_HOST_DEVICE constexpr double logit_bias(const MaskSpec& m, int i, int j) {
  return m.alibi_slope * static_cast<double>(i - j);
}

}  // namespace gauge_attn
