// gauge_attn/study/study_analysis.hpp: the analysis of a study run (study.hpp) with the predictor
// (predictor.hpp): the belief statistics (P1) estimated from the beliefs the run used; the
// predicted KL statistics (P3), (P4) and row statistics (P7), (P8) of the exact mode set against
// the measured ones, the upstream mode's measured beside (the predictor makes no upstream
// correction); the KL per head dimension K pooled over the specs (the law-of-large-numbers
// argument of the upstream note); and the smallest K and the largest κ of predicted SHARP
// attention. docs/study.md, "The analysis", explains each part.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "../attention.hpp"
#include "../belief.hpp"
#include "../detail/parallel.hpp"
#include "../error.hpp"
#include "../specs.hpp"
#include "predictor.hpp"
#include "study.hpp"

namespace gauge_attn::study {

/// The model (P1) of the heads of one ℓ of one spec, estimated from sequence 0 (the tokens whose
/// KL and row_std the run measures) over the components of all those heads (they share the
/// model), with the transport mixing ρ (P4) it implies.
struct SpinStatistics {
  std::string spec;
  int l = 0, heads = 0;
  BeliefStatistics beliefs;
  double transport_mixing = 1;
  int dim() const { return 2 * l + 1; }
};

/// The model (P1) of the whole run, for the questions that are not about one measured head (the
/// sharp thresholds, the predicted curve against K): every sequence and component of the beliefs
/// of the run's first spec (the input itself for .npy data; synthetic beliefs of every spec are
/// drawn from one law).
struct RunStatistics {
  std::string spec;
  int sequences = 0, tokens = 0, components = 0;
  BeliefStatistics beliefs;
};

/// The belief statistics of a run, gathered spec by spec while each spec's beliefs exist.
struct ObservedStatistics {
  RunStatistics run;
  std::vector<SpinStatistics> spins;  // spec, ℓ order

  /// Adds the named spec's statistics; the first spec added also gives the run's. Throws
  /// InvalidArgument for an unknown spec, beliefs whose E is not the spec's, or N < 2.
  template <class Scalar>
  void add(const std::string& name, const BeliefView<Scalar>& q) {
    specs::visit(name, [&](auto spec) {
      using Spec = decltype(spec);
      detail::require(q.embed_dim == Spec::embed_dim, "spec", "'", name, "' has E = ", Spec::embed_dim,
                      " but the beliefs have E = ", q.embed_dim);
      if (run.spec.empty()) run = {name, q.batch, q.tokens, q.embed_dim, estimate_statistics(q, 0, q.embed_dim)};
      BeliefView<Scalar> first = q;  // sequence 0 leads every array
      first.batch = 1;
      Spec::for_each_irrep([&](auto irrep, int first_head) {
        using Irrep = decltype(irrep);  // its heads are contiguous from first_head's offset
        const BeliefStatistics b = estimate_statistics(first, Spec::head(first_head).offset, Irrep::heads * Irrep::dim);
        spins.push_back({name, Irrep::l, Irrep::heads, b, transport_mixing(Irrep::dim, b.phi_std)});
      });
    });
  }
};

/// (value − reference) / reference: the error of a prediction against the measured value, or the
/// change the upstream mode makes to the exact one.
inline double relative_difference(double value, double reference) { return (value - reference) / reference; }

/// The KL of the heads of one ℓ of one spec over the pairs of sequence 0 (KlByDim), measured in
/// both modes, predicted (P3), (P4) for the exact mode from that ℓ's SpinStatistics.
struct KlComparison {
  KlByDim exact, upstream;
  KlPrediction predicted;
  double mean_error() const { return relative_difference(predicted.mean, exact.kl.mean); }
  double std_error() const { return relative_difference(predicted.std, exact.kl.std); }
  double upstream_mean_change() const { return relative_difference(upstream.kl.mean, exact.kl.mean); }
};

/// The row statistics of the heads of one ℓ of one spec at one κ (SpinSummary), measured in both
/// modes, predicted (P7), (P8) for the exact mode from that ℓ's SpinStatistics.
struct RowComparison {
  SpinSummary exact, upstream;
  Prediction predicted;
  double row_std_error() const { return relative_difference(predicted.row_std, exact.row_std); }
  double upstream_row_std_change() const { return relative_difference(upstream.row_std, exact.row_std); }
};

/// The row of `rows` (not empty) with the largest |difference(row)|, `difference` one of the
/// relative differences of Row (an error or an upstream change).
template <class Row>
const Row& largest(const std::vector<Row>& rows, double (Row::*difference)() const) {
  detail::require(!rows.empty(), "rows", "no rows to compare");
  return *std::max_element(rows.begin(), rows.end(), [&](const Row& x, const Row& y) {
    return std::abs((x.*difference)()) < std::abs((y.*difference)());
  });
}

/// The exact-mode KL of every head of dim K in the run, the pairs of all specs pooled, and its
/// prediction from the run's statistics: the note's law of large numbers in numbers, where the
/// relative spread std/mean falls like 1/√K while the spread std itself grows like √K (P3), (P4).
struct KlConcentration {
  int dim = 0, heads = 0;
  KlStatistics measured;
  KlPrediction predicted;
};

/// The smallest K whose predicted row_std is SHARP at one κ of the run (nullopt: no K ≤ 49).
struct SharpDim {
  double kappa_base = 0, kappa = 0;
  std::optional<int> dim;
};

/// The largest κ at which a head of dim K has a SHARP predicted row_std (nullopt: no κ; +∞: any).
struct SharpKappa {
  int dim = 0;
  std::optional<double> kappa;
};

struct Analysis {
  RunStatistics run;
  std::vector<SpinStatistics> statistics;      // spec, ℓ order
  std::vector<KlComparison> kl;                // spec, ℓ order
  std::vector<RowComparison> rows;             // spec, κ, ℓ order
  std::vector<KlConcentration> concentration;  // K ascending
  std::vector<std::pair<int, KlPrediction>> kl_curve;  // K = 1, 3, … up to the run's largest K, run statistics
  std::vector<SharpDim> min_sharp_dim;         // the κ of the run's first spec, in run order
  std::vector<SharpKappa> max_sharp_kappa;     // the K of the run, ascending
  double uniform_row_std = 0;                  // row_std of uniform attention at the run's N and mask
  double one_hot_row_std = 0;                  // its κ → 0 ceiling (P8)
};

namespace internal {

/// The first row of `rows` for which `match` holds; throws InvalidArgument naming `what` when none
/// does (the sweep and the statistics then come from different runs).
template <class Row, class Match>
const Row& find_row(const std::vector<Row>& rows, Match match, const char* what) {
  const auto it = std::find_if(rows.begin(), rows.end(), match);
  detail::require(it != rows.end(), what, "no measured row matches the belief statistics of the same spec and l");
  return *it;
}

/// Pools the statistics of disjoint sets of values into those of their union.
inline KlStatistics pooled(const std::vector<KlStatistics>& parts) {
  detail::RunningMoments all;
  for (const KlStatistics& p : parts) all.merge({p.count, p.mean, p.std * p.std * double(p.count), p.min, p.max});
  return all.statistics();
}

}  // namespace internal

/// The analysis of a run: `observed` gathered from the beliefs of the specs that `r` swept and
/// `summary` summarised (summarise_by_spin(r.heads)). The predictor runs under the study's mask
/// at the run's N; the sharp searches run in parallel over κ.
inline Analysis analyse(const ObservedStatistics& observed, const SweepResult& r,
                        const std::vector<SpinSummary>& summary) {
  detail::require(!observed.spins.empty(), "observed", "no belief statistics: add the beliefs of each swept spec");
  PredictorOptions options;
  options.tokens = observed.run.tokens;
  options.mask = study_options(1.0, Mode::exact).mask;
  Analysis a;
  a.run = observed.run;
  a.statistics = observed.spins;
  a.one_hot_row_std = one_hot_row_std(options);

  std::vector<HeadPredictor> heads;  // one per SpinStatistics: its sample serves every κ
  for (const SpinStatistics& s : a.statistics) {
    heads.emplace_back(s.dim(), s.beliefs, options);
    auto kl_of = [&](Mode mode) {
      return internal::find_row(
          r.kl_by_dim, [&](const KlByDim& k) { return k.spec == s.spec && k.l == s.l && k.mode == mode; }, "kl_by_dim");
    };
    a.kl.push_back({kl_of(Mode::exact), kl_of(Mode::upstream), heads.back().kl()});
  }
  for (const SpinSummary& e : summary)
    if (e.mode == Mode::exact)
      a.rows.push_back({e, internal::find_row(summary, [&](const SpinSummary& u) {
                          return u.spec == e.spec && u.kappa_base == e.kappa_base && u.l == e.l &&
                                 u.mode == Mode::upstream;
                        }, "summary"), {}});
  detail::parallel_for(std::int64_t(a.rows.size()), [&](std::int64_t i) {
    RowComparison& row = a.rows[i];
    const SpinStatistics& s = internal::find_row(
        a.statistics, [&](const SpinStatistics& x) { return x.spec == row.exact.spec && x.l == row.exact.l; },
        "statistics");
    row.predicted = heads[&s - a.statistics.data()].predict(row.exact.kappa);
  });
  a.uniform_row_std = a.rows.front().exact.uniform_row_std;

  std::vector<int> dims;
  for (const KlComparison& k : a.kl)
    if (std::find(dims.begin(), dims.end(), k.exact.dim()) == dims.end()) dims.push_back(k.exact.dim());
  std::sort(dims.begin(), dims.end());
  for (int K = 1; K <= dims.back(); K += 2) a.kl_curve.emplace_back(K, predict_kl(K, a.run.beliefs, options));
  for (int K : dims) {
    KlConcentration c{K, 0, {}, {}};
    std::vector<KlStatistics> parts;
    for (const KlComparison& k : a.kl)
      if (k.exact.dim() == K) {
        c.heads += k.exact.heads;
        parts.push_back(k.exact.kl);
      }
    c.measured = internal::pooled(parts);
    c.predicted = a.kl_curve[(K - 1) / 2].second;
    a.concentration.push_back(c);
  }

  for (const SpinSummary& s : summary)
    if (s.spec == a.run.spec && s.mode == Mode::exact &&
        std::none_of(a.min_sharp_dim.begin(), a.min_sharp_dim.end(),
                     [&](const SharpDim& d) { return d.kappa_base == s.kappa_base; }))
      a.min_sharp_dim.push_back({s.kappa_base, s.kappa, std::nullopt});
  detail::parallel_for(std::int64_t(a.min_sharp_dim.size()), [&](std::int64_t i) {
    a.min_sharp_dim[i].dim = min_sharp_dim(a.min_sharp_dim[i].kappa, a.run.beliefs, options);
  });
  for (int K : dims) a.max_sharp_kappa.push_back({K, std::nullopt});
  detail::parallel_for(std::int64_t(dims.size()), [&](std::int64_t i) {
    a.max_sharp_kappa[i].kappa = max_sharp_kappa(a.max_sharp_kappa[i].dim, a.run.beliefs, options);
  });
  return a;
}

}  // namespace gauge_attn::study
