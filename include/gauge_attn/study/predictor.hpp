// gauge_attn/study/predictor.hpp: the prediction of the attention-uniformity study for one
// exact-mode head (M4, M5) of dim K at temperature κ from the statistics of the beliefs: the KL
// statistics over pairs in closed form; the upstream row_std, its uniform baseline and the
// normalised entropy (math.md §7) as expectations over the derived law of one row's KL, evaluated
// at the row lengths of the mask on a fixed (deterministic) sample; and the smallest K and the
// largest κ at which the predicted row_std is SHARP. The derivation, with the equation numbers
// (P1)…(P8) cited below, is docs/study.md, "The predictor".
#pragma once

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <random>
#include <vector>

#include "../belief.hpp"
#include "../error.hpp"
#include "../mask.hpp"
#include "../row_statistics.hpp"
#include "../so3.hpp"
#include "../wigner.hpp"
#include "study.hpp"

namespace gauge_attn::study {

/// The isotropic model of one head's beliefs (P1): independent over tokens and components,
///   μ_i,k ~ N(c_k, s²),   ln σ_i,k ~ N(m, η²),   φ_i,a ~ N(0, φ_std²),
/// σ the diagonal variances. A common mean c cancels exactly in ℓ0 heads and is assumed absent
/// (small against s) in the others.
struct BeliefStatistics {
  double mu_variance = 0;     // s²
  double log_sigma_mean = 0;  // m
  double log_sigma_std = 0;   // η
  double phi_std = 0;         // φ_std
};

/// The SHARP threshold of classify() (math.md §7).
inline constexpr double sharp_row_std = 0.10;

struct PredictorOptions {
  int tokens = upstream_tokens;   // N
  MaskSpec mask{true, true};      // the study's: causal, self-masked (math.md §6)
  int queries = 2048;             // rows of the fixed sample of the row law (P7), each with its keys
  int frame_pairs = 256;          // fixed sample of frame pairs for the mixing ρ (P4)
  std::uint64_t seed = 20251227;  // of all samples: the prediction is deterministic
};

/// Mean and population std of one head's KL_ij over its ordered pairs i ≠ j (P3), (P4).
struct KlPrediction {
  double mean = 0, std = 0;
};

struct Prediction {
  KlPrediction kl;             // per head, over pairs i ≠ j
  double row_std = 0;          // upstream row_std (exact mode: masked entries 0) (P8)
  double uniform_row_std = 0;  // its κ → ∞ limit, the library's uniform baseline
  double entropy = 0;          // mean H_i / ln n_i over rows with n_i > 1 (P8)
};

/// The parameters the synthetic beliefs of study.hpp are drawn from (the σ clamp is ignored).
inline BeliefStatistics synthetic_statistics(const SyntheticOptions& o) {
  const double eta = o.sigma_log_std;
  return {o.mu_scale * o.mu_scale, -eta * eta / 2, eta, o.phi_std};
}

/// Estimates the model (P1) from the components [offset, offset + dim) of the beliefs: s² and
/// φ_std from deviations about each sequence's own mean (KL only sees differences within a
/// sequence), m and η from ln σ (diagonal) or from the log-eigenvalues of each K×K block (full).
template <class Scalar>
BeliefStatistics estimate_statistics(const BeliefView<Scalar>& q, int offset, int dim) {
  using detail::require;
  require(dim >= 1 && offset >= 0 && offset + dim <= q.embed_dim, "dim", "components [", offset, ", ", offset + dim,
          ") are outside [0, ", q.embed_dim, ")");
  require(q.batch >= 1 && q.tokens >= 2, "tokens", "needs >= 2 tokens per sequence for a variance, got ", q.tokens);
  const int B = q.batch, N = q.tokens;
  double mu_ss = 0, log_sum = 0, log_ss = 0;
  Eigen::Vector3d phi_ss = Eigen::Vector3d::Zero();
  std::vector<double> logs;
  for (int b = 0; b < B; ++b) {
    Eigen::VectorXd mu_mean = Eigen::VectorXd::Zero(dim);
    Eigen::Vector3d phi_mean = Eigen::Vector3d::Zero();
    for (int i = 0; i < N; ++i) {
      mu_mean += q.mean(b, i, offset, dim).template cast<double>() / N;
      phi_mean += q.frame(b, i) / N;
    }
    for (int i = 0; i < N; ++i) {
      mu_ss += (q.mean(b, i, offset, dim).template cast<double>() - mu_mean).squaredNorm();
      phi_ss += (q.frame(b, i) - phi_mean).cwiseAbs2();
      const Eigen::VectorXd v =
          q.covariance == Covariance::diagonal
              ? Eigen::VectorXd(q.variances(b, i, offset, dim).template cast<double>())
              : Eigen::VectorXd(Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>(q.covariance_block(b, i, offset, dim),
                                                                                Eigen::EigenvaluesOnly)
                                    .eigenvalues());
      for (int k = 0; k < dim; ++k) {
        require(v(k) > 0, "sigma", "variance or eigenvalue ", v(k), " <= 0 at (b=", b, ", n=", i, ", k=", k, ")");
        logs.push_back(std::log(v(k)));
      }
    }
  }
  for (double l : logs) log_sum += l;
  const double m = log_sum / logs.size();
  for (double l : logs) log_ss += (l - m) * (l - m);
  const double tokens = double(B) * N;
  return {mu_ss / (tokens * dim), m, std::sqrt(log_ss / logs.size()), (phi_ss / tokens).cwiseSqrt().mean()};
}

namespace internal {  // the predictor's internals (not `detail`, which would hide gauge_attn::detail here)

inline void check_statistics(const BeliefStatistics& b) {
  detail::require(std::isfinite(b.mu_variance) && b.mu_variance >= 0, "mu_variance", "must be finite and >= 0, got ",
                  b.mu_variance);
  detail::require(std::isfinite(b.log_sigma_mean), "log_sigma_mean", "must be finite, got ", b.log_sigma_mean);
  detail::require(std::isfinite(b.log_sigma_std) && b.log_sigma_std >= 0, "log_sigma_std",
                  "must be finite and >= 0, got ", b.log_sigma_std);
  detail::require(std::isfinite(b.phi_std) && b.phi_std >= 0, "phi_std", "must be finite and >= 0, got ", b.phi_std);
}

inline void check_options(const PredictorOptions& o) {
  detail::require(o.tokens >= 2, "tokens", "N must be >= 2 (row_std needs an off-diagonal entry), got ", o.tokens);
  detail::require(o.mask.mask_self, "mask",
                  "the predictor needs self-masked rows (mask_self): with the self key allowed, KL_ii = 0 makes one "
                  "key of the row special");
  detail::require(o.mask.alibi_slope == 0, "mask", "ALiBi (slope ", o.mask.alibi_slope,
                  ") makes the keys of a row differ in law");
  detail::require(o.queries >= 1, "queries", "must be >= 1, got ", o.queries);
  detail::require(o.frame_pairs >= 1, "frame_pairs", "must be >= 1, got ", o.frame_pairs);
}

inline void check_dim(int K) {
  detail::require(K >= 1 && K % 2 == 1 && (K - 1) / 2 <= max_supported_l, "K",
                  "must be an irrep dim 2l+1 with 0 <= l <= ", max_supported_l, ", got ", K);
}

inline void check_kappa(double kappa) {
  detail::require(std::isfinite(kappa) && kappa > 0, "kappa", "must be finite and > 0, got ", kappa);
}

/// Standard normal draws: Marsaglia's polar method on the raw output of mt19937_64 (fully
/// specified by the standard), so a seed gives the same sample on every platform.
class StandardNormals {
 public:
  explicit StandardNormals(std::uint64_t seed) : rng_(seed) {}
  double operator()() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u, v, r;
    do {
      u = double(rng_() >> 11) * 0x1.0p-52 - 1;  // [−1, 1)
      v = double(rng_() >> 11) * 0x1.0p-52 - 1;
      r = u * u + v * v;
    } while (r >= 1 || r == 0);
    const double scale = std::sqrt(-2 * std::log(r) / r);
    spare_ = v * scale;
    has_spare_ = true;
    return u * scale;
  }

 private:
  std::mt19937_64 rng_;
  bool has_spare_ = false;
  double spare_ = 0;
};

/// The off-diagonal allowed keys n_i of every row i (self-masked: the self key only when alone).
inline std::vector<int> off_diagonal_keys(const PredictorOptions& o) {
  std::vector<int> n(o.tokens);
  for (int i = 0; i < o.tokens; ++i) {
    const KeyRange keys = key_range(o.mask, i, o.tokens);
    n[i] = keys.count() - (keys.allows(i) ? 1 : 0);
  }
  return n;
}

/// The uniform baseline under the mask: uniform_row_std_of averaged over the rows, as the library.
inline double uniform_row_std(const PredictorOptions& o) {
  double sum = 0;
  for (int i = 0; i < o.tokens; ++i) sum += uniform_row_std_of(o.tokens, 0.0, key_range(o.mask, i, o.tokens), i);
  return sum / o.tokens;
}

/// (P3), (P4): the exact mean and std of (M4) over pairs under the model (P1), given the mixing ρ.
/// With y = ln σ_j, x = ln σ_i, f(u) = e^u − 1 − u:
///   E KL = K (s² E e^{−y} + E f(x − y)/2),
///   Var KL = K s⁴ (3 E e^{−2y} − (E e^{−y})²) + K/4 (ρ Var f + 2(1 − ρ) Cov f) + 2 Cov(Q_μ, Q_σ).
inline KlPrediction kl_moments(int K, const BeliefStatistics& b, double rho) {
  const double s2 = b.mu_variance, m = b.log_sigma_mean, eta2 = b.log_sigma_std * b.log_sigma_std;
  const double g1 = std::exp(-m + eta2 / 2), g2 = std::exp(-2 * m + 2 * eta2);  // E e^{−y}, E e^{−2y}
  const double ef = std::expm1(eta2);                                            // E f(u), u ~ N(0, 2η²)
  // E f(u)² and E f(x − y) f(x − y'), in expm1 forms that keep Var and Cov (both O(η⁴)) accurate.
  const double ef2 = std::expm1(4 * eta2) - 2 * ef - 4 * eta2 * ef - 2 * eta2;
  const double eff = std::expm1(3 * eta2) - 2 * ef - 2 * eta2 * ef - eta2;
  const double var_f = ef2 - ef * ef, cov_f = eff - ef * ef;
  const double var_mu = K * s2 * s2 * (3 * g2 - g1 * g1);
  const double var_sigma = K / 4.0 * (rho * var_f + 2 * (1 - rho) * cov_f);
  const double cov = K * s2 / 2 * (std::exp(m + eta2 / 2) * (g2 - g1 * g1) - eta2 * g1);  // Cov(Q_μ, Q_σ)
  return {K * (s2 * g1 + ef / 2), std::sqrt(std::max(var_mu + var_sigma + 2 * cov, 0.0))};
}

}  // namespace internal

/// ρ = E[Σ_kl Ω_kl⁴] / K over the transports Ω = D(φ_i) D(φ_j)ᵀ (M3) of two independent frames
/// φ ~ N(0, φ_std² I₃): how much the transport mixes the variances (P4); 1 for ℓ = 0 or φ_std = 0,
/// 3/5 for uniformly random ℓ = 1 rotations, about 3/K for large irreps. A fixed sample of pairs.
inline double transport_mixing(int K, double phi_std, int pairs = PredictorOptions{}.frame_pairs,
                               std::uint64_t seed = PredictorOptions{}.seed) {
  internal::check_dim(K);
  detail::require(std::isfinite(phi_std) && phi_std >= 0, "phi_std", "must be finite and >= 0, got ", phi_std);
  detail::require(pairs >= 1, "frame_pairs", "must be >= 1, got ", pairs);
  if (K == 1) return 1.0;
  internal::StandardNormals z(seed);
  auto frame = [&] {
    const double a = z(), b = z(), c = z();
    return Eigen::Vector3d(phi_std * a, phi_std * b, phi_std * c);
  };
  double sum = 0;
  for (int p = 0; p < pairs; ++p) {
    const Eigen::Vector3d phi_i = frame(), phi_j = frame();
    // Ω = R_i R_jᵀ = D(φ_i) D(−φ_j) = D(log(exp φ_i exp(−φ_j))): one Wigner-D per pair (M3).
    const Eigen::MatrixXd omega = wigner_d((K - 1) / 2, so3_compose(phi_i, -phi_j));  // (K, K)
    sum += omega.array().square().square().sum();
  }
  return sum / (double(pairs) * K);
}

/// The KL statistics of one head of dim K (P3), (P4).
inline KlPrediction predict_kl(int K, const BeliefStatistics& stats, const PredictorOptions& options = {}) {
  internal::check_dim(K);
  internal::check_statistics(stats);
  return internal::kl_moments(K, stats, transport_mixing(K, stats.phi_std, options.frame_pairs, options.seed));
}

/// The head-averaged KL of the [DIVERSITY] block (math.md §7) for heads of dims `dims`: the mean
/// of the means; the heads of a pair are uncorrelated (given the shared frames they are
/// independent, and their conditional means do not depend on the frames), so Var = Σ_h Var_h / H².
inline KlPrediction predict_head_average_kl(const std::vector<int>& dims, const BeliefStatistics& stats,
                                            const PredictorOptions& options = {}) {
  detail::require(!dims.empty(), "dims", "needs at least one head");
  double mean = 0, var = 0;
  for (int K : dims) {
    const KlPrediction h = predict_kl(K, stats, options);
    mean += h.mean / dims.size();
    var += h.std * h.std / (double(dims.size()) * dims.size());
  }
  return {mean, std::sqrt(var)};
}

/// The prediction for one head of dim K under one belief model, for any temperature. It holds
/// the fixed sample of the row law (P6), (P7): `queries` queries, each with the KL of the keys
/// its longest row may see. KL does not depend on κ, so predict(κ) only redoes the softmax, and
/// the sample is common to all κ: the predicted row_std falls monotonically with κ.
class HeadPredictor {
 public:
  HeadPredictor(int K, const BeliefStatistics& stats, const PredictorOptions& options = {})
      : K_(K), stats_(stats), options_(options) {
    internal::check_dim(K);
    internal::check_statistics(stats);
    internal::check_options(options);
    rho_ = study::transport_mixing(K, stats.phi_std, options.frame_pairs, options.seed);
    rows_ = internal::off_diagonal_keys(options);
    keys_ = *std::max_element(rows_.begin(), rows_.end());
    sample_row_law();
  }

  int dim() const { return K_; }
  double transport_mixing() const { return rho_; }
  KlPrediction kl() const { return internal::kl_moments(K_, stats_, rho_); }

  Prediction predict(double kappa) const {
    internal::check_kappa(kappa);
    const int N = options_.tokens, Q = options_.queries;
    std::vector<double> row_std(keys_ + 1, 0.0), entropy(keys_ + 1, 0.0);  // E over queries, per n
    for (int q = 0; q < Q; ++q) {
      // Softmax (M5) of the first n keys of query q for n = 1 … keys_, from running sums of
      // w_j = e^{−(KL_j − KL_min)/κ}, rescaled when a smaller KL arrives: S0 = Σw, S1 = Σw·e, S2 = Σw²
      // with e_j = (KL_j − KL_min)/κ; then Σβ² = S2/S0² and H = ln S0 + S1/S0.
      const double* kl = &kl_[std::size_t(q) * keys_];
      double low = kl[0], s0 = 0, s1 = 0, s2 = 0;
      for (int j = 0; j < keys_; ++j) {
        if (kl[j] < low) {
          const double d = (low - kl[j]) / kappa, r = std::exp(-d);
          s1 = r > 0 ? r * (s1 + d * s0) : 0;  // r = 0: the earlier keys have no weight left
          s0 *= r;
          s2 *= r * r;
          low = kl[j];
        }
        const double e = (kl[j] - low) / kappa, w = std::exp(-e);
        s0 += w;
        s1 += w > 0 ? w * e : 0;  // w·e → 0 as e → ∞ (e = ∞ at a tiny κ)
        s2 += w * w;
        const int n = j + 1;
        row_std[n] += row_std_of(N, 0.0, n, 1.0, s2 / (s0 * s0)) / Q;  // (P7), math.md §7
        if (n > 1) entropy[n] += (std::log(s0) + s1 / s0) / std::log(double(n)) / Q;
      }
    }
    Prediction p;  // (P8): means over the rows of the mask; rows with n = 0 have row_std 0
    int entropy_rows = 0;
    for (int n : rows_) {
      p.row_std += row_std[n] / N;
      if (n > 1) {
        p.entropy += entropy[n];
        ++entropy_rows;
      }
    }
    if (entropy_rows > 0) p.entropy /= entropy_rows;
    p.uniform_row_std = internal::uniform_row_std(options_);
    p.kl = kl();
    return p;
  }

 private:
  /// (P5), (P6): given the query (a = μ_i, x = ln σ_i), the KL of a key under the mean-field
  /// transport P̄ = ρ'I + (1 − ρ')J/K is a sum of K independent component terms
  ///   KL_j = Σ_l ½(v_l − a_l)² e^{−y_l} + ½ρ' f(x_l − y_l) + ½(1 − ρ')⟨f(x − y_l)⟩,
  /// v_l ~ N(0, s²), y_l ~ N(m, η²), ⟨·⟩ the mean over the query's components. Drawn component by
  /// component (l outermost, queries and keys from their own streams) so that the sample of dim K
  /// is the start of the sample of dim K + 2: the prediction is smooth in K.
  void sample_row_law() {
    const int Q = options_.queries;
    const double s = std::sqrt(stats_.mu_variance), m = stats_.log_sigma_mean, eta = stats_.log_sigma_std;
    const double rho_self = K_ == 1 ? 1.0 : std::sqrt(std::max(K_ * rho_ - 1, 0.0) / (K_ - 1));  // ρ' (P5)
    internal::StandardNormals query_normals(options_.seed + 1), key_normals(options_.seed + 2);
    std::vector<double> a(std::size_t(K_) * Q), x(a.size());  // (K, Q): μ_i and ln σ_i of the queries
    for (std::size_t i = 0; i < a.size(); ++i) {
      a[i] = s * query_normals();
      x[i] = m + eta * query_normals();
    }
    // ⟨f(x − y)⟩ = ⟨e^x⟩ e^{−y} − 1 − ⟨x⟩ + y, from the means of e^x and x over each query's components.
    std::vector<double> mean_exp_x(Q, 0.0), mean_x(Q, 0.0);
    for (int l = 0; l < K_; ++l)
      for (int q = 0; q < Q; ++q) {
        mean_exp_x[q] += std::exp(x[std::size_t(l) * Q + q]) / K_;
        mean_x[q] += x[std::size_t(l) * Q + q] / K_;
      }
    kl_.assign(std::size_t(Q) * keys_, 0.0);  // (Q, keys)
    for (int l = 0; l < K_; ++l)
      for (int q = 0; q < Q; ++q) {
        const double al = a[std::size_t(l) * Q + q], xl = x[std::size_t(l) * Q + q], exp_xl = std::exp(xl);
        for (int j = 0; j < keys_; ++j) {
          const double v = s * key_normals(), y = m + eta * key_normals(), exp_my = std::exp(-y);
          const double f_self = exp_xl * exp_my - 1 - (xl - y);                  // f(x_l − y)
          const double f_mean = mean_exp_x[q] * exp_my - 1 - (mean_x[q] - y);  // ⟨f(x − y)⟩
          kl_[std::size_t(q) * keys_ + j] +=
              0.5 * ((v - al) * (v - al) * exp_my + rho_self * f_self + (1 - rho_self) * f_mean);
        }
      }
  }

  int K_;
  BeliefStatistics stats_;
  PredictorOptions options_;
  double rho_ = 1;          // (P4)
  std::vector<int> rows_;   // (N): off-diagonal keys n_i of each row of the mask
  int keys_ = 0;            // the most of them
  std::vector<double> kl_;  // (Q, keys): KL of each sampled query's keys (P6)
};

/// One head of dim K at temperature κ.
inline Prediction predict(int K, double kappa, const BeliefStatistics& stats, const PredictorOptions& options = {}) {
  return HeadPredictor(K, stats, options).predict(kappa);
}

/// row_std in the κ → 0 limit, where every row puts all its weight on one key: the most the
/// statistic can reach under the mask (≈ 0.123 at N = 64; below 0.10 from N ≈ 100 on).
inline double one_hot_row_std(const PredictorOptions& options = {}) {
  internal::check_options(options);
  double sum = 0;
  for (int n : internal::off_diagonal_keys(options))
    if (n > 0) sum += row_std_of(options.tokens, 0.0, n, 1.0, 1.0);  // Σβ = Σβ² = 1; rows with n = 0 give 0
  return sum / options.tokens;
}

/// The smallest irrep dim K = 2ℓ+1 (ℓ ≤ max_supported_l) whose predicted row_std exceeds
/// `threshold` at temperature κ, by bisection over ℓ (row_std grows with K); nullopt: none does.
inline std::optional<int> min_sharp_dim(double kappa, const BeliefStatistics& stats,
                                        const PredictorOptions& options = {}, double threshold = sharp_row_std) {
  internal::check_kappa(kappa);
  auto sharp = [&](int l) { return predict(2 * l + 1, kappa, stats, options).row_std > threshold; };
  if (sharp(0)) return 1;
  int lo = 0, hi = max_supported_l;  // !sharp(lo), sharp(hi)
  if (!sharp(hi)) return std::nullopt;
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    (sharp(mid) ? hi : lo) = mid;
  }
  return 2 * hi + 1;
}

/// The largest κ at which a head of dim K has a predicted row_std above `threshold` (row_std
/// falls with κ), to a relative 1e-3: +∞ when even uniform attention exceeds it (small N);
/// nullopt when no κ does (the one-hot limit is below it, or the beliefs have no spread).
/// Decades from the KL std bracket it, then bisection in ln κ.
inline std::optional<double> max_sharp_kappa(int K, const BeliefStatistics& stats,
                                             const PredictorOptions& options = {}, double threshold = sharp_row_std) {
  const HeadPredictor head(K, stats, options);
  if (internal::uniform_row_std(options) > threshold) return std::numeric_limits<double>::infinity();
  const double spread = head.kl().std;
  if (spread == 0 || one_hot_row_std(options) <= threshold) return std::nullopt;
  auto sharp = [&](double kappa) { return head.predict(kappa).row_std > threshold; };
  double lo = spread, hi = spread;  // sharp(lo), !sharp(hi)
  if (sharp(lo)) {
    do hi *= 10;
    while (sharp(hi));
    lo = hi / 10;
  } else {
    do {
      lo /= 10;
      if (lo < spread * 1e-12) return std::nullopt;  // ties in the sample: the one-hot limit not reached
    } while (!sharp(lo));
    hi = lo * 10;
  }
  while (hi / lo > 1 + 1e-3) {
    const double mid = std::sqrt(lo * hi);
    (sharp(mid) ? lo : hi) = mid;
  }
  return lo;
}

}  // namespace gauge_attn::study
