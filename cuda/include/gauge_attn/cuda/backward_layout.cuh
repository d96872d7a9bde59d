// gauge_attn/cuda/backward_layout.cuh: the backward's device workspace, head by head, and the
// parameters every backward kernel takes (docs/gradients.md; the kernels are in row_gradients.cuh,
// flash_kl_backward.cuh and lift_backward.cuh).
#pragma once

#include <gauge_attn/mask.hpp>

#include <cstddef>

#include "device_gradients.cuh"
#include "layout.cuh"
#include "lift.cuh"

namespace gauge_attn::gpu {

/// Per-head offsets into the backward's workspace (in elements of each buffer), filled on the host.
/// P = K(K+1)/2 + K + 1 and V the width of the values (K, or K + K(K+1)/2 with a Σ^agg gradient).
struct BackwardHeadLayout {
  std::size_t rows = 0;     // float (B, N, row_stride): x̄_i = [w̄_i, sym₂(C̄_i)], then L2_i, D'_i, c_i, κε_i
  std::size_t lifted = 0;   // float (B, N, round4(P)): Ā_i = Σ_j p̄_ij k_j and U_j = Σ_i p̄_ij a_i
  std::size_t values = 0;   // float (B, N, value_stride): X̄_j = Σ_i β_ij x̄_i, and X_i = Σ_j β_ij x_j
  std::size_t lift = 0;     // double (B, N, K + 3): ν̄'_i and y'_i of the lift backward
  std::size_t sums = 0;     // double (B, K): Σ_i (R_iᵀg_i − ν̄'_i), the centring's share (G11)
  int row_stride = 0;
};

/// Everything the backward kernels read and write; device pointers, passed by value.
template <class Spec>
struct BackwardParams {
  LiftParams<Spec> lift;  // the beliefs and their lift, recomputed by the backward
  BackwardHeadLayout heads[Spec::num_heads];
  std::size_t generators[Spec::num_irreps] = {};  // offset of each irrep's (G_x, G_y, G_z) in `tables`
  BlockGroups<Spec::num_irreps> groups;           // key tiles of the pair pass, the first first
  MaskSpec mask;
  bool covariance = false;  // a Σ^agg gradient comes in: values are [ν, sym(S + ννᵀ)]
  bool moments = false;     // the pair pass also sums X_i (diagonal beliefs: Σ^agg's off-diagonals, G4)
  DeviceSaved saved;
  DeviceOutputGradients incoming;
  DeviceGradients grads;
  const double* tables = nullptr;  // generator tables
  float* rows = nullptr;
  float* abar = nullptr;     // Ā (atomically summed over key tiles)
  float* u = nullptr;        // U
  float* xbar = nullptr;     // X̄
  float* moments_sums = nullptr;  // X (atomically summed), when `moments`
  double* lift_grads = nullptr;
  double* sums = nullptr;
  double* kappa_sums = nullptr;  // (H): Σ_ij s̄_ij (a_i·k_j), log2 units (G9)
};

}  // namespace gauge_attn::gpu
