// gauge_attn/config.hpp: version and the one host/device annotation macro.
#pragma once

#define GAUGE_ATTN_VERSION_MAJOR 0
#define GAUGE_ATTN_VERSION_MINOR 1
#define GAUGE_ATTN_VERSION_PATCH 0

// Functions that the CPU loops and the CUDA kernels share (the per-pair maths of
// (M8)/(M9) on fixed-size arrays) carry this macro; everything else is host-only.
#if defined(__CUDACC__)
#define GAUGE_ATTN_HOST_DEVICE __host__ __device__
#else
#define GAUGE_ATTN_HOST_DEVICE
#endif

// Full unrolling of the fixed-length loops of the shared per-belief maths (lifted.hpp and
// detail/wigner_factorised.hpp) in device code, where it turns their K-vectors into registers
// and lets the loads of one step overlap; nothing on the host.
#if defined(__CUDA_ARCH__)
#define GAUGE_ATTN_UNROLL _Pragma("unroll")
#else
#define GAUGE_ATTN_UNROLL
#endif
