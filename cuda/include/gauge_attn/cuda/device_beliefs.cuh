// gauge_attn/cuda/device_beliefs.cuh: beliefs in device memory, in the layouts of belief.hpp.
#pragma once

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

}  // namespace gauge_attn::gpu
