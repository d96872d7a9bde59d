// gauge_attn/cuda/pairwise.cuh: the pair-by-pair GPU path. It can materialise the KL and β matrices
// (B, H, N, N) for inspection and runs both modes: the exact KL (M4) with exact transport, and the
// upstream-compatible semantics of math.md §6 (float32-rounded generators, separate exponentials
// of ±φ·G by scaling and squaring or the 4th-order Taylor series, the diagonal approximation or
// the ε-regularised full KL, KL ≥ 0, β ≥ 1e-8 without renormalisation). One thread per (sequence,
// head, query row), all in float64; O(N² K³) work, and O(B·H·N²) memory only when KL or β is asked
// for. The exact KL is the sum-of-squares form of kl_factors.hpp: accurate for every valid input
// (docs/conventions.md, Precision), where the fused forward's lifted scores are bounded by (P1).
//
//   gauge_attn::gpu::Pairwise<Spec, T> pairwise;       // T = float or double inputs and outputs
//   pairwise.run(beliefs, options, outputs, stream);   // asynchronous; outputs: pointers or vectors
//   pairwise.check_inputs(stream);                     // synchronises; throws on bad beliefs
#pragma once

#include <gauge_attn/detail/kl_factors.hpp>
#include <gauge_attn/detail/so3_tables.hpp>
#include <gauge_attn/detail/wigner_factorised.hpp>
#include <gauge_attn/irreps.hpp>
#include <gauge_attn/lifted.hpp>
#include <gauge_attn/mask.hpp>
#include <gauge_attn/options.hpp>
#include <gauge_attn/row_statistics.hpp>

#include <cuda_runtime.h>
#include <thrust/device_vector.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "check.cuh"
#include "device_beliefs.cuh"
#include "device_vectors.cuh"
#include "layout.cuh"
#include "lift.cuh"

namespace gauge_attn::gpu {

namespace detail {

template <class Spec, class T>
struct PairwiseParams {
  int irrep[Spec::num_heads] = {}, offset[Spec::num_heads] = {};
  std::size_t transports[Spec::num_heads] = {};  // offset of the head's (B, N, 2, K, K) in `frames`
  std::size_t generators[Spec::num_irreps] = {};  // offset of each irrep's (3, K, K) in `tables`
  std::size_t quarter_turns[Spec::num_irreps] = {};
  double kappa[Spec::num_heads] = {};
  int batch = 0, tokens = 0, embed_dim = 0;
  bool diagonal = true, identity_transport = false, upstream = false, taylor4 = false;
  MaskSpec mask;
  const T *mu = nullptr, *sigma = nullptr, *phi = nullptr;
  const int* lengths = nullptr;
  const double* tables = nullptr;
  double* frames = nullptr;  // E_i = exp(φ_i·G) and E_i⁻¹ = exp(−φ_i·G) (exact: R_i and R_iᵀ)
  double* kl = nullptr;      // workspace (B, H, N, N) in double
  PairwiseOutputsOf<T> out;
  unsigned long long* status = nullptr;
};

/// C = A·B for K×K row-major matrices.
template <int K>
__device__ void mat_mul(const double* A, const double* B, double* C) {
  for (int r = 0; r < K; ++r)
    for (int c = 0; c < K; ++c) {
      double s = 0;
      for (int k = 0; k < K; ++k) s += A[r * K + k] * B[k * K + c];
      C[r * K + c] = s;
    }
}

/// exp(A) for a K×K matrix: the 4th-order Taylor series (upstream's attention heads), or a
/// degree-18 Taylor series after scaling A below norm 1/2, squared back: as accurate as Padé in
/// double for these skew matrices.
template <int K>
__device__ void matrix_exp(const double* A, double* E, bool taylor4) {
  double norm = 0;
  for (int r = 0; r < K; ++r) {
    double row = 0;
    for (int c = 0; c < K; ++c) row += fabs(A[r * K + c]);
    norm = fmax(norm, row);
  }
  int squarings = 0;
  while (!taylor4 && norm > 0.5 && squarings < 60) {
    norm /= 2;
    ++squarings;
  }
  const double scale = ldexp(1.0, -squarings);
  double term[K * K], tmp[K * K];
  for (int k = 0; k < K * K; ++k) E[k] = term[k] = (k % (K + 1) == 0) ? 1.0 : 0.0;
  const int degree = taylor4 ? 4 : 18;
  for (int d = 1; d <= degree; ++d) {
    mat_mul<K>(term, A, tmp);
    for (int k = 0; k < K * K; ++k) {
      term[k] = tmp[k] * scale / d;
      E[k] += term[k];
    }
  }
  for (int s = 0; s < squarings; ++s) {
    mat_mul<K>(E, E, tmp);
    for (int k = 0; k < K * K; ++k) E[k] = tmp[k];
  }
}

/// Σ of token t on a head (diagonal inputs expanded), as a K×K row-major double matrix.
template <int K, class Spec, class T>
__device__ void covariance_of(const PairwiseParams<Spec, T>& p, std::size_t t, int offset, double* S) {
  for (int r = 0; r < K; ++r)
    for (int c = 0; c < K; ++c)
      S[r * K + c] = p.diagonal ? (r == c ? double(p.sigma[t * p.embed_dim + offset + r]) : 0.0)
                                : double(p.sigma[(t * p.embed_dim + offset + r) * p.embed_dim + offset + c]);
}

/// KL(N(μ_i, Σ_i) ‖ N(μ_t, Σ_t)) from the Cholesky factor L_t of Σ_t and ln det Σ_i (M4).
template <int K>
__device__ double kl_from_cholesky(const double* mu_i, const double* Sigma_i, double logdet_i, const double* mu_t,
                                   const double (&L)[K][K]) {
  double trace = 0, quad = 0, logdet_t = 0;
  for (int r = 0; r < K; ++r) logdet_t += 2 * log(L[r][r]);
  double y[K];
  for (int r = 0; r < K; ++r) {  // ‖L⁻¹(μ_t − μ_i)‖²
    double s = mu_t[r] - mu_i[r];
    for (int k = 0; k < r; ++k) s -= L[r][k] * y[k];
    y[r] = s / L[r][r];
    quad += y[r] * y[r];
  }
  for (int c = 0; c < K; ++c) {  // tr(Σ_t⁻¹ Σ_i) = Σ_c ‖L⁻¹ Σ_i e_c‖² weighted: solve L Lᵀ x = Σ_i e_c
    double z[K], x[K];
    for (int r = 0; r < K; ++r) {
      double s = Sigma_i[r * K + c];
      for (int k = 0; k < r; ++k) s -= L[r][k] * z[k];
      z[r] = s / L[r][r];
    }
    for (int r = K - 1; r >= 0; --r) {
      double s = z[r];
      for (int k = r + 1; k < K; ++k) s -= L[k][r] * x[k];
      x[r] = s / L[r][r];
    }
    trace += x[c];
  }
  return 0.5 * (trace + quad - K + logdet_t - logdet_i);
}

/// Transports of every token and head: grid (⌈N/128⌉, H, B).
template <class Spec, class T>
__global__ void __launch_bounds__(128) pairwise_transport_kernel(PairwiseParams<Spec, T> p) {
  const int b = blockIdx.z, h = blockIdx.y, i = blockIdx.x * 128 + threadIdx.x;
  if (i >= p.lengths[b]) return;
  visit_spin(p.irrep[h], typename Spec::spins{}, [&](auto spin) {
    constexpr int K = 2 * decltype(spin)::value + 1;
    const std::size_t t = std::size_t(b) * p.tokens + i;
    double phi[3] = {double(p.phi[t * 3]), double(p.phi[t * 3 + 1]), double(p.phi[t * 3 + 2])};
    if (!isfinite(phi[0]) || !isfinite(phi[1]) || !isfinite(phi[2])) {
      report(p.status, InputError::frame, (long long)t * Spec::num_heads + h);
      phi[0] = phi[1] = phi[2] = 0;
    }
    if (p.identity_transport) phi[0] = phi[1] = phi[2] = 0;
    double* E = p.frames + p.transports[h] + t * 2 * K * K;
    double* E_inv = E + K * K;
    if (p.upstream) {  // A = φ·G with the float32-rounded generators, exponentiated twice
      const double* G = p.tables + p.generators[p.irrep[h]];
      double A[K * K], minus_A[K * K];
      for (int k = 0; k < K * K; ++k) {
        A[k] = phi[0] * G[k] + phi[1] * G[K * K + k] + phi[2] * G[2 * K * K + k];
        minus_A[k] = -A[k];
      }
      matrix_exp<K>(A, E, p.taylor4);
      matrix_exp<K>(minus_A, E_inv, p.taylor4);
    } else {  // exact: R_i (M2) and R_iᵀ, so that Ω_ij = R_i R_jᵀ (M3)
      gauge_attn::detail::wigner_d_factorised<K>(p.tables + p.quarter_turns[p.irrep[h]], phi, E);
      for (int r = 0; r < K; ++r)
        for (int c = 0; c < K; ++c) E_inv[r * K + c] = E[c * K + r];
    }
  });
}

/// One query row per thread: KL of every pair, softmax, messages, row statistics, in two passes
/// over the keys. With the KL and β outputs the row's KLs are kept in `kl`; without them nothing of
/// size N² is stored and the KL of an allowed pair is evaluated again in the second pass.
template <class Spec, class T>
__global__ void __launch_bounds__(128) pairwise_rows_kernel(PairwiseParams<Spec, T> p) {
  const int b = blockIdx.z, h = blockIdx.y, i = blockIdx.x * 128 + threadIdx.x;
  const int n = p.lengths[b];
  if (i >= n) return;
  constexpr double floor_variance = 1e-6, floor_beta = 1e-8, epsilon = 1e-8;
  visit_spin(p.irrep[h], typename Spec::spins{}, [&](auto spin) {
    constexpr int K = 2 * decltype(spin)::value + 1;
    const int offset = p.offset[h];
    const std::size_t ti = std::size_t(b) * p.tokens + i;
    const double* frames = p.frames + p.transports[h] + std::size_t(b) * p.tokens * 2 * K * K;
    const double* E_i = frames + std::size_t(i) * 2 * K * K;
    double mu_i[K], Sigma_i[K * K], L_i[K][K];
    for (int k = 0; k < K; ++k) {
      mu_i[k] = p.mu[ti * p.embed_dim + offset + k];
      if (!isfinite(mu_i[k])) report(p.status, InputError::mean, (long long)ti * Spec::num_heads + h);
    }
    covariance_of<K>(p, ti, offset, Sigma_i);
    for (int r = 0; r < K; ++r)  // also rejects variances ≤ 0 in every mode
      for (int c = 0; c < K; ++c)
        L_i[r][c] = Sigma_i[r * K + c] + (p.upstream && !p.diagonal && r == c ? epsilon : 0.0);
    if (!lifted::cholesky(L_i)) {
      report(p.status, InputError::covariance, (long long)ti * Spec::num_heads + h);
      return;
    }
    double half_logdet_i = 0;
    for (int r = 0; r < K; ++r) half_logdet_i += log(L_i[r][r]);
    // Key j in its own frame, and Ω_ij = E_i E_j⁻¹.
    struct Key {
      double Omega[K * K], mu[K], Sigma[K * K];
    };
    auto key = [&](int j, Key& key) {
      const std::size_t tj = std::size_t(b) * p.tokens + j;
      mat_mul<K>(E_i, frames + std::size_t(j) * 2 * K * K + K * K, key.Omega);
      for (int k = 0; k < K; ++k) key.mu[k] = p.mu[tj * p.embed_dim + offset + k];
      covariance_of<K>(p, tj, offset, key.Sigma);
    };
    // The key transported into frame i: Ωμ_j, and ΩΣ_jΩᵀ when `covariance`.
    auto transport = [&](const Key& key, double* mu_t, double* Sigma_t, bool covariance) {
      for (int r = 0; r < K; ++r) {
        double s = 0;
        for (int k = 0; k < K; ++k) s += key.Omega[r * K + k] * key.mu[k];
        mu_t[r] = s;
      }
      if (!covariance) return;
      double tmp[K * K];
      mat_mul<K>(key.Omega, key.Sigma, tmp);
      for (int r = 0; r < K; ++r)
        for (int c = 0; c < K; ++c) {
          double s = 0;
          for (int k = 0; k < K; ++k) s += tmp[r * K + k] * key.Omega[c * K + k];
          Sigma_t[r * K + c] = s;
        }
    };
    // KL_ij: exact, (M4) from the factors of Σ_i and Σ_j (kl_factors.hpp); upstream, the §6 variants.
    // False (and reported) when Σ_j, or upstream's regularised transported Σ, is not positive definite.
    auto kl_of = [&](int j, const Key& key, double& kl) {
      double mu_t[K], Sigma_t[K * K];
      if (p.upstream) transport(key, mu_t, Sigma_t, true);
      if (p.upstream && p.diagonal) {  // §6: diagonal of the transported covariance, clamped
        kl = 0;
        for (int k = 0; k < K; ++k) {
          const double sp = fmax(Sigma_t[k * K + k], floor_variance), si = fmax(Sigma_i[k * K + k], floor_variance);
          const double d = mu_t[k] - mu_i[k];
          kl += 0.5 * (si / sp + d * d / sp - 1 + log(sp) - log(si));
        }
        kl = fmax(kl, 0.0);
        return true;
      }
      double L[K][K];  // exact: Σ_j = L Lᵀ; upstream: Σ̃_j + εI = L Lᵀ
      for (int r = 0; r < K; ++r)
        for (int c = 0; c < K; ++c)
          L[r][c] = p.upstream ? Sigma_t[r * K + c] + (r == c ? epsilon : 0.0) : key.Sigma[r * K + c];
      if (!lifted::cholesky(L)) {
        report(p.status, InputError::covariance, (long long)(std::size_t(b) * p.tokens + j) * Spec::num_heads + h);
        return false;
      }
      if (!p.upstream) {
        kl = gauge_attn::detail::kl_from_factors<double, K>(key.Omega, mu_i, &L_i[0][0], half_logdet_i, key.mu,
                                                            &L[0][0], p.diagonal);
        return true;
      }
      double S_i[K * K];
      for (int k = 0; k < K * K; ++k) S_i[k] = Sigma_i[k] + (k % (K + 1) == 0 ? epsilon : 0.0);
      kl = fmax(kl_from_cholesky<K>(mu_i, S_i, 2 * half_logdet_i, mu_t, L), 0.0);
      return true;
    };
    const std::size_t row = (std::size_t(b) * Spec::num_heads + h) * p.tokens + i;
    double* kl_row = p.kl ? p.kl + row * p.tokens : nullptr;  // null: not materialised
    const KeyRange keys = key_range(p.mask, i, n);
    const double kappa = p.kappa[h];
    // First pass: the KLs (kept when materialised) and the softmax sums (M5) over the allowed keys,
    // online: total = Σ e^x and weighted = Σ e^x·x, x = logit − top, top the largest logit so far.
    double top = -INFINITY, total = 0, weighted = 0;
    for (int j = 0; j < n; ++j) {
      if (!kl_row && !keys.allows(j)) continue;
      Key k;
      key(j, k);
      double kl;
      if (!kl_of(j, k, kl)) return;
      if (kl_row) kl_row[j] = kl;
      if (p.out.kl) p.out.kl[row * p.tokens + j] = T(kl);
      if (!keys.allows(j)) continue;
      const double logit = -kl / kappa + logit_bias(p.mask, i, j);
      if (logit > top) {  // move the reference: e^x·x sums to e^shift (weighted + shift·total)
        const double shift = top - logit;
        if (total > 0) {
          const double scale = exp(shift);
          weighted = scale * (weighted + shift * total);
          total *= scale;
        }
        top = logit;
      }
      const double x = logit - top;
      total += exp(x);
      weighted += exp(x) * x;
    }
    // Second pass: β (upstream then clamps every β ≥ 1e-8) and the messages; the KL read back, or
    // evaluated again. Masked keys carry weight only upstream (at 1e-8); β's output is zeroed.
    const double masked = p.upstream ? floor_beta : 0.0;
    double m[K] = {}, second[K * K] = {}, sum_off = 0, sumsq_off = 0;
    for (int j = 0; j < n; ++j) {
      const bool allowed = keys.allows(j);
      if (!allowed && !p.upstream) continue;
      Key k;
      bool keyed = false;
      double beta = 0;
      if (allowed) {
        double kl = 0;
        if (kl_row) {
          kl = kl_row[j];
        } else {
          key(j, k);
          keyed = true;
          kl_of(j, k, kl);  // succeeded in the first pass
        }
        beta = exp(-kl / kappa + logit_bias(p.mask, i, j) - top) / total;
      }
      if (p.upstream) beta = fmax(beta, floor_beta);
      if (p.out.beta) p.out.beta[row * p.tokens + j] = T(beta);
      if (allowed && j != i) {
        sum_off += beta;
        sumsq_off += beta * beta;
      }
      if (beta == 0) continue;
      if (!keyed) key(j, k);
      double mu_t[K], Sigma_t[K * K];
      transport(k, mu_t, Sigma_t, p.out.sigma != nullptr);
      for (int r = 0; r < K; ++r) {
        m[r] += beta * mu_t[r];
        if (p.out.sigma)
          for (int c = 0; c < K; ++c) second[r * K + c] += beta * (Sigma_t[r * K + c] + mu_t[r] * mu_t[c]);
      }
    }
    for (int k = 0; k < K; ++k) p.out.mu[ti * p.embed_dim + offset + k] = T(m[k]);
    if (p.out.sigma)  // (M7): Σ_j β_ij (Σ̃_j + μ̃_jμ̃_jᵀ) − m_i m_iᵀ
      for (int r = 0; r < K; ++r)
        for (int c = 0; c < K; ++c) {
          const double v = second[r * K + c] - m[r] * m[c];
          if (p.diagonal) {
            if (r == c) p.out.sigma[ti * p.embed_dim + offset + r] = T(v);
          } else {
            p.out.sigma[(ti * p.embed_dim + offset + r) * p.embed_dim + offset + c] = T(v);
          }
        }
    if (p.out.row_std) {
      const int allowed_off = keys.count() - (keys.allows(i) ? 1 : 0);
      p.out.row_std[row] = T(row_std_of(n, masked, allowed_off, sum_off, sumsq_off));
      p.out.uniform_row_std[row] = T(uniform_row_std_of(n, masked, keys, i));
      p.out.entropy[row] =
          keys.count() > 1 ? T(normalised_entropy_of(keys, log(total) - weighted / total)) : T(0);
    }
  });
}

}  // namespace detail

template <class Spec, class T = float>
class Pairwise {
 public:
  static constexpr int H = Spec::num_heads;

  /// Launches the transports and the rows on `stream`; no synchronisation. Bad shapes and options
  /// throw InvalidArgument, CUDA failures CudaError; bad values are found on the device and
  /// reported by check_inputs(). Rows of padded tokens are zero in every output.
  void run(const DeviceBeliefsOf<T>& q, const AttentionOptions& opt, const PairwiseOutputsOf<T>& out,
           cudaStream_t stream = 0) {
    using gauge_attn::detail::require;
    require(out.mu != nullptr, "outputs.mu", "null device pointer");
    detail::check_request(q, Spec::embed_dim, out.row_std, out.uniform_row_std, out.entropy);
    gauge_attn::detail::check_mask(opt.mask);
    const std::vector<double> kappa = gauge_attn::detail::kappa_per_head(opt, H);
    const std::vector<int> lengths = gauge_attn::detail::lengths_per_sequence(opt, q.batch, q.tokens);

    detail::PairwiseParams<Spec, T> p;
    std::size_t frames = 0;
    for (int h = 0; h < H; ++h) {
      const HeadInfo info = Spec::head(h);
      p.irrep[h] = info.irrep;
      p.offset[h] = info.offset;
      p.kappa[h] = kappa[h];
      p.transports[h] = frames;
      frames += std::size_t(q.batch) * q.tokens * 2 * info.dim * info.dim;
    }
    upload_tables(p);
    if (frames_.size() < frames) frames_.resize(frames);
    const std::size_t pairs = std::size_t(q.batch) * H * q.tokens * q.tokens;
    const bool materialised = out.kl || out.beta;  // else nothing of size N²: the KL is evaluated per pass
    if (materialised && kl_.size() < pairs) kl_.resize(pairs);
    if (lengths_.size() < lengths.size()) lengths_.resize(lengths.size());
    GAUGE_ATTN_CUDA_CHECK(cudaMemcpyAsync(thrust::raw_pointer_cast(lengths_.data()), lengths.data(),
                                          lengths.size() * sizeof(int), cudaMemcpyHostToDevice, stream));
    if (status_.empty()) status_.resize(1, 0ull);
    p.batch = q.batch;
    p.tokens = q.tokens;
    p.embed_dim = q.embed_dim;
    p.diagonal = q.covariance == Covariance::diagonal;
    p.identity_transport = opt.identity_transport;
    p.upstream = opt.mode == Mode::upstream;
    p.taylor4 = opt.exponential == UpstreamExponential::taylor4;
    p.mask = opt.mask;
    p.mu = q.mu;
    p.sigma = q.sigma;
    p.phi = q.phi;
    p.lengths = thrust::raw_pointer_cast(lengths_.data());
    p.tables = thrust::raw_pointer_cast(tables_.data());
    p.frames = thrust::raw_pointer_cast(frames_.data());
    p.kl = materialised ? thrust::raw_pointer_cast(kl_.data()) : nullptr;
    p.out = out;
    p.status = thrust::raw_pointer_cast(status_.data());
    const std::size_t rows = std::size_t(q.batch) * q.tokens;
    T* const matrices[] = {out.kl, out.beta};
    for (T* o : matrices)
      if (o) GAUGE_ATTN_CUDA_CHECK(cudaMemsetAsync(o, 0, pairs * sizeof(T), stream));
    GAUGE_ATTN_CUDA_CHECK(cudaMemsetAsync(out.mu, 0, rows * q.embed_dim * sizeof(T), stream));
    if (out.sigma)
      GAUGE_ATTN_CUDA_CHECK(
          cudaMemsetAsync(out.sigma, 0, rows * q.embed_dim * (p.diagonal ? 1 : q.embed_dim) * sizeof(T), stream));
    T* const statistics_outputs[] = {out.row_std, out.uniform_row_std, out.entropy};
    for (T* o : statistics_outputs)
      if (o) GAUGE_ATTN_CUDA_CHECK(cudaMemsetAsync(o, 0, rows * H * sizeof(T), stream));
    const dim3 grid((q.tokens + 127) / 128, H, q.batch);
    detail::pairwise_transport_kernel<Spec, T><<<grid, 128, 0, stream>>>(p);
    GAUGE_ATTN_CUDA_CHECK_LAUNCH(pairwise_transport_kernel);
    detail::pairwise_rows_kernel<Spec, T><<<grid, 128, 0, stream>>>(p);
    GAUGE_ATTN_CUDA_CHECK_LAUNCH(pairwise_rows_kernel);
    tokens_ = q.tokens;
  }

  /// The same on Thrust device vectors (device_vectors.cuh), their sizes checked first.
  void run(const DeviceBeliefsOf<T>& q, const AttentionOptions& opt, PairwiseVectorsOf<T>& out,
           cudaStream_t stream = 0) {
    run(q, opt, device_outputs(q, H, out), stream);
  }

  /// Waits for `stream`; throws InvalidArgument naming the first bad belief found since the last
  /// check (a non-finite mean or frame, a covariance that is not positive definite).
  void check_inputs(cudaStream_t stream = 0) {
    unsigned long long status = 0;
    GAUGE_ATTN_CUDA_CHECK(cudaMemcpyAsync(&status, thrust::raw_pointer_cast(status_.data()), sizeof status,
                                          cudaMemcpyDeviceToHost, stream));
    GAUGE_ATTN_CUDA_CHECK(cudaStreamSynchronize(stream));
    if (status == 0) return;
    GAUGE_ATTN_CUDA_CHECK(cudaMemset(thrust::raw_pointer_cast(status_.data()), 0, sizeof status));
    throw_input_error<Spec>(status, tokens_);
  }

 private:
  void upload_tables(detail::PairwiseParams<Spec, T>& p) {
    std::vector<double> host;
    Spec::for_each_irrep([&](auto irrep, int first) {
      constexpr int L = decltype(irrep)::l;
      const int r = Spec::head(first).irrep;
      p.generators[r] = host.size();
      for (const auto& g : gauge_attn::detail::generator_tables(L))
        for (double x : g) host.push_back(double(float(x)));  // upstream's float32 generators (§6)
      p.quarter_turns[r] = host.size();
      const auto& X = gauge_attn::detail::quarter_turn_table(L);
      host.insert(host.end(), X.begin(), X.end());
    });
    if (tables_.empty()) tables_ = host;  // synchronous copy, once
  }

  int tokens_ = 0;
  thrust::device_vector<double> tables_, frames_, kl_;
  thrust::device_vector<int> lengths_;
  thrust::device_vector<unsigned long long> status_;
};

}  // namespace gauge_attn::gpu
