// gauge_attn/cuda/tf32x3.cuh: float products on the tensor cores to float accuracy (3×TF32).
//
// A float x is split as x = hi + lo with hi a TF32 number and lo = x − hi exact; the MMA reads lo's
// top 19 bits (it ignores the 13 low bits of a TF32 operand, i.e. truncates lo). A product is then
// hi_a·hi_b + hi_a·lo_b + lo_a·hi_b (lo_a·lo_b dropped), each term exact in the tensor core's float
// accumulation. Two splits (`Hi`):
//   - rounded (the queries): hi = x rounded to TF32 (10 explicit mantissa bits, to nearest, ties
//     away), |lo| ≤ 2⁻¹¹|x|, the lo the MMA sees off by ≤ 2⁻²¹|x|; three instructions (integer
//     add, mask, FADD), once per query;
//   - truncated (keys, values and weights, split in every step): hi = x with its low 13 bits
//     cleared, |lo| < 2⁻¹⁰|x|, the lo the MMA sees off by < 2⁻²⁰|x|; two instructions (mask, FADD).
// A product is off by at most (u = 2⁻²⁴, before the accumulation):
//   - rounded a, truncated b (the scores): 2⁻¹¹·2⁻¹⁰ (lo_a·lo_b) + 2⁻²⁰ (lo_b's truncation) + 2⁻²¹
//     (lo_a's) = 2⁻¹⁹ = 32u of |ab| (precision.hpp);
//   - both truncated (the message sums): 2⁻²⁰ + 2⁻²⁰ + 2⁻²⁰ = 48u of |ab|.
// No conversion instruction; the splits are meant for finite x (the kernels' operands are: NaN would
// not survive the rounding add).
//
// The warp-level m16n8k8 TF32 MMA: C (16×8) += A (16×8, row-major) · B (8×8). Lane = 4g + t
// (g = lane / 4, t = lane % 4) holds
//   A: a0 = (g, t), a1 = (g + 8, t), a2 = (g, t + 4), a3 = (g + 8, t + 4)
//   B: b0 = (t, g), b1 = (t + 4, g)                              (row = the summed index k)
//   C: c0 = (g, 2t), c1 = (g, 2t + 1), c2 = (g + 8, 2t), c3 = (g + 8, 2t + 1)
// (PTX ISA, "Matrix fragments for mma.m16n8k8" with .tf32). The summed index k may stand for any
// 8 columns in any order, the same for A and B: the kernels give lane t the columns 2t and 2t + 1
// (slots t and t + 4), so that its two B entries of a row are adjacent (one 8-byte load).
#pragma once

#include <cstdint>

namespace gauge_attn::gpu::tf32x3 {

/// hi and lo of a float (see above), as MMA operands.
struct Split {
  std::uint32_t hi, lo;
};

/// How a split finds hi (see above).
enum class Hi { rounded, truncated };

template <Hi H>
__device__ inline Split split(float x) {
  const std::uint32_t bits = __float_as_uint(x);
  const std::uint32_t hi = (H == Hi::rounded ? bits + 0x1000u : bits) & 0xffffe000u;  // + half a TF32 ulp
  return {hi, __float_as_uint(x - __uint_as_float(hi))};
}

/// c += a·b on the tensor cores, one TF32 term.
__device__ inline void mma(float (&c)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

/// An A fragment split in two.
struct FragmentA {
  std::uint32_t hi[4], lo[4];
};
/// A B fragment split in two.
struct FragmentB {
  std::uint32_t hi[2], lo[2];
};

/// An A fragment (see above).
template <Hi H>
__device__ inline FragmentA split_a(float a0, float a1, float a2, float a3) {
  FragmentA f;
  const float a[4] = {a0, a1, a2, a3};
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const Split s = split<H>(a[k]);
    f.hi[k] = s.hi;
    f.lo[k] = s.lo;
  }
  return f;
}

/// A B fragment, truncated (see above).
__device__ inline FragmentB split_b(float b0, float b1) {
  const Split s0 = split<Hi::truncated>(b0), s1 = split<Hi::truncated>(b1);
  return {{s0.hi, s1.hi}, {s0.lo, s1.lo}};
}

/// c += a·b to float accuracy: the two small cross terms first, then the large one.
__device__ inline void mma3(float (&c)[4], const FragmentA& a, const FragmentB& b) {
  mma(c, a.lo, b.hi);
  mma(c, a.hi, b.lo);
  mma(c, a.hi, b.hi);
}

}  // namespace gauge_attn::gpu::tf32x3
