// gauge_attn/cuda/device_beliefs.cuh: beliefs and the outputs of both GPU paths in device memory,
// in the layouts of belief.hpp and attention.hpp.
#pragma once

#include <gauge_attn/error.hpp>
#include <gauge_attn/options.hpp>

namespace gauge_attn::gpu {

/// Device pointers to a batch of beliefs (C order). The fused forward takes float; the
/// pair-by-pair path (pairwise.cuh) float or double.
template <class T>
struct DeviceBeliefsOf {
  int batch = 0, tokens = 0, embed_dim = 0;
  Covariance covariance = Covariance::diagonal;
  const T* mu = nullptr;     // (B, N, E)
  const T* sigma = nullptr;  // (B, N, E) or (B, N, E, E)
  const T* phi = nullptr;    // (B, N, 3)
};

using DeviceBeliefs = DeviceBeliefsOf<float>;

/// Where the forward writes, in device memory. `mu` is required; the others are optional (null:
/// not computed). Rows of padded tokens are zero.
struct DeviceOutputs {
  float* mu = nullptr;               // (B, N, E)
  float* sigma = nullptr;            // Σ^agg: (B, N, E) for diagonal inputs, (B, N, E, E) for full
  float* lse = nullptr;              // (B, H, N) log-sum-exp of each row's (M8) scores + bias
  float* row_std = nullptr;          // (B, H, N) per-row statistics (§7); all three or none
  float* uniform_row_std = nullptr;  // (B, H, N)
  float* entropy = nullptr;          // (B, H, N)
  float* energy = nullptr;           // (B, H, N) attention energy e_i = Σ_j β_ij KL_ij (G1)
};

/// Where the pair-by-pair path writes (device pointers). mu is required; kl and β (each optional:
/// without both nothing of size N² is stored), sigma (Σ^agg, layout as DeviceOutputs) and the row
/// statistics (all three or none) are optional.
template <class T>
struct PairwiseOutputsOf {
  T* kl = nullptr;    // (B, H, N, N), every pair (future ones too), as upstream returns it
  T* beta = nullptr;  // (B, H, N, N)
  T* mu = nullptr;    // (B, N, E)
  T* sigma = nullptr;
  T* row_std = nullptr;  // (B, H, N)
  T* uniform_row_std = nullptr;
  T* entropy = nullptr;
};

namespace detail {

/// The host-side checks of both GPU paths: shapes and pointers of the beliefs, and the optional
/// row statistics requested all together or not at all (returns whether they are).
template <class T>
bool check_request(const DeviceBeliefsOf<T>& q, int embed_dim, const T* row_std, const T* uniform_row_std,
                   const T* entropy) {
  using gauge_attn::detail::require;
  require(q.batch >= 1, "batch", "must be >= 1, got ", q.batch);
  require(q.tokens >= 1, "tokens", "must be >= 1 (N = 0 has no attention), got ", q.tokens);
  require(q.embed_dim == embed_dim, "embed_dim", "got ", q.embed_dim, " but the irrep spec has E = ", embed_dim);
  require(q.mu && q.sigma && q.phi, "beliefs", "null device pointer");
  const bool statistics = row_std != nullptr;
  require(statistics == (uniform_row_std != nullptr) && statistics == (entropy != nullptr), "outputs.row_std",
          "row_std, uniform_row_std and entropy are given together or not at all");
  return statistics;
}

}  // namespace detail

}  // namespace gauge_attn::gpu
