// gauge_attn/attention.hpp: KL attention over a whole irrep spec on the CPU (M5, M6, M7).
//
// Exact mode (the default) evaluates the exact KL (M4) through the factorisation (M8): each
// head's beliefs are lifted once per token (O(N)), after which a row of attention costs one dot
// product of width P per key, one exp, and the message sums (M9). Nothing of size N² is stored
// unless the KL and β matrices are requested.
//
// Upstream mode reproduces the upstream layer (math.md §6) pair by pair: float32-rounded
// generators, separate exponentials for exp(φ_i·G) and exp(−φ_j·G) (Padé, or the 4th-order
// Taylor series), the diagonal approximation of the transported covariance or the ε-regularised
// full KL, KL ≥ 0, β ≥ 1e-8 without renormalisation. It is O(N²K³) and meant for small N.
#pragma once

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <type_traits>
#include <vector>

#include "belief.hpp"
#include "detail/parallel.hpp"
#include "error.hpp"
#include "irreps.hpp"
#include "kl.hpp"
#include "lifted.hpp"
#include "mask.hpp"
#include "options.hpp"
#include "precision.hpp"
#include "row_statistics.hpp"
#include "so3.hpp"
#include "wigner.hpp"

namespace gauge_attn {

template <class Scalar>
struct AttentionResult {
  int batch = 0, tokens = 0, embed_dim = 0, num_heads = 0;
  Covariance covariance = Covariance::diagonal;
  std::vector<Scalar> mu;     // (B, N, E): m_i, heads concatenated
  std::vector<Scalar> sigma;  // Σ^agg if requested: (B, N, E) diagonal, or (B, N, E, E) block-diagonal
  std::vector<Scalar> kl;     // (B, H, N, N) if requested
  std::vector<Scalar> beta;   // (B, H, N, N) if requested
  std::vector<Scalar> energy; // (B, H, N) attention energy e_ih = Σ_j β_ij KL_ij, if requested
  std::vector<Scalar> lse;    // (B, H, N) log Σ_j exp(s_ij) of the (M8) scores + bias (exact mode),
                              // what the backward needs to recompute β without storing it
  std::vector<RowStatistics> row_statistics;  // (B, H)
  KlStatistics kl_statistics;                 // if requested
  std::vector<HeadPrecision> precision;       // (B, H), exact mode: the bounds (P1), (P2) of the scores' rounding

  std::size_t pair_index(int b, int h, int i, int j) const {
    return ((std::size_t(b) * num_heads + h) * tokens + i) * std::size_t(tokens) + j;
  }
  const RowStatistics& statistics(int b, int h) const { return row_statistics[std::size_t(b) * num_heads + h]; }
  std::size_t row_index(int b, int h, int i) const { return (std::size_t(b) * num_heads + h) * tokens + i; }
};

namespace detail {

/// Welford's running mean and variance with min and max; mergeable across threads (Chan et al.).
struct RunningMoments {
  long long n = 0;
  double mean = 0, m2 = 0;
  double min = std::numeric_limits<double>::infinity(), max = -std::numeric_limits<double>::infinity();
  void add(double x) {
    ++n;
    const double d = x - mean;
    mean += d / n;
    m2 += d * (x - mean);
    min = std::min(min, x);
    max = std::max(max, x);
  }
  void merge(const RunningMoments& o) {
    if (o.n == 0) return;
    const long long total = n + o.n;
    const double d = o.mean - mean;
    mean += d * o.n / total;
    m2 += o.m2 + d * d * double(n) * o.n / total;
    n = total;
    min = std::min(min, o.min);
    max = std::max(max, o.max);
  }
  KlStatistics statistics() const {
    if (n == 0) return {};
    return {mean, std::sqrt(m2 / n), min, max, n};
  }
};

/// The [DIVERSITY] KL of sequence 0 (§7): KL_ij averaged over the H heads, then its moments over
/// the off-diagonal pairs of the first n tokens, masked ones included; kl(h, i, j) is one head's KL.
template <class KL>
KlStatistics head_averaged_kl_statistics(int n, int H, const KL& kl) {
  RunningMoments all;
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      if (i == j) continue;
      double sum = 0;
      for (int h = 0; h < H; ++h) sum += kl(h, i, j);
      all.add(sum / H);
    }
  return all.statistics();
}

/// A full covariance block must be symmetric (to 1e-6 of its largest entry, which float
/// inputs meet) and positive definite; both modes then read it the same way.
inline void check_covariance_block(const Eigen::MatrixXd& S, int b, int i, int h, int l) {
  const double scale = S.cwiseAbs().maxCoeff();
  const double asymmetry = (S - S.transpose()).cwiseAbs().maxCoeff();
  require(asymmetry <= 1e-6 * scale, "sigma", "the covariance block of head ", h, " (", irrep_label(l), ") at (b=", b,
          ", n=", i, ") is not symmetric (max |S - S^T| = ", asymmetry, ")");
  require(Eigen::LLT<Eigen::MatrixXd>(S).info() == Eigen::Success, "sigma", "the covariance block of head ", h, " (",
          irrep_label(l), ") at (b=", b, ", n=", i, ") is not positive definite");
}

/// Writes a head's covariance message C (K×K) of token (b, i) into the result's layout.
template <class Scalar, class Mat>
void store_covariance(AttentionResult<Scalar>& r, int b, int i, int offset, const Mat& C) {
  const std::size_t E = r.embed_dim, t = std::size_t(b) * r.tokens + i;
  const int K = int(C.rows());
  if (r.covariance == Covariance::diagonal) {
    for (int k = 0; k < K; ++k) r.sigma[t * E + offset + k] = Scalar(C(k, k));
  } else {
    for (int p = 0; p < K; ++p)
      for (int q = 0; q < K; ++q) r.sigma[(t * E + offset + p) * E + offset + q] = Scalar(C(p, q));
  }
}

/// One (sequence, head) lifted to the identity frame (M8), ν centred on its mean (§5).
template <class T>
struct LiftedSequence {
  int n = 0, K = 0, P = 0, V = 0;
  std::vector<T> queries;      // (n, P)   a_i
  std::vector<T> keys;         // (P, n)   b_j, transposed for the vectorised loop over j
  std::vector<T> values;       // (V, n)   [sym(S_j + ν_jν_jᵀ), ν_j]
  std::vector<double> frames;  // (n, K, K) R_i, row-major
  std::vector<double> half_logdet;  // (n) ½ ln det Σ_i, the row constant of (M8)
  std::vector<double> nu_mean;      // (K)
  double query_norm = 0, key_norm = 0, mean_spread = 0;  // max ‖a_i‖, max ‖b_j‖, max ‖ν_j − ν̄‖ (P1)
};

/// Lifts the first n tokens of sequence b on head h into `s` (stored in precision Out; computed in
/// double). `pulled`, when given, receives the pulled-back beliefs (ν not centred), which the
/// backward differentiates.
template <int K, class Scalar, class Out>
void lift_sequence(const BeliefView<Scalar>& q, int b, int n, int h, const HeadInfo& head, double kappa,
                   bool identity_transport, LiftedSequence<Out>& s,
                   std::vector<lifted::PulledBack<double, K>>* keep_pulled = nullptr) {
  using W = LiftedWidths<K>;
  constexpr int L = (K - 1) / 2;
  s.n = n;
  s.K = K;
  s.P = W::lifted;
  s.V = W::values;
  s.queries.assign(std::size_t(n) * W::lifted, 0);
  s.keys.assign(std::size_t(n) * W::lifted, 0);
  s.values.assign(std::size_t(n) * W::values, 0);
  s.frames.assign(std::size_t(n) * K * K, 0);
  s.half_logdet.assign(n, 0);
  s.nu_mean.assign(K, 0.0);
  std::vector<lifted::PulledBack<double, K>> local;
  std::vector<lifted::PulledBack<double, K>>& pulled = keep_pulled ? *keep_pulled : local;
  pulled.resize(n);
  for (int i = 0; i < n; ++i) {
    double* R = &s.frames[std::size_t(i) * K * K];
    const Eigen::Matrix<double, K, K> D =
        identity_transport ? Eigen::Matrix<double, K, K>::Identity() : wigner_d<L>(q.frame(b, i));
    for (int r = 0; r < K; ++r)
      for (int c = 0; c < K; ++c) R[r * K + c] = D(r, c);
    double mu[K], sigma[K * K];
    for (int k = 0; k < K; ++k) mu[k] = q.mean(b, i, head.offset, K)(k);
    const bool diagonal = q.covariance == Covariance::diagonal;
    if (diagonal) {
      for (int k = 0; k < K; ++k) sigma[k] = q.variances(b, i, head.offset, K)(k);
    } else {
      const Eigen::MatrixXd blk = q.covariance_block(b, i, head.offset, K);
      check_covariance_block(blk, b, i, h, L);
      for (int r = 0; r < K; ++r)
        for (int c = 0; c < K; ++c) sigma[r * K + c] = blk(r, c);
    }
    require(lifted::pull_back<double, K>(R, mu, sigma, K, diagonal, pulled[i]), "sigma",
            "the covariance block of head ", h, " (", irrep_label(L), ") at (b=", b, ", n=", i,
            ") is not positive definite");
    s.half_logdet[i] = 0.5 * pulled[i].logdet;
    for (int k = 0; k < K; ++k) s.nu_mean[k] += pulled[i].nu[k] / n;
  }
  s.query_norm = s.key_norm = s.mean_spread = 0;
  for (int i = 0; i < n; ++i) {
    double nu[K];
    for (int k = 0; k < K; ++k) nu[k] = pulled[i].nu[k] - s.nu_mean[k];
    double a[W::lifted], bj[W::lifted];
    lifted::pack_query(pulled[i], nu, a);
    lifted::pack_key(pulled[i], nu, kappa, bj);
    s.query_norm = std::max(s.query_norm, lifted::norm(a));
    s.key_norm = std::max(s.key_norm, lifted::norm(bj));
    s.mean_spread = std::max(s.mean_spread, lifted::norm(nu));
    for (int p = 0; p < W::lifted; ++p) {
      s.queries[std::size_t(i) * W::lifted + p] = Out(a[p]);
      s.keys[std::size_t(p) * n + i] = Out(bj[p]);
    }
    for (int v = 0; v < W::values; ++v) s.values[std::size_t(v) * n + i] = Out(a[v]);
  }
}

/// Rows [row_begin, row_end) of one lifted (sequence, head): softmax of (M8) scores (M5),
/// messages (M9), optional β/KL rows, and the row statistics.
template <int K, class Scalar>
void attend_rows(const LiftedSequence<Scalar>& s, int b, int h, const HeadInfo& head, double kappa,
                 const AttentionOptions& opt, int row_begin, int row_end, std::vector<Scalar>& scratch,
                 AttentionResult<Scalar>& r, RowStatisticsAccumulator& stats) {
  using W = LiftedWidths<K>;
  using Mat = Eigen::Matrix<double, K, K, Eigen::RowMajor>;
  const int n = s.n;
  const int needed_values = opt.covariance_message ? W::values : K;
  const int first_value = opt.covariance_message ? 0 : W::sym;
  scratch.resize(2 * std::size_t(n));  // logits, then weights
  for (int i = row_begin; i < row_end; ++i) {
    const KeyRange keys = key_range(opt.mask, i, n);
    Scalar* x = scratch.data() + keys.begin;
    const int count = keys.end - keys.begin;
    using Array = Eigen::Array<Scalar, Eigen::Dynamic, 1>;
    Eigen::Map<Array> t(x, count), e(x + n, count);
    if (opt.mask.alibi_slope == 0)
      t.setZero();
    else  // logit_bias(i, j) = slope·(i − j) for j = begin … end − 1
      t = Array::LinSpaced(count, Scalar(i - keys.begin), Scalar(i - keys.end + 1)) * Scalar(opt.mask.alibi_slope);
    const Scalar* a = &s.queries[std::size_t(i) * W::lifted];
    for (int p = 0; p < W::lifted; ++p) {  // x_j += a_i[p] b_j[p]: the (M8) score
      const Scalar ap = a[p];
      const Scalar* bp = &s.keys[std::size_t(p) * n + keys.begin];
      for (int j = 0; j < count; ++j) x[j] += ap * bp[j];
    }
    // Softmax (M5) with Eigen's vectorised exp; e holds the unnormalised weights.
    const int excluded = keys.excluded >= 0 ? keys.excluded - keys.begin : -1;
    if (excluded >= 0) t(excluded) = -std::numeric_limits<Scalar>::infinity();
    const Scalar top = t.maxCoeff();
    t -= top;
    e = t.exp();
    if (excluded >= 0) t(excluded) = e(excluded) = 0;  // exp clamps −∞ to a denormal; 0·(−∞) stays out
    const double total = double(e.sum());
    const double inv_total = 1.0 / total;
    const double weighted_logit = double((e * t).sum());
    const std::size_t row = r.row_index(b, h, i);
    r.lse[row] = Scalar(double(top) + std::log(total));
    if (opt.attention_energy) {
      // e_i = Σ_j β_ij KL_ij with KL_ij = −κ (s_ij − bias_ij) − ½ ln det Σ_i (M8) (G1).
      double mean_score = weighted_logit * inv_total + double(top);
      if (opt.mask.alibi_slope != 0)
        mean_score -= opt.mask.alibi_slope * double((e * Array::LinSpaced(count, Scalar(i - keys.begin),
                                                                          Scalar(i - keys.end + 1))).sum()) * inv_total;
      r.energy[row] = Scalar(-kappa * mean_score - s.half_logdet[i]);
    }
    // Message sums over the allowed keys (M9): Σ_j e_j [sym(S_j + ν_jν_jᵀ), ν_j] / Σ_j e_j.
    double acc[W::values] = {};
    for (int v = first_value; v < first_value + needed_values; ++v)
      acc[v] = double(e.matrix().dot(Eigen::Map<const Eigen::Matrix<Scalar, Eigen::Dynamic, 1>>(
                   &s.values[std::size_t(v) * n + keys.begin], count))) *
               inv_total;
    // Back to frame i: m_i = R_i (w + ν̄), Σ^agg_i = R_i (M − w wᵀ) R_iᵀ.
    const Eigen::Map<const Mat> R(&s.frames[std::size_t(i) * K * K]);
    Eigen::Matrix<double, K, 1> w, w_shifted;
    for (int k = 0; k < K; ++k) {
      w(k) = acc[W::sym + k];
      w_shifted(k) = w(k) + s.nu_mean[k];
    }
    const Eigen::Matrix<double, K, 1> m = R * w_shifted;
    const std::size_t out = (std::size_t(b) * r.tokens + i) * r.embed_dim + head.offset;
    for (int k = 0; k < K; ++k) r.mu[out + k] = Scalar(m(k));
    if (opt.covariance_message) {
      Mat M;
      for (int p = 0; p < K; ++p)
        for (int q = p; q < K; ++q) M(p, q) = M(q, p) = acc[lifted::sym_index(K, p, q)];
      const Mat C = R * (M - w * w.transpose()) * R.transpose();
      store_covariance(r, b, i, head.offset, C);
    }
    // Row statistics (§7) from the unnormalised weights, β_ii left out by summing the keys before
    // and after i (subtracting it would cancel: the self weight dominates sharp rows, KL_ii = 0).
    const int self = std::clamp(i - keys.begin, 0, count);
    const int after = std::max(count - self - 1, 0);
    const double sum_off = double(e.head(self).sum() + e.tail(after).sum()) * inv_total;
    const double sumsq_off =
        double(e.head(self).square().sum() + e.tail(after).square().sum()) * inv_total * inv_total;
    stats.add_row(keys, i, sum_off, sumsq_off, std::log(total) - weighted_logit * inv_total);
    if (opt.return_matrices) {
      for (int j = 0; j < n; ++j) {
        double dot = 0;
        for (int p = 0; p < W::lifted; ++p) dot += double(a[p]) * s.keys[std::size_t(p) * n + j];
        r.kl[r.pair_index(b, h, i, j)] = Scalar(-kappa * dot - s.half_logdet[i]);
        r.beta[r.pair_index(b, h, i, j)] = keys.allows(j) ? Scalar(e(j - keys.begin) * inv_total) : Scalar(0);
      }
    }
  }
}

/// KL statistics of sequence 0 from its lifted heads: average over heads, pair by pair (§7).
template <class Scalar>
KlStatistics lifted_kl_statistics(const LiftedSequence<Scalar>* heads, int H, const std::vector<double>& kappa) {
  const int n = heads[0].n;
  std::vector<RunningMoments> partial(n);
  parallel_for(n, [&](std::int64_t i) {
    for (int j = 0; j < n; ++j) {
      if (j == i) continue;
      double sum = 0;
      for (int h = 0; h < H; ++h) {
        const auto& s = heads[h];
        double dot = 0;
        for (int p = 0; p < s.P; ++p) dot += double(s.queries[std::size_t(i) * s.P + p]) * s.keys[std::size_t(p) * n + j];
        sum += -kappa[h] * dot - s.half_logdet[i];
      }
      partial[i].add(sum / H);
    }
  });
  RunningMoments all;
  for (const auto& p : partial) all.merge(p);
  return all.statistics();
}

/// Calls f(std::integral_constant<int, K>) for the head dimension K = 2l+1 of a spec's head.
template <class Spec, class F>
void dispatch_head_dim(int l, F&& f) {
  bool found = false;
  Spec::for_each_irrep([&](auto irrep, int) {
    constexpr int L = decltype(irrep)::l;
    if (!found && L == l) {
      found = true;
      f(std::integral_constant<int, 2 * L + 1>{});
    }
  });
}

template <class Spec, class Scalar>
void exact_forward(const BeliefView<Scalar>& q, const AttentionOptions& opt, const std::vector<double>& kappa,
                   const std::vector<int>& lengths, AttentionResult<Scalar>& r) {
  constexpr int H = Spec::num_heads;
  const int B = q.batch;
  std::vector<LiftedSequence<Scalar>> lifted(std::size_t(B) * H);
  parallel_for(std::int64_t(B) * H, [&](std::int64_t t) {
    const int b = int(t / H), h = int(t % H);
    const HeadInfo head = Spec::head(h);
    dispatch_head_dim<Spec>(head.l, [&](auto k) {
      lift_sequence<decltype(k)::value>(q, b, lengths[b], h, head, kappa[h], opt.identity_transport, lifted[t]);
    });
  });
  // The bound (P1) of every (sequence, head) from its lift, checked before any pair is scored.
  for (std::size_t t = 0; t < lifted.size(); ++t) {
    const LiftedSequence<Scalar>& s = lifted[t];
    r.precision[t] = head_precision(fma_score_roundings(s.P), score_unit(std::is_same_v<Scalar, double>), s.query_norm, s.key_norm,
                                    s.mean_spread, opt.mask.alibi_slope, s.n);
  }
  check_precision<Spec>(r.precision, opt, kappa, std::is_same_v<Scalar, double>);
  // Query blocks of 64 rows keep the tasks balanced under the causal mask.
  constexpr int rows_per_task = 64;
  struct Task {
    int b, h, begin, end;
  };
  std::vector<Task> tasks;
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h)
      for (int i = 0; i < lengths[b]; i += rows_per_task) tasks.push_back({b, h, i, std::min(i + rows_per_task, lengths[b])});
  std::vector<RowStatisticsAccumulator> task_stats;
  for (const Task& t : tasks) task_stats.emplace_back(lengths[t.b], 0.0);
  parallel_for(std::int64_t(tasks.size()), [&](std::int64_t k) {
    const Task& t = tasks[k];
    const HeadInfo head = Spec::head(t.h);
    std::vector<Scalar> scratch;
    dispatch_head_dim<Spec>(head.l, [&](auto dim) {
      attend_rows<decltype(dim)::value>(lifted[std::size_t(t.b) * H + t.h], t.b, t.h, head, kappa[t.h], opt, t.begin,
                                        t.end, scratch, r, task_stats[k]);
    });
  });
  std::vector<RowStatisticsAccumulator> per_head;
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h) per_head.emplace_back(lengths[b], 0.0);
  for (std::size_t k = 0; k < tasks.size(); ++k)
    per_head[std::size_t(tasks[k].b) * H + tasks[k].h].merge(task_stats[k]);
  for (std::size_t k = 0; k < per_head.size(); ++k) r.row_statistics[k] = per_head[k].result();
  if (opt.kl_statistics) r.kl_statistics = lifted_kl_statistics(lifted.data(), H, kappa);
}

/// The β floor of the upstream mode (§6): weights below it are raised to it, without renormalisation.
inline constexpr double upstream_beta_floor = 1e-8;

/// One (sequence, head) of the upstream mode (§6), every pair i, j < n: per token the two
/// exponentials of A_i = φ_i·G (float32-rounded generators; I under identity_transport) and the
/// belief in double, and the clamped KL matrix.
struct UpstreamHead {
  std::vector<Eigen::MatrixXd> fwd, inv;  // exp(A_i), exp(−A_i)
  std::vector<Eigen::VectorXd> mu;
  std::vector<Eigen::MatrixXd> cov;       // Σ_i, diagonal beliefs expanded
  std::vector<double> kl;                 // (n, n)

  Eigen::MatrixXd omega(int i, int j) const { return fwd[i] * inv[j]; }  // Ω_ij (M3)
};

/// The UpstreamHead of sequence b, head h (n valid tokens); full blocks are checked as they are read.
template <class Scalar>
UpstreamHead upstream_head(const BeliefView<Scalar>& q, const AttentionOptions& opt, int b, int n, int h,
                           const HeadInfo& head) {
  using Eigen::MatrixXd;
  const int K = head.dim;
  const bool diagonal = q.covariance == Covariance::diagonal;
  const Generators& G = upstream_generators(head.l);
  auto expm = [&](const MatrixXd& A) {
    return opt.exponential == UpstreamExponential::taylor4 ? expm_taylor4(A) : expm_pade(A);
  };
  UpstreamHead s{std::vector<MatrixXd>(n), std::vector<MatrixXd>(n), std::vector<Eigen::VectorXd>(n),
                 std::vector<MatrixXd>(n), std::vector<double>(std::size_t(n) * n)};
  for (int i = 0; i < n; ++i) {
    const MatrixXd A = algebra_element(G, q.frame(b, i));
    s.fwd[i] = opt.identity_transport ? MatrixXd::Identity(K, K) : expm(A);
    s.inv[i] = opt.identity_transport ? MatrixXd::Identity(K, K) : expm(-A);
    s.mu[i] = q.mean(b, i, head.offset, K).template cast<double>();
    s.cov[i] = q.covariance_block(b, i, head.offset, K);
    if (!diagonal) check_covariance_block(s.cov[i], b, i, h, head.l);
  }
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      const MatrixXd omega = s.omega(i, j);
      s.kl[std::size_t(i) * n + j] =
          diagonal ? kl_upstream_diagonal(s.mu[i], s.cov[i].diagonal(), s.mu[j], s.cov[j].diagonal(), omega)
                   : kl_upstream_full(s.mu[i], s.cov[i], s.mu[j], s.cov[j], omega);
    }
  return s;
}

/// Σ_j exp(x_j − max) and Σ_j exp(x_j − max)(x_j − max) over a row's allowed keys.
struct SoftmaxSums {
  double total = 0, weighted_logit = 0;
};

/// Row i of (M5) in the upstream mode: p_j = softmax_j(−KL_ij/κ + bias_ij) over the allowed keys
/// and 0 for the others, before the β floor; kl_row holds KL_i0 … KL_i(n−1).
inline SoftmaxSums upstream_softmax(const MaskSpec& mask, const double* kl_row, double kappa, int i, int n,
                                    double* p) {
  const KeyRange keys = key_range(mask, i, n);
  double top = -std::numeric_limits<double>::infinity();
  for (int j = keys.begin; j < keys.end; ++j)
    if (keys.allows(j)) top = std::max(top, -kl_row[j] / kappa + logit_bias(mask, i, j));
  SoftmaxSums sums;
  for (int j = 0; j < n; ++j) {
    p[j] = 0;
    if (!keys.allows(j)) continue;
    const double x = -kl_row[j] / kappa + logit_bias(mask, i, j) - top;
    p[j] = std::exp(x);
    sums.total += p[j];
    sums.weighted_logit += p[j] * x;
  }
  for (int j = 0; j < n; ++j) p[j] /= sums.total;
  return sums;
}

template <class Spec, class Scalar>
void upstream_forward(const BeliefView<Scalar>& q, const AttentionOptions& opt, const std::vector<double>& kappa,
                      const std::vector<int>& lengths, AttentionResult<Scalar>& r) {
  using Eigen::MatrixXd;
  using Eigen::VectorXd;
  constexpr int H = Spec::num_heads;
  const int B = q.batch;
  const bool diagonal = q.covariance == Covariance::diagonal;
  std::vector<RowStatisticsAccumulator> per_head;
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h) per_head.emplace_back(lengths[b], upstream_beta_floor);
  std::vector<std::vector<double>> kl_first(H);  // sequence 0, per head: summed after
  parallel_for(std::int64_t(B) * H, [&](std::int64_t t) {
    const int b = int(t / H), h = int(t % H), n = lengths[b];
    const HeadInfo head = Spec::head(h);
    const int K = head.dim;
    UpstreamHead s = upstream_head(q, opt, b, n, h, head);
    std::vector<double> beta(n);
    for (int i = 0; i < n; ++i) {
      const KeyRange keys = key_range(opt.mask, i, n);
      const double* kl = &s.kl[std::size_t(i) * n];
      const SoftmaxSums sums = upstream_softmax(opt.mask, kl, kappa[h], i, n, beta.data());
      double sum_off = 0, sumsq_off = 0, energy = 0;
      for (int j = 0; j < n; ++j) {
        beta[j] = std::max(beta[j], upstream_beta_floor);  // upstream: clamp, no renormalisation
        energy += beta[j] * kl[j];  // every key, masked ones at the floor (G1)
        if (keys.allows(j) && j != i) {
          sum_off += beta[j];
          sumsq_off += beta[j] * beta[j];
        }
      }
      per_head[t].add_row(keys, i, sum_off, sumsq_off, std::log(sums.total) - sums.weighted_logit / sums.total);
      if (opt.attention_energy) r.energy[r.row_index(b, h, i)] = Scalar(energy);
      // Messages over every key, masked ones at their clamped weight, as upstream does.
      VectorXd m = VectorXd::Zero(K);
      MatrixXd second = MatrixXd::Zero(K, K);
      for (int j = 0; j < n; ++j) {
        const MatrixXd omega = s.omega(i, j);
        const VectorXd mt = omega * s.mu[j];
        m += beta[j] * mt;
        if (!opt.covariance_message) continue;
        MatrixXd St = omega * s.cov[j] * omega.transpose();
        if (diagonal) St = MatrixXd(St.diagonal().asDiagonal());
        second += beta[j] * (St + mt * mt.transpose());
      }
      const std::size_t out = (std::size_t(b) * r.tokens + i) * r.embed_dim + head.offset;
      for (int k = 0; k < K; ++k) r.mu[out + k] = Scalar(m(k));
      if (opt.covariance_message) store_covariance(r, b, i, head.offset, MatrixXd(second - m * m.transpose()));
      if (opt.return_matrices)
        for (int j = 0; j < n; ++j) {
          r.kl[r.pair_index(b, h, i, j)] = Scalar(kl[j]);
          r.beta[r.pair_index(b, h, i, j)] = Scalar(beta[j]);
        }
    }
    if (b == 0 && opt.kl_statistics) kl_first[h] = std::move(s.kl);
  });
  for (std::size_t k = 0; k < per_head.size(); ++k) r.row_statistics[k] = per_head[k].result();
  if (opt.kl_statistics) {
    const int n = lengths[0];
    r.kl_statistics =
        head_averaged_kl_statistics(n, H, [&](int h, int i, int j) { return kl_first[h][std::size_t(i) * n + j]; });
  }
}

}  // namespace detail

namespace detail {
template <class Spec>
AttentionResult<float> forward_in_double(const BeliefView<float>& q, const AttentionOptions& opt);
}

/// KL attention of every head of `Spec` over a batch of beliefs (M5, M6, and M7 and the attention
/// energy on request; in exact mode also the row log-sum-exp that attention_backward needs).
/// Throws InvalidArgument for bad shapes, non-finite inputs, variances ≤ 0, covariance blocks
/// that are not positive definite, κ ≤ 0 and inconsistent options. Rows of padded tokens
/// (i ≥ valid length) are left zero in every output.
template <class Spec, class Scalar>
AttentionResult<Scalar> attention_forward(const BeliefView<Scalar>& q, const AttentionOptions& opt) {
  validate_shape(q, Spec::embed_dim);
  if constexpr (std::is_same_v<Scalar, float>)  // float64 scores: the double instantiation, outputs rounded
    if (opt.scores == Scores::float64 && opt.mode == Mode::exact) return detail::forward_in_double<Spec>(q, opt);
  detail::check_mask(opt.mask);
  detail::check_precision_options(opt);
  const std::vector<double> kappa = detail::kappa_per_head(opt, Spec::num_heads);
  const std::vector<int> lengths = detail::lengths_per_sequence(opt, q.batch, q.tokens);
  validate_values(q, lengths);

  AttentionResult<Scalar> r;
  r.batch = q.batch;
  r.tokens = q.tokens;
  r.embed_dim = q.embed_dim;
  r.num_heads = Spec::num_heads;
  r.covariance = q.covariance;
  const std::size_t tokens = std::size_t(q.batch) * q.tokens;
  r.mu.assign(tokens * q.embed_dim, Scalar(0));
  if (opt.covariance_message) r.sigma.assign(tokens * q.sigma_stride(), Scalar(0));
  if (opt.return_matrices) {
    r.kl.assign(tokens * Spec::num_heads * q.tokens, Scalar(0));
    r.beta.assign(r.kl.size(), Scalar(0));
  }
  if (opt.attention_energy) r.energy.assign(tokens * Spec::num_heads, Scalar(0));
  if (opt.mode == Mode::exact) {
    r.lse.assign(tokens * Spec::num_heads, Scalar(0));
    r.precision.resize(std::size_t(q.batch) * Spec::num_heads);
  }
  r.row_statistics.resize(std::size_t(q.batch) * Spec::num_heads);
  if (opt.mode == Mode::exact)
    detail::exact_forward<Spec>(q, opt, kappa, lengths, r);
  else
    detail::upstream_forward<Spec>(q, opt, kappa, lengths, r);
  return r;
}

namespace detail {

/// Float beliefs through the double instantiation (Scores::float64 on the CPU), outputs rounded to float.
template <class Spec>
AttentionResult<float> forward_in_double(const BeliefView<float>& q, const AttentionOptions& opt) {
  Beliefs<double> d(q.batch, q.tokens, q.embed_dim, q.covariance);
  std::copy(q.mu, q.mu + d.mu.size(), d.mu.begin());
  std::copy(q.sigma, q.sigma + d.sigma.size(), d.sigma.begin());
  std::copy(q.phi, q.phi + d.phi.size(), d.phi.begin());
  AttentionResult<double> r = attention_forward<Spec>(d.view(), opt);
  const auto narrow = [](const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); };
  AttentionResult<float> f;
  f.batch = r.batch;
  f.tokens = r.tokens;
  f.embed_dim = r.embed_dim;
  f.num_heads = r.num_heads;
  f.covariance = r.covariance;
  f.mu = narrow(r.mu);
  f.sigma = narrow(r.sigma);
  f.kl = narrow(r.kl);
  f.beta = narrow(r.beta);
  f.energy = narrow(r.energy);
  f.lse = narrow(r.lse);
  f.row_statistics = std::move(r.row_statistics);
  f.kl_statistics = r.kl_statistics;
  f.precision = std::move(r.precision);
  return f;
}

}  // namespace detail
}  // namespace gauge_attn
