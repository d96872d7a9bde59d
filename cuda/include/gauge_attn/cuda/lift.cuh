// gauge_attn/cuda/lift.cuh: the kernels of the O(N) lift of every token and head to the identity
// frame (§5), in two steps: frames R_i = D^ℓ(φ_i) (M2) and the sums of ν_i = R_iᵀμ_i per sequence;
// then the pulled-back beliefs, centred on ν̄, packed into the query and key vectors of (M8) and the
// message values of (M9), and ½ ln det Σ_i (the row constant of the KL). Computed in double, stored
// in float (the keys pre-scaled by log2 e for exp2). lift_workspace.cuh owns their workspace.
#pragma once

#include <gauge_attn/detail/so3_tables.hpp>
#include <gauge_attn/detail/wigner_factorised.hpp>
#include <gauge_attn/error.hpp>
#include <gauge_attn/irreps.hpp>
#include <gauge_attn/lifted.hpp>

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "layout.cuh"

namespace gauge_attn::gpu {

/// Why an input was refused on the device; reported with the first offending (b, n, head). The
/// lift reports the beliefs, the backward the incoming gradients.
enum class InputError : unsigned {
  none = 0,
  covariance = 1,
  mean = 2,
  frame = 3,
  incoming_mu = 4,
  incoming_sigma = 5,
  incoming_energy = 6
};

/// The lift's inputs and outputs; device pointers. Passed by value to the kernels.
template <class Spec>
struct LiftParams {
  HeadLayout heads[Spec::num_heads];
  std::size_t quarter_turns[Spec::num_irreps];  // offset of each irrep's X in `tables`
  int batch = 0, tokens = 0, embed_dim = 0;
  bool diagonal = true, identity_transport = false;
  const float* mu = nullptr;     // (B, N, E)
  const float* sigma = nullptr;  // (B, N, E) or (B, N, E, E)
  const float* phi = nullptr;    // (B, N, 3)
  const int* lengths = nullptr;  // (B)
  const double* tables = nullptr;
  float* queries = nullptr;
  float* keys = nullptr;
  float* values = nullptr;
  double* frames = nullptr;
  double* means = nullptr;
  double* half_logdets = nullptr;        // (H, B, N): ½ ln det Σ_i
  unsigned long long* status = nullptr;  // (code << 48) | (index + 1), first error only
};

/// Throws InvalidArgument for a status word the lift or the pair-by-pair kernels wrote.
template <class Spec>
[[noreturn]] void throw_input_error(unsigned long long status, int tokens) {
  const auto code = static_cast<InputError>(status >> 48);
  const long long index = static_cast<long long>(status & ((1ull << 48) - 1)) - 1;
  const long long token = index / Spec::num_heads;
  const int h = int(index % Spec::num_heads);
  const char* argument = code == InputError::covariance        ? "sigma"
                         : code == InputError::mean            ? "mu"
                         : code == InputError::frame           ? "phi"
                         : code == InputError::incoming_mu     ? "incoming.mu"
                         : code == InputError::incoming_sigma  ? "incoming.sigma"
                                                               : "incoming.energy";
  const char* what = code == InputError::covariance ? "is not positive definite (or not finite)" : "is not finite";
  throw InvalidArgument(argument, gauge_attn::detail::str("the value of head ", h, " (", irrep_label(Spec::head(h).l),
                                                          ") at (b=", token / tokens, ", n=", token % tokens, ") ",
                                                          what));
}

namespace detail {

__device__ inline void report(unsigned long long* status, InputError code, long long index) {
  atomicCAS(status, 0ull, (static_cast<unsigned long long>(code) << 48) | static_cast<unsigned long long>(index + 1));
}

/// Sums of v[0..K) over the block's threads (all threads call it); thread 0 gets the totals.
/// All K components share two barriers. `scratch` holds (Threads / 32) × K doubles.
template <int Threads, int K>
__device__ void block_sums(double (&v)[K], double* scratch) {
  for (int k = 0; k < K; ++k)
    for (int o = 16; o > 0; o /= 2) v[k] += __shfl_down_sync(0xffffffffu, v[k], o);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  __syncthreads();
  if (lane == 0)
    for (int k = 0; k < K; ++k) scratch[warp * K + k] = v[k];
  __syncthreads();
  if (threadIdx.x == 0)
    for (int k = 0; k < K; ++k) {
      v[k] = 0;
      for (int w = 0; w < Threads / 32; ++w) v[k] += scratch[w * K + k];
    }
}

}  // namespace detail

inline constexpr int lift_threads = 128;

namespace detail {

/// R_i = D^ℓ(φ_i) into `frames`, and ν_i = R_iᵀμ_i (zeros for i ≥ n).
template <int K, class Spec>
__device__ void lift_frame(const LiftParams<Spec>& p, int b, int h, int i, double (&nu)[K]) {
  const HeadLayout& head = p.heads[h];
  for (int k = 0; k < K; ++k) nu[k] = 0;
  if (i >= p.lengths[b]) return;
  const std::size_t t = std::size_t(b) * p.tokens + i;
  double phi[3] = {p.phi[t * 3], p.phi[t * 3 + 1], p.phi[t * 3 + 2]};
  if (!isfinite(phi[0]) || !isfinite(phi[1]) || !isfinite(phi[2])) {
    report(p.status, InputError::frame, (long long)t * Spec::num_heads + h);
    phi[0] = phi[1] = phi[2] = 0;
  }
  if (p.identity_transport) phi[0] = phi[1] = phi[2] = 0;
  double R[K * K];
  gauge_attn::detail::wigner_d_factorised<K>(p.tables + p.quarter_turns[head.irrep], phi, R);
  double* out = p.frames + head.frames + t * K * K;
  for (int k = 0; k < K * K; ++k) out[k] = R[k];
  const float* mu = p.mu + t * p.embed_dim + head.offset;
  for (int r = 0; r < K; ++r) {
    if (!isfinite(mu[r])) report(p.status, InputError::mean, (long long)t * Spec::num_heads + h);
    for (int k = 0; k < K; ++k) nu[k] += R[r * K + k] * double(mu[r]);  // ν = Rᵀμ
  }
}

/// The belief of token t = b·N + i on head h pulled back to the identity frame (§5), in double;
/// false when Σ is not positive definite.
template <int K, class Spec>
__device__ bool pull_back_token(const LiftParams<Spec>& p, int h, std::size_t t, lifted::PulledBack<double, K>& pb) {
  const HeadLayout& head = p.heads[h];
  const double* R = p.frames + head.frames + t * K * K;
  double mu[K], sigma[K * K];
  for (int k = 0; k < K; ++k) mu[k] = p.mu[t * p.embed_dim + head.offset + k];
  if (p.diagonal) {
    for (int k = 0; k < K; ++k) sigma[k] = p.sigma[t * p.embed_dim + head.offset + k];
  } else {
    const float* block = p.sigma + (t * p.embed_dim + head.offset) * p.embed_dim + head.offset;
    for (int r = 0; r < K; ++r)
      for (int c = 0; c < K; ++c) sigma[r * K + c] = block[std::size_t(r) * p.embed_dim + c];
  }
  return lifted::pull_back<double, K>(R, mu, sigma, K, p.diagonal, pb);
}

/// Pulls back token i (§5), centres ν on `mean`, packs a, b (× log2 e) and the values.
template <int K, class Spec>
__device__ void lift_pack(const LiftParams<Spec>& p, int b, int h, int i, const double* mean) {
  using W = LiftedWidths<K>;
  using TS = TileShape<K>;
  const HeadLayout& head = p.heads[h];
  const std::size_t t = std::size_t(b) * p.tokens + i;
  lifted::PulledBack<double, K> pb;
  if (!pull_back_token<K>(p, h, t, pb)) {
    report(p.status, InputError::covariance, (long long)t * Spec::num_heads + h);
    return;
  }
  p.half_logdets[std::size_t(h) * p.batch * p.tokens + t] = 0.5 * pb.logdet;
  double nu[K];
  for (int k = 0; k < K; ++k) nu[k] = pb.nu[k] - mean[k];
  constexpr double log2e = 1.4426950408889634;
  float* a = p.queries + head.queries + t * TS::query_stride;
  float* key = p.keys + head.keys + t * TS::key_stride;
  float packed[W::lifted];
  lifted::pack_query(pb, nu, packed);
  for (int k = 0; k < TS::query_stride; ++k) a[k] = k < W::lifted ? packed[k] : 0.f;
  double packed_key[W::lifted];
  lifted::pack_key(pb, nu, head.kappa, packed_key);
  for (int k = 0; k < TS::key_stride; ++k) key[k] = k < W::lifted ? float(packed_key[k] * log2e) : 0.f;
  // Values [ν, sym(S + ννᵀ)]: the mean message reads the first K.
  float* v = p.values + head.values + t * head.value_stride;
  for (int k = 0; k < head.value_stride; ++k) v[k] = k < K ? float(nu[k]) : k < K + W::sym ? packed[k - K] : 0.f;
}

}  // namespace detail

/// Grid (⌈N/128⌉, H, B): R_i into `frames`, Σ_i ν_i into `means` (atomically, one add per block).
template <class Spec>
__global__ void __launch_bounds__(lift_threads) lift_frames_kernel(LiftParams<Spec> p) {
  __shared__ double scratch[lift_threads / 32 * (2 * max_supported_l + 1)];
  const int b = blockIdx.z, h = blockIdx.y, i = blockIdx.x * lift_threads + threadIdx.x;
  const HeadLayout& head = p.heads[h];
  visit_spin(head.irrep, typename Spec::spins{}, [&](auto spin) {
    constexpr int K = 2 * decltype(spin)::value + 1;
    double nu[K];
    detail::lift_frame<K>(p, b, h, i, nu);
    detail::block_sums<lift_threads>(nu, scratch);
    if (threadIdx.x == 0)
      for (int k = 0; k < K; ++k)
        if (nu[k] != 0) atomicAdd(p.means + head.means + std::size_t(b) * K + k, nu[k]);
  });
}

/// Grid (⌈N/128⌉, H, B): pull back, centre on ν̄ = Σν/n, pack.
template <class Spec>
__global__ void __launch_bounds__(lift_threads) lift_pack_kernel(LiftParams<Spec> p) {
  const int b = blockIdx.z, h = blockIdx.y, i = blockIdx.x * lift_threads + threadIdx.x;
  const HeadLayout& head = p.heads[h];
  const int n = p.lengths[b];
  if (i >= n) return;
  visit_spin(head.irrep, typename Spec::spins{}, [&](auto spin) {
    constexpr int K = 2 * decltype(spin)::value + 1;
    double mean[K];
    for (int k = 0; k < K; ++k) mean[k] = p.means[head.means + std::size_t(b) * K + k] / n;
    detail::lift_pack<K>(p, b, h, i, mean);
  });
}

/// Both steps in one block per (sequence, head), for N ≤ 128: grid (1, H, B). The sums are
/// reduced in the block and written (not added) to `means`, which needs no clearing.
template <class Spec>
__global__ void __launch_bounds__(lift_threads) lift_sequence_kernel(LiftParams<Spec> p) {
  __shared__ double scratch[lift_threads / 32 * (2 * max_supported_l + 1)];
  __shared__ double mean[2 * max_supported_l + 1];
  const int b = blockIdx.z, h = blockIdx.y, i = threadIdx.x;
  const HeadLayout& head = p.heads[h];
  const int n = p.lengths[b];
  visit_spin(head.irrep, typename Spec::spins{}, [&](auto spin) {
    constexpr int K = 2 * decltype(spin)::value + 1;
    double nu[K];
    detail::lift_frame<K>(p, b, h, i, nu);
    detail::block_sums<lift_threads>(nu, scratch);
    if (threadIdx.x == 0)
      for (int k = 0; k < K; ++k) {
        p.means[head.means + std::size_t(b) * K + k] = nu[k];
        mean[k] = nu[k] / n;
      }
    __syncthreads();
    if (i < n) detail::lift_pack<K>(p, b, h, i, mean);
  });
}

}  // namespace gauge_attn::gpu
