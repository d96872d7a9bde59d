// gauge_attn/cuda/online_softmax.cuh: the running state of one query row's online softmax (M5)
// in the attention kernels, in log2 units: weights w_j = 2^(s_j − m) relative to a reference m that
// is raised lazily, and the sums the outputs need besides the message (§7 statistics, G1 energy).
#pragma once

#include <gauge_attn/mask.hpp>

#include <cuda_runtime.h>

#include <cmath>

namespace gauge_attn::gpu::detail {

constexpr float ln2 = 0.6931471805599453f;

/// 2^x by the special-function unit alone (ex2.approx.ftz: relative error ≤ 2⁻²², one MUFU.EX2;
/// exp2f adds range handling the softmax does not need, since x ≤ 0 here and 2^−∞ = 0).
/// Rescaling happens only when a score exceeds the reference by this much (log2 units), so every
/// weight stays ≤ 2^8 and fp32 sums cannot overflow.
constexpr float rescale_threshold = 8.f;

__device__ inline float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

/// Is every key of [t0, t1) allowed for every row of [q0, q1), with the diagonal outside the tile
/// when it needs special handling? Then the tile needs no per-pair checks.
__device__ inline bool tile_is_clear(const MaskSpec& m, int q0, int q1, int t0, int t1, int n, bool diagonal_matters) {
  if (t1 > n) return false;
  if (diagonal_matters && t0 < q1 && t1 > q0) return false;
  if (m.causal) {
    if (t1 - 1 > q0) return false;
    if (m.window > 0 && t0 < q1 - 1 - m.window + 1) return false;
  } else if (m.window > 0) {
    const int half = m.window / 2;
    if (t0 < q1 - 1 - half || t1 - 1 > q0 + half) return false;
  }
  return true;
}

/// One query row's softmax sums relative to its reference m (−∞ until a key is allowed):
/// l = Σ w, and with Statistics off = Σ_{j≠i} w, off2 = Σ_{j≠i} w², ws = Σ w·(s − m); with Energy
/// en = Σ w·(s − m − bias), the energy's mean score (G1). The message sums live with the caller.
/// m is a Score: with double scores of size ~1e7 a float m would round each raise by up to ~0.5,
/// a weight error of that many bits between key tiles.
template <class Score, bool Statistics, bool Energy>
struct OnlineRow {
  Score m = -INFINITY;
  float l = 0.f, off = 0.f, off2 = 0.f, ws = 0.f, en = 0.f;

  /// The reference the next scores start from (they are computed as s − base).
  __device__ Score base() const { return m == -INFINITY ? Score(0) : m; }

  /// Whether a new largest score t (relative to base()) moves the reference: when it passes it by
  /// more than the threshold, or is the first allowed score.
  __device__ bool should_raise(Score t) const {
    return t > Score(rescale_threshold) || (m == -INFINITY && t != -INFINITY);
  }
  /// Moves the reference to base() + t and rescales the sums; returns the factor 2^−t (0 from −∞)
  /// for the caller's message sums. The caller subtracts t from the scores it still holds, in Score:
  /// the first t of a row is a whole score (base 0), whose float rounding would be an error of
  /// u_float·|s| in every weight of its tile.
  __device__ float raise(Score t) {
    const float scale = m == -INFINITY ? 0.f : fast_exp2(float(-t));
    m = base() + t;
    if (Statistics) {
      ws = scale * (ws - float(t) * l);
      off *= scale;
      off2 *= scale * scale;
    }
    if (Energy) en = scale * (en - float(t) * l);
    l *= scale;
    return scale;
  }

  /// Adds a key of weight w = 2^s; `off_diagonal`: j ≠ i; `kl_score`: s without its ALiBi bias.
  __device__ void add(float w, float s, bool off_diagonal, float kl_score) {
    l += w;
    if (Statistics && w > 0.f) {
      ws = fmaf(w, s, ws);
      if (off_diagonal) {
        off += w;
        off2 = fmaf(w, w, off2);
      }
    }
    if (Energy && w > 0.f) en = fmaf(w, kl_score, en);
  }

  /// Adds the sums of a row with the same reference (lanes that split one row's keys).
  __device__ void add_sums(const OnlineRow& o) {
    l += o.l;
    off += o.off;
    off2 += o.off2;
    ws += o.ws;
    en += o.en;
  }
};

}  // namespace gauge_attn::gpu::detail
