// gauge_attn/cuda/lift.cuh: the kernels of the O(N) lift of every token and head to the identity
// frame (§5), in two steps: frames R_i = D^ℓ(φ_i) (M2) and the sums of ν_i = R_iᵀμ_i per sequence;
// then the pulled-back beliefs, centred on ν̄, packed into the query and key vectors of (M8) and the
// message values of (M9), and ½ ln det Σ_i (the row constant of the KL). Computed in double, stored
// in float (the keys pre-scaled by log2 e for exp2). lift_workspace.cuh owns their workspace.
// A token's K×K matrices are split over K lanes of a warp (lane_columns.cuh; columns.hpp), with the
// matrices in shared memory; heads with K > 32 (ℓ ≥ 16) take one thread per token.
#pragma once

#include <gauge_attn/detail/so3_tables.hpp>
#include <gauge_attn/detail/wigner_factorised.hpp>
#include <gauge_attn/error.hpp>
#include <gauge_attn/irreps.hpp>
#include <gauge_attn/lifted.hpp>

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "lane_columns.cuh"
#include "layout.cuh"

/// Heads of dimension K ≥ this (and ≤ 32) lift a token on K lanes, narrower ones a token per thread;
/// a tuning knob. 1: every head on lanes. Measured on an H200 (docs/performance.md): from K = 7, W1
/// 80 µs against 47 (the narrow heads' matrices then live in local memory); from K = 3 the same as 1.
#ifndef GAUGE_ATTN_LIFT_LANES_MIN_DIM
#define GAUGE_ATTN_LIFT_LANES_MIN_DIM 1
#endif

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

/// lift_sequence_kernel's blocks along grid.x (N ≤ 128): each irrep's heads in groups of
/// `heads_per_block` that share a block, `warps_per_head` warps each, so that narrow heads fill a
/// block (W1's five ℓ0 heads need two warps each at N = 64: one block instead of five). Irrep r's
/// groups are blocks [first_block[r], first_block[r + 1]); its heads are LiftParams::first_head's.
template <int Irreps>
struct SequenceLiftGroups {
  int first_block[Irreps + 1] = {};
  int heads_per_block[Irreps] = {};
  int warps_per_head[Irreps] = {};
};

/// The lift's inputs and outputs; device pointers. Passed by value to the kernels.
template <class Spec>
struct LiftParams {
  HeadLayout heads[Spec::num_heads];
  std::size_t quarter_turns[Spec::num_irreps];  // offset of each irrep's X in `tables`
  int first_block[Spec::num_heads + 1] = {};    // lift_pack_kernel: head h's blocks start here
  int first_frame_block[Spec::num_irreps + 1] = {};  // lift_frames_kernel: irrep r's blocks start here
  int first_head[Spec::num_irreps + 1] = {};         // irrep r's heads are [first_head[r], first_head[r + 1])
  SequenceLiftGroups<Spec::num_irreps> sequence_groups;  // lift_sequence_kernel's blocks
  int batch = 0, tokens = 0, embed_dim = 0;
  bool diagonal = true, identity_transport = false;
  const float* mu = nullptr;     // (B, N, E)
  const float* sigma = nullptr;  // (B, N, E) or (B, N, E, E)
  const float* phi = nullptr;    // (B, N, 3)
  const int* lengths = nullptr;  // (B)
  const double* tables = nullptr;
  float* queries = nullptr;
  float* keys = nullptr;
  double* queries64 = nullptr;  // Scores::float64: queries and keys stored in double instead
  double* keys64 = nullptr;
  float* values = nullptr;
  unsigned long long* norms = nullptr;   // (B, H, 3): max ‖a_i‖, ‖b_j‖ (nats), ‖ν_j − ν̄‖ as bits (P1)
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

}  // namespace detail

/// Does the forward lift give a token of a head of dimension K its own K lanes?
GAUGE_ATTN_HOST_DEVICE constexpr bool lift_on_lanes(int K) { return K >= GAUGE_ATTN_LIFT_LANES_MIN_DIM && K <= 32; }

/// Doubles of scratch a lift block may hold: 48 KB of static shared memory (6144
/// doubles) less room for the block's sums.
inline constexpr int lift_scratch_budget = 6000;

/// How the forward lift splits a head of dimension K: K lanes per token (LaneColumns) when
/// lift_on_lanes(K), else one thread per token taking the columns in turn. Each token has
/// `matrices` doubles: R (or T), L (or ZY), Y, the centred ν and z (lift_pack); and, if `staged`, its packed rows
/// (query, key, values) as `row_floats` floats, built there and stored whole (16-byte stores)
/// instead of entry by entry at scattered offsets: if `Stage`, on lanes, where two warps' scratch
/// still fits (K ≤ 27). A warp's scratch: its tokens' matrices, then their rows.
template <int K, bool Stage>
struct LiftSplit {
  static constexpr bool lanes = lift_on_lanes(K);
  using Columns = std::conditional_t<lanes, LaneColumns<(lanes ? K : 1)>, gauge_attn::detail::SerialColumns<K>>;
  static constexpr int tokens_per_warp = lanes ? 32 / K : 32;
  // Odd (K is), so that the tokens of a warp start in distinct shared-memory banks (an entry that a
  // token's lanes read together is then a broadcast without conflicts between the tokens).
  static constexpr int matrices = 3 * K * K + 2 * K;
  static constexpr int row_floats =
      TileShape<K>::query_stride + TileShape<K>::key_stride + lifted_value_stride(K, true);  // a multiple of 4
  static constexpr int warp_matrices = (tokens_per_warp * matrices + 1) / 2 * 2;  // even: the rows are 16-byte aligned
  static constexpr bool staged =
      Stage && lanes && 2 * (warp_matrices + tokens_per_warp * row_floats / 2) <= lift_scratch_budget;
  static constexpr int warp_scratch = lanes ? warp_matrices + (staged ? tokens_per_warp * row_floats / 2 : 0) : 0;
  /// This thread's token within the block, or −1 for a lane that has none.
  __device__ static int slot() {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (!lanes) return threadIdx.x;
    return lane / K < tokens_per_warp ? warp * tokens_per_warp + lane / K : -1;
  }
};

template <bool Stage, int... Ls>
constexpr int max_warp_scratch(std::integer_sequence<int, Ls...>) {
  return std::max({1, LiftSplit<2 * Ls + 1, Stage>::warp_scratch...});
}

/// The blocks of the forward lift: up to MaxWarps warps, fewer where the widest head's matrices
/// would pass 48 KB of static shared memory (two always fit: K ≤ 31 on lanes); packed rows staged
/// if `Stage` (LiftSplit).
template <class Spec, int MaxWarps, bool Stage>
struct LiftBlock {
  static constexpr bool stage = Stage;
  static constexpr int warp_scratch = max_warp_scratch<Stage>(typename Spec::spins{});
  static constexpr int warps = std::clamp(lift_scratch_budget / warp_scratch, 2, MaxWarps);
  static constexpr int threads = 32 * warps;  // ≥ 64 ≥ K: a thread per component of ν
  static constexpr int shared_doubles = warps * warp_scratch;
  /// Tokens of a head of dimension K per block.
  GAUGE_ATTN_HOST_DEVICE static constexpr int tokens(int K) { return warps * (lift_on_lanes(K) ? 32 / K : 32); }
};
static_assert(2 * 32 >= 2 * max_supported_l + 1, "gauge_attn::gpu: the lift reduces ν with a thread per component");

/// lift_frames_kernel and lift_pack_kernel: many blocks of four warps, the pack's rows staged
/// (docs/performance.md: "The lift's pack").
template <class Spec>
using TokenLiftBlock = LiftBlock<Spec, 4, true>;
/// Blocks of lift_pack_kernel the compiler must fit on one multiprocessor (a register cap of
/// 65536 / (128 · blocks)): four for specs with ℓ ≥ 7, whose unrolled columns would otherwise take
/// 180–190 registers, two blocks (W6's pack 0.36 → 0.32 ms on an H200, no spills at 128
/// registers); the compiler's choice for the others (115–116 registers), which a cap let take more
/// than they need (W3 +5%; docs/performance.md).
template <class Spec>
inline constexpr int lift_pack_min_blocks = Spec::max_l >= 7 ? 4 : 1;
/// lift_sequence_kernel, one block per (sequence, group of heads): up to 16 warps, so that N ≤ 128
/// tokens take few passes; no staged rows, which would cost warps (W1 38 → 42 µs with 8 warps
/// instead of 12).
template <class Spec>
using SequenceLiftBlock = LiftBlock<Spec, 16, false>;

/// The groups of lift_sequence_kernel for sequences of `tokens` ≤ 128 tokens: a head takes the warps
/// its tokens fill at once (up to the block's), and a block as many heads of one irrep as fit.
template <class Spec>
SequenceLiftGroups<Spec::num_irreps> sequence_lift_groups(int tokens) {
  constexpr int warps = SequenceLiftBlock<Spec>::warps;
  SequenceLiftGroups<Spec::num_irreps> g;
  Spec::for_each_irrep([&](auto irrep, int first) {
    using I = decltype(irrep);
    const int r = Spec::head(first).irrep, per_warp = LiftSplit<I::dim, SequenceLiftBlock<Spec>::stage>::tokens_per_warp;
    g.warps_per_head[r] = std::clamp((tokens + per_warp - 1) / per_warp, 1, warps);
    g.heads_per_block[r] = warps / g.warps_per_head[r];
    g.first_block[r + 1] = g.first_block[r] + (I::heads + g.heads_per_block[r] - 1) / g.heads_per_block[r];
  });
  return g;
}

namespace detail {

/// Token i's frame R_i = D^ℓ(φ_i) (M2) into `frames`, once for the `heads` heads h0, h0 + 1, … of one
/// irrep that share it, and each head's ν_i = R_iᵀμ_i added to `block_nu` ((heads, K) sums in shared
/// memory). Every lane of the warp calls it; `scratch` is the token's matrices (columns.hpp).
template <int K, class Spec, class Columns>
__device__ void lift_frame(const LiftParams<Spec>& p, const Columns& cols, int b, int h0, int heads, int i,
                           bool valid, double* scratch, double* block_nu) {
  const std::size_t t = std::size_t(b) * p.tokens + (valid ? i : 0);
  auto where = [&](int m) { return (long long)t * Spec::num_heads + h0 + m; };
  double phi[3] = {0, 0, 0};
  if (valid) {
    for (int k = 0; k < 3; ++k) phi[k] = p.phi[t * 3 + k];
    if (!isfinite(phi[0]) || !isfinite(phi[1]) || !isfinite(phi[2])) {
      cols.each([&](int c) {
        if (c == 0) report(p.status, InputError::frame, where(0));
      });
      phi[0] = phi[1] = phi[2] = 0;
    }
    if (p.identity_transport) phi[0] = phi[1] = phi[2] = 0;
  }
  auto mu = [&](int m) { return p.mu + t * p.embed_dim + p.heads[h0 + m].offset; };
  // (Rᵀμ)_c of head m from column c of R; reports a non-finite μ_c.
  auto pulled_mean = [&](int m, int c, const double(&d)[K]) {
    const float* mu_m = mu(m);
    double nu = 0;
    for (int r = 0; r < K; ++r) nu += d[r] * double(mu_m[r]);
    if (!isfinite(mu_m[c])) report(p.status, InputError::mean, where(m));
    return nu;
  };
  double* frame = p.frames + p.heads[h0].frames + t * K * K;
  constexpr bool lanes = splits_tokens_over_lanes<Columns>;
  double column[lanes ? K : 1];  // on lanes: this lane's column of R, for the heads' ν below
  gauge_attn::detail::wigner_d_columns<K>(cols, p.tables + p.quarter_turns[p.heads[h0].irrep], phi, scratch,
                                          scratch + K * K, [&](int c, const double(&d)[K]) {
                                            if (!valid) return;
                                            for (int r = 0; r < K; ++r) frame[r * K + c] = d[r];
                                            if constexpr (lanes)
                                              for (int r = 0; r < K; ++r) column[r] = d[r];
                                            else
                                              for (int m = 0; m < heads; ++m)
                                                atomicAdd(block_nu + m * K + c, pulled_mean(m, c, d));
                                          });
  // On lanes, one shared-memory add per warp, head and column instead of one per token: a double
  // atomicAdd in shared memory is a compare-and-swap loop, serialised over the lanes that contend
  // (all 32 of a warp for ℓ0: measured 13.6 µs for W2's ℓ0 frames, most of it there).
  if constexpr (lanes)
    for (int m = 0; m < heads; ++m) {
      const double nu = cols.sum_over_tokens(valid && cols.column < K ? pulled_mean(m, cols.column, column) : 0.0);
      if (cols.group == 0 && cols.column < K) atomicAdd(block_nu + m * K + cols.column, nu);
    }
}

/// Max of the three norms of (P1) over the warp, then one atomic max each (the bits of a
/// non-negative double order as the double does). Every lane of the warp calls it.
template <class Spec>
__device__ void warp_max_norms(const LiftParams<Spec>& p, int b, int h, double (&n)[3]) {
  for (int k = 0; k < 3; ++k)
    for (int o = 16; o > 0; o /= 2) n[k] = fmax(n[k], __shfl_xor_sync(0xffffffffu, n[k], o));
  if (threadIdx.x % 32 == 0)
    for (int k = 0; k < 3; ++k)
      atomicMax(p.norms + (std::size_t(b) * Spec::num_heads + h) * 3 + k,
                static_cast<unsigned long long>(__double_as_longlong(n[k])));
}

/// A token's part of the lift's scratch (LiftSplit): its matrices and, if Staged, its packed rows.
template <bool Staged>
struct TokenScratch {
  double* matrices;
  float* rows;
};

/// Pulls back token i (§5), centres ν on `mean`, packs a, b (× log2 e) and the values; returns the
/// norms of (P1) in `norms` (zeros for a lane without a valid token). Every lane of the warp calls it.
template <int K, class Spec, class Columns, bool Staged>
__device__ void lift_pack(const LiftParams<Spec>& p, const Columns& cols, int b, int h, int i, bool valid,
                          const double* mean, TokenScratch<Staged> scratch, double (&norms)[3]) {
  using W = LiftedWidths<K>;
  using TS = TileShape<K>;
  constexpr double log2e = 1.4426950408889634;
  const HeadLayout& head = p.heads[h];
  const std::size_t t = std::size_t(b) * p.tokens + (valid ? i : 0);
  const int ld = p.diagonal ? 0 : p.embed_dim;
  // A lane without a valid token reads token 0 of its sequence (t above) in the identity frame and
  // writes nothing: no per-entry test on the inputs (a run-time k % (ld + 1) for each entry was
  // most of the kernel's instructions).
  const float* mu = p.mu + t * p.embed_dim + head.offset;
  const float* sigma = p.diagonal ? p.sigma + t * p.embed_dim + head.offset
                                  : p.sigma + (t * p.embed_dim + head.offset) * p.embed_dim + head.offset;
  double *R = scratch.matrices, *L = R + K * K, *Y = L + K * K, *nu = Y + K * K, *z = nu + K;
  // Staged (LiftSplit): the float rows are built in shared memory (each lane's entries are
  // scattered over them) and copied out whole at the end.
  float* stage = scratch.rows;
  const double* frame = p.frames + head.frames + t * K * K;
  cols.each([&](int c) {
    for (int r = 0; r < K; ++r) R[r * K + c] = valid ? frame[r * K + c] : double(r == c);
  });
  cols.sync();
  cols.each([&](int q) { nu[q] = lifted::pulled_mean<double, K>(q, R, mu) - mean[q]; });
  cols.sync();
  double logdet;
  const bool ok = lifted::pull_back_prepare<double, K>(cols, R, sigma, ld, p.diagonal, L, Y, logdet);
  if (valid && !ok)
    cols.each([&](int c) {
      if (c == 0) report(p.status, InputError::covariance, (long long)t * Spec::num_heads + h);
    });
  const bool write = valid && ok;
  float* query_out = p.queries ? p.queries + head.queries + t * TS::query_stride : nullptr;
  float* key_out = p.keys ? p.keys + head.keys + t * TS::key_stride : nullptr;
  float* values_out = p.values + head.values + t * head.value_stride;
  float* query = query_out && Staged ? stage : query_out;
  float* key = key_out && Staged ? stage + TS::query_stride : key_out;
  float* values = Staged ? stage + TS::query_stride + TS::key_stride : values_out;
  double* query64 = p.queries64 ? p.queries64 + head.queries + t * TS::query_stride : nullptr;
  double* key64 = p.keys64 ? p.keys64 + head.keys + t * TS::key_stride : nullptr;
  auto store = [&](float* f, double* d, int k, double v) {
    if (!write) return;
    if (d)
      d[k] = v;
    else
      f[k] = float(v);
  };
  const double scale = -0.5 / head.kappa;
  // The packed triangles of S = RᵀΣR and Λ = VᵀU (precision_factor_column) by balanced pairs: column
  // q's worker takes the entries {q, (q + d) mod K}, d = 0 … (K − 1)/2, of each, every unordered
  // pair once (K is odd): (K + 1)/2 dot products a worker instead of a whole column's K. The key's
  // −2Λν needs no row of Λ: (Λν)_q = Σ_s u[s] z_s with z = Vν.
  const double* V = p.diagonal ? R : Y;
  cols.each([&](int s) {
    double zs = 0;
    for (int c = 0; c < K; ++c) zs += V[s * K + c] * nu[c];
    z[s] = zs;
  });
  cols.sync();
  double query_squares = 0, key_squares = 0, nu_squares = 0, quadratic = 0;
  cols.each([&](int q) {
    // Entry k of the packed triangle and the column c of pair d.
    auto pair = [&](int d, int& c) {
      c = q + d < K ? q + d : q + d - K;
      return lifted::sym_index(K, min(q, c), max(q, c));
    };
    double w[K];
    lifted::covariance_times_frame_column<double, K>(q, R, sigma, ld, p.diagonal, w);
#pragma unroll 1  // the column c is a run-time index anyway; unrolled, ℓ9's sequence kernel spilled
    for (int d = 0; d <= K / 2; ++d) {  // a = [sym(S + ννᵀ), ν, 1] (M8)
      int c;
      const int k = pair(d, c);
      double v = nu[q] * nu[c];
      GAUGE_ATTN_UNROLL
      for (int r = 0; r < K; ++r) v += R[r * K + c] * w[r];
      query_squares += v * v;
      store(query, query64, k, v);
      // Values [ν, sym(S + ννᵀ)]: the mean message reads the first K.
      if (write && K + k < head.value_stride) values[K + k] = float(v);
    }
    double u[K], lambda_nu = 0;  // (Λν)_q
    lifted::precision_factor_column<double, K>(q, R, p.diagonal, L, Y, u);
    GAUGE_ATTN_UNROLL
    for (int r = 0; r < K; ++r) lambda_nu += u[r] * z[r];
#pragma unroll 1
    for (int d = 0; d <= K / 2; ++d) {  // b = −(1/2κ) [sym₂(Λ), −2Λν, νᵀΛν + ln det Σ − K] (M8)
      int c;
      const int k = pair(d, c);
      double l = 0;
      GAUGE_ATTN_UNROLL
      for (int r = 0; r < K; ++r) l += V[r * K + c] * u[r];
      const double v = scale * (d == 0 ? l : 2 * l);
      key_squares += v * v;
      store(key, key64, k, v * log2e);
    }
    const double key_nu = scale * (-2 * lambda_nu);
    key_squares += key_nu * key_nu;
    store(key, key64, W::sym + q, key_nu * log2e);
    quadratic += nu[q] * lambda_nu;
    query_squares += nu[q] * nu[q];
    store(query, query64, W::sym + q, nu[q]);
    nu_squares += nu[q] * nu[q];
    if (write) values[q] = float(nu[q]);
  });
  const double constant = lifted::key_constant<double, K>(cols.total(quadratic), logdet, scale);
  query_squares = cols.total(query_squares) + 1;
  key_squares = cols.total(key_squares) + constant * constant;
  nu_squares = cols.total(nu_squares);
  cols.each([&](int c) {
    if (c != 0 || !write) return;
    p.half_logdets[std::size_t(h) * p.batch * p.tokens + t] = 0.5 * logdet;
    for (int k = W::lifted - 1; k < TS::query_stride; ++k) {  // the last entries, then zero padding
      const bool last = k == W::lifted - 1;
      store(query, query64, k, last ? 1.0 : 0.0);
      store(key, key64, k, last ? constant * log2e : 0.0);
    }
    for (int k = K + W::sym; k < head.value_stride; ++k) values[k] = 0.f;  // padding
  });
  if constexpr (Staged) {
    cols.sync();
    cols.each([&](int c) {
      if (!write) return;
      // Rows of whole 16-byte chunks (the strides are multiples of 4 floats), chunk c, c + K, … on lane c.
      auto copy = [&](const float* from, float* to, int floats) {
        for (int k = 4 * c; k < floats; k += 4 * K)
          *reinterpret_cast<float4*>(to + k) = *reinterpret_cast<const float4*>(from + k);
      };
      if (query_out) copy(query, query_out, TS::query_stride);
      if (key_out) copy(key, key_out, TS::key_stride);
      copy(values, values_out, head.value_stride);
    });
  }
  norms[0] = write ? sqrt(query_squares) : 0;
  norms[1] = write ? sqrt(key_squares) : 0;
  norms[2] = write ? sqrt(nu_squares) : 0;
  cols.sync();  // the scratch is free again
}

/// Runs f(columns, token slot, TokenScratch) for this thread's share of the tokens of dimension K of
/// a block of `Block` (LiftBlock): the scratch in shared memory for lanes, in local memory for a
/// thread per token.
template <int K, class Block, class F>
__device__ void with_lift_split(double* shared, F&& f) {
  using Split = LiftSplit<K, Block::stage>;
  const typename Split::Columns cols{};
  const int slot = Split::slot();
  if constexpr (Split::lanes) {
    double* warp = shared + threadIdx.x / 32 * Split::warp_scratch;
    const int token = slot < 0 ? 0 : slot % Split::tokens_per_warp;
    f(cols, slot,
      TokenScratch<Split::staged>{warp + token * Split::matrices,
                                  reinterpret_cast<float*>(warp + Split::warp_matrices) + token * Split::row_floats});
  } else {
    double local[Split::matrices];
    f(cols, slot, TokenScratch<false>{local, nullptr});
  }
}

/// Which of the N − 1 heads or irreps block x of a flattened grid works for: the s with
/// first[s] ≤ x < first[s + 1], `first` holding each one's first block (ascending).
template <int N>
__device__ int owner_of_block(const int (&first)[N], int x) {
  int s = 0;
  while (s + 2 < N && x >= first[s + 1]) ++s;
  return s;
}

}  // namespace detail

/// Grid (Σ_r ⌈N / tokens per block⌉, B): R_i into `frames` once per irrep r (its heads share it:
/// D^ℓ depends on φ_i and ℓ only), Σ_i ν_i of each of its heads into `means` (atomically, one add per
/// block, head and component).
template <class Spec>
__global__ void __launch_bounds__(TokenLiftBlock<Spec>::threads) lift_frames_kernel(LiftParams<Spec> p) {
  using Block = TokenLiftBlock<Spec>;
  __shared__ alignas(16) double shared[Block::shared_doubles];
  __shared__ double block_nu[Spec::embed_dim];  // (heads of the irrep, K)
  const int b = blockIdx.y;
  const int r = detail::owner_of_block(p.first_frame_block, blockIdx.x);
  const int h0 = p.first_head[r], heads = p.first_head[r + 1] - h0;
  visit_spin(r, typename Spec::spins{}, [&](auto spin) {
    constexpr int K = 2 * decltype(spin)::value + 1;
    const int first = (blockIdx.x - p.first_frame_block[r]) * Block::tokens(K);
    for (int k = threadIdx.x; k < heads * K; k += blockDim.x) block_nu[k] = 0;
    __syncthreads();
    detail::with_lift_split<K, Block>(shared, [&](const auto& cols, int slot, auto scratch) {
      const int i = first + slot;
      detail::lift_frame<K>(p, cols, b, h0, heads, i, slot >= 0 && i < p.lengths[b], scratch.matrices, block_nu);
    });
    __syncthreads();
    for (int k = threadIdx.x; k < heads * K; k += blockDim.x)
      if (block_nu[k] != 0)
        atomicAdd(p.means + p.heads[h0 + k / K].means + std::size_t(b) * K + k % K, block_nu[k]);
  });
}

/// Grid (Σ_h ⌈N / tokens per block⌉, B), head h's blocks from first_block[h]: pull back, centre on
/// ν̄ = Σν/n, pack.
template <class Spec>
__global__ void __launch_bounds__(TokenLiftBlock<Spec>::threads, lift_pack_min_blocks<Spec>) lift_pack_kernel(LiftParams<Spec> p) {
  using Block = TokenLiftBlock<Spec>;
  __shared__ alignas(16) double shared[Block::shared_doubles];
  __shared__ double mean[2 * max_supported_l + 1];
  const int b = blockIdx.y, h = detail::owner_of_block(p.first_block, blockIdx.x);
  const HeadLayout& head = p.heads[h];
  const int n = p.lengths[b];
  visit_spin(head.irrep, typename Spec::spins{}, [&](auto spin) {
    constexpr int K = 2 * decltype(spin)::value + 1;
    const int first = (blockIdx.x - p.first_block[h]) * Block::tokens(K);
    if (first >= n) return;  // the whole block
    if (threadIdx.x < K) mean[threadIdx.x] = p.means[head.means + std::size_t(b) * K + threadIdx.x] / n;
    __syncthreads();
    double norms[3];
    detail::with_lift_split<K, Block>(shared, [&](const auto& cols, int slot, auto scratch) {
      const int i = first + slot;
      detail::lift_pack<K>(p, cols, b, h, i, slot >= 0 && i < n, mean, scratch, norms);
    });
    detail::warp_max_norms(p, b, h, norms);
  });
}

/// Both steps in one block per (sequence, group of heads of one irrep), for N ≤ 128: grid
/// (sequence_groups.first_block[irreps], B), each warp on one head of the group. The sums are reduced
/// in the block and written (not added) to `means`, which needs no clearing. One block per
/// multiprocessor is all a small batch has: said explicitly, since without it ptxas aimed at more and
/// spilled (higher-rank: 96 registers and 20 B of spill stores; with it 160 and none). Each head has
/// its own frames here (LiftWorkspace): an irrep's heads may span blocks.
template <class Spec>
__global__ void __launch_bounds__(SequenceLiftBlock<Spec>::threads, 1) lift_sequence_kernel(LiftParams<Spec> p) {
  using Block = SequenceLiftBlock<Spec>;
  __shared__ alignas(16) double shared[Block::shared_doubles];
  __shared__ double group_nu[Block::warps * (2 * Spec::max_l + 1)];  // (heads of the group, K)
  const SequenceLiftGroups<Spec::num_irreps>& g = p.sequence_groups;
  const int b = blockIdx.y, n = p.lengths[b];
  const int r = detail::owner_of_block(g.first_block, blockIdx.x);
  visit_spin(r, typename Spec::spins{}, [&](auto spin) {
    constexpr int K = 2 * decltype(spin)::value + 1, per_warp = LiftSplit<K, Block::stage>::tokens_per_warp;
    const int group_head = p.first_head[r] + (int(blockIdx.x) - g.first_block[r]) * g.heads_per_block[r];
    const int heads = min(g.heads_per_block[r], p.first_head[r + 1] - group_head);
    const int warps = g.warps_per_head[r], warp = threadIdx.x / 32, member = warp / warps;
    const int h = group_head + member, per_pass = warps * per_warp;  // this warp's head: if member < heads
    // The token a lift slot takes within each pass of per_pass tokens.
    auto token_of = [&](int slot) { return (warp % warps) * per_warp + slot % per_warp; };
    double* nu = group_nu + member * K;
    for (int t = threadIdx.x; t < heads * K; t += blockDim.x) group_nu[t] = 0;
    __syncthreads();
    if (member < heads)
      detail::with_lift_split<K, Block>(shared, [&](const auto& cols, int slot, auto scratch) {
        const int offset = token_of(slot);
        for (int first = 0; first < n; first += per_pass)
          detail::lift_frame<K>(p, cols, b, h, 1, first + offset, slot >= 0 && first + offset < n, scratch.matrices,
                                nu);
      });
    __syncthreads();  // every frame and ν written
    for (int t = threadIdx.x; t < heads * K; t += blockDim.x) {
      p.means[p.heads[group_head + t / K].means + std::size_t(b) * K + t % K] = group_nu[t];
      group_nu[t] /= n;  // now ν̄
    }
    __syncthreads();
    if (member >= heads) return;
    double norms[3] = {0, 0, 0};
    detail::with_lift_split<K, Block>(shared, [&](const auto& cols, int slot, auto scratch) {
      const int offset = token_of(slot);
      for (int first = 0; first < n; first += per_pass) {
        double token_norms[3];
        detail::lift_pack<K>(p, cols, b, h, first + offset, slot >= 0 && first + offset < n, nu, scratch,
                             token_norms);
        for (int k = 0; k < 3; ++k) norms[k] = fmax(norms[k], token_norms[k]);
      }
    });
    detail::warp_max_norms(p, b, h, norms);
  });
}

}  // namespace gauge_attn::gpu
