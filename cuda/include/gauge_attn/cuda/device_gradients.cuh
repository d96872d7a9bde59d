// gauge_attn/cuda/device_gradients.cuh: what gpu::Backward reads and writes, as device pointers in
// the layouts of gradients.hpp (docs/gradients.md): the forward's saved outputs, the incoming
// gradients of those outputs, and the gradients of the beliefs and temperatures.
#pragma once

#include <gauge_attn/error.hpp>
#include <gauge_attn/options.hpp>

namespace gauge_attn::gpu {

/// The forward's outputs the backward reads (DeviceOutputs' layouts). `mu` and `lse` are always
/// needed; `sigma` when a gradient of Σ^agg comes in, `energy` when one of the energy does.
struct DeviceSaved {
  const float* mu = nullptr;      // (B, N, E) mean messages
  const float* sigma = nullptr;   // Σ^agg: (B, N, E) for diagonal beliefs, (B, N, E, E) for full ones
  const float* energy = nullptr;  // (B, H, N) attention energy
  const float* lse = nullptr;     // (B, H, N) row log-sum-exp
};

/// dL/d(output) of one forward call; null is a zero gradient.
struct DeviceOutputGradients {
  const float* mu = nullptr;      // (B, N, E)
  const float* sigma = nullptr;   // (B, N, E) or (B, N, E, E)
  const float* energy = nullptr;  // (B, H, N)
};

/// Where the backward writes dL/d(input); all required. Padded tokens get zeros; a full
/// covariance gets the symmetric gradient of each head's block and zeros outside the blocks.
struct DeviceGradients {
  float* mu = nullptr;     // (B, N, E)
  float* sigma = nullptr;  // (B, N, E) or (B, N, E, E)
  float* phi = nullptr;    // (B, N, 3)
  float* kappa = nullptr;  // (H), one per head (a caller with one κ for all heads adds them up)
};

namespace detail {

/// The host-side checks of the backward's pointers: missing saved state and missing outputs.
inline void check_backward_request(const DeviceSaved& saved, const DeviceOutputGradients& incoming,
                                   const DeviceGradients& grads) {
  using gauge_attn::detail::require;
  require(saved.mu != nullptr, "saved.mu", "missing saved state: the mean messages of the forward (null pointer)");
  require(saved.lse != nullptr, "saved.lse",
          "missing saved state: the backward needs the row log-sum-exp of the forward (null pointer)");
  require(incoming.sigma == nullptr || saved.sigma != nullptr, "saved.sigma",
          "missing saved state: a gradient of the covariance messages was given, but not the forward's Σ^agg");
  require(incoming.energy == nullptr || saved.energy != nullptr, "saved.energy",
          "missing saved state: a gradient of the attention energy was given, but not the forward's energy");
  require(grads.mu != nullptr, "gradients.mu", "null device pointer");
  require(grads.sigma != nullptr, "gradients.sigma", "null device pointer");
  require(grads.phi != nullptr, "gradients.phi", "null device pointer");
  require(grads.kappa != nullptr, "gradients.kappa", "null device pointer");
}

}  // namespace detail

}  // namespace gauge_attn::gpu
