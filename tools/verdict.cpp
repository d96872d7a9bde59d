// verdict.cpp: the verdict's lines. The spec it speaks of is the upstream spec when the run has
// it (the one the note measured), else the run's first; "the note's κ" is the run's κ nearest to
// 0.0086 on a log scale.
#include "verdict.hpp"

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <limits>

namespace gauge_attn_study {

using namespace gauge_attn;
using namespace gauge_attn::study;

namespace {

constexpr double uniform_class_limit = 0.05;  // classify() (math.md §7): UNIFORM at or below it

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
std::string format(const char* f, ...) {
  va_list args, copy;
  va_start(args, f);
  va_copy(copy, args);
  const int n = std::vsnprintf(nullptr, 0, f, args);
  va_end(args);
  std::string s(std::size_t(std::max(n, 0)), '\0');
  std::vsnprintf(s.data(), s.size() + 1, f, copy);
  va_end(copy);
  return s;
}

const char* trend(double from, double to) { return to > from ? "grows" : "falls"; }

/// "UNIFORM", "MEDIUM" or "SHARP" when all the heads of `s` share the class, else the counts.
std::string classes(const SpinSummary& s) {
  if (s.uniform == s.heads) return "UNIFORM";
  if (s.medium == s.heads) return "MEDIUM";
  if (s.sharp == s.heads) return "SHARP";
  return format("%dU %dM %dS", s.uniform, s.medium, s.sharp);
}

/// "kappa = 0.0086 (the note's)", or with the note's value when the run's nearest differs.
std::string note_kappa(double kappa) {
  const double note = upstream_kappas[1];
  return kappa == note ? format("kappa = %g (the note's)", kappa)
                       : format("kappa = %g (the run's nearest to the note's %g)", kappa, note);
}

/// The value of `kappas` nearest to the note's κ (upstream.md) on a log scale.
double nearest_to_note(const std::vector<double>& kappas) {
  const double note = upstream_kappas[1];
  return *std::min_element(kappas.begin(), kappas.end(), [&](double x, double y) {
    return std::abs(std::log(x / note)) < std::abs(std::log(y / note));
  });
}

/// What the verdict needs of the spec it speaks of: its exact rows, its ℓ and κ, the note's κ.
struct Focus {
  std::string spec;
  std::vector<const RowComparison*> rows;  // κ, ℓ order
  std::vector<int> spins;                  // ℓ ascending
  double kappa_max = 0, kappa_min = 0, note_kappa = 0;

  explicit Focus(const Analysis& a) {
    const bool upstream = std::any_of(a.rows.begin(), a.rows.end(),
                                      [](const RowComparison& r) { return r.exact.spec == "upstream"; });
    spec = upstream ? "upstream" : a.run.spec;
    std::vector<double> kappas;
    for (const RowComparison& r : a.rows)
      if (r.exact.spec == spec) {
        rows.push_back(&r);
        kappas.push_back(r.exact.kappa);
        if (std::find(spins.begin(), spins.end(), r.exact.l) == spins.end()) spins.push_back(r.exact.l);
      }
    std::sort(spins.begin(), spins.end());
    const auto [low, high] = std::minmax_element(kappas.begin(), kappas.end());
    kappa_min = *low;
    kappa_max = *high;
    note_kappa = nearest_to_note(kappas);
  }

  const KlComparison& kl(const Analysis& a, int l) const {
    return *std::find_if(a.kl.begin(), a.kl.end(),
                         [&](const KlComparison& c) { return c.exact.spec == spec && c.exact.l == l; });
  }

  const RowComparison& at(double kappa, int l) const {
    return **std::find_if(rows.begin(), rows.end(),
                          [&](const RowComparison* r) { return r->exact.kappa == kappa && r->exact.l == l; });
  }
};

std::string law_of_large_numbers(const Analysis& a) {
  const KlConcentration &lo = a.concentration.front(), &hi = a.concentration.back();
  const double rel_lo = lo.measured.std / lo.measured.mean, rel_hi = hi.measured.std / hi.measured.mean;
  if (lo.dim == hi.dim)
    return format("Law of large numbers: only K = %d ran (exact KL std/mean %.2f, std %.4f nats); specs of several K "
                  "show the trend.", lo.dim, rel_lo, lo.measured.std);
  const double k = double(hi.dim) / lo.dim;
  return format("Law of large numbers: from K = %d to K = %d the exact KL's relative spread std/mean %s from %.2f to "
                "%.2f (x%.2f; 1/sqrt(K) gives x%.2f), %s, but its spread itself, the std, %s from %.4f to %.4f nats "
                "(x%.1f; sqrt(K) gives x%.1f). At a fixed kappa the softmax sees KL differences in units of kappa, so "
                "what sets its sharpness is the absolute spread.",
                lo.dim, hi.dim, trend(rel_lo, rel_hi), rel_lo, rel_hi, rel_hi / rel_lo, 1 / std::sqrt(k),
                rel_hi < rel_lo ? "as the note says" : "unlike the note's argument",
                trend(lo.measured.std, hi.measured.std), lo.measured.std, hi.measured.std,
                hi.measured.std / lo.measured.std, std::sqrt(k));
}

std::string uniform_baseline(const Analysis& a, const Focus& f) {
  std::string heads;
  for (int l : f.spins) {
    const SpinSummary& s = f.at(f.note_kappa, l).exact;
    heads += format("%s%s %.4f (%s, entropy %.2f)", heads.empty() ? "" : ", ", irrep_label(l).c_str(), s.row_std,
                    classes(s).c_str(), s.entropy);
  }
  const std::string range =
      a.uniform_row_std < uniform_class_limit
          ? format("the UNIFORM class (row_std <= %.2f) is the bottom %.0f%% of the statistic's range",
                   uniform_class_limit,
                   100 * (uniform_class_limit - a.uniform_row_std) / (a.one_hot_row_std - a.uniform_row_std))
          : format("at this N not even uniform attention is UNIFORM (row_std <= %.2f)", uniform_class_limit);
  const SpinSummary& lowest = f.at(f.note_kappa, f.spins.front()).exact;
  return format("Uniform baseline: at %s the %s spec's exact heads have row_std %s. Perfectly uniform attention under "
                "the same mask already gives %.4f, and one-hot rows at most %.4f, at N = %d: %s, and %s's %.4f is only "
                "%.4f above uniform attention's own value.",
                note_kappa(f.note_kappa).c_str(), f.spec.c_str(), heads.c_str(), a.uniform_row_std, a.one_hot_row_std,
                a.run.tokens, range.c_str(), irrep_label(lowest.l).c_str(), lowest.row_std,
                lowest.row_std - a.uniform_row_std);
}

std::string lowering_kappa(const Analysis& a, const Focus& f) {
  if (f.kappa_min == f.kappa_max) return format("Lowering kappa: one kappa only in this run (%g).", f.kappa_min);
  std::string rises, spreads;
  bool sharper = true;
  for (int l : f.spins) {
    const double from = f.at(f.kappa_max, l).exact.row_std, to = f.at(f.kappa_min, l).exact.row_std;
    sharper = sharper && to > from;
    rises += format("%s%s %.4f -> %.4f", rises.empty() ? "" : ", ", irrep_label(l).c_str(), from, to);
    spreads += format("%s%.1f (%s)", spreads.empty() ? "" : ", ", f.kl(a, l).exact.kl.std / f.note_kappa,
                      irrep_label(l).c_str());
  }
  return format("Lowering kappa from %g to %g changes the %s spec's exact row_std %s: %s, up to the one-hot ceiling "
                "%.4f. At %s the KL std is %s times kappa.",
                f.kappa_max, f.kappa_min, f.spec.c_str(), rises.c_str(),
                sharper ? "attention sharpens for every l" : "attention does not sharpen for every l", a.one_hot_row_std,
                note_kappa(f.note_kappa).c_str(), spreads.c_str());
}

std::string minimum_dim(const Analysis& a) {
  std::vector<double> kappas;
  for (const SharpDim& d : a.min_sharp_dim) kappas.push_back(d.kappa);
  const double note = nearest_to_note(kappas);
  const SharpDim& at_note =
      *std::find_if(a.min_sharp_dim.begin(), a.min_sharp_dim.end(), [&](const SharpDim& d) { return d.kappa == note; });
  std::string per_dim;
  for (const SharpKappa& k : a.max_sharp_kappa) {
    const std::string kappa = !k.kappa                ? "no kappa"
                              : std::isinf(*k.kappa) ? "any kappa"
                                                     : format("kappa <= %.2g", *k.kappa);
    per_dim += format("%sK = %d at %s", per_dim.empty() ? "" : ", ", k.dim, kappa.c_str());
  }
  // The KL spread, in units of κ, that the largest K of the run needs to be SHARP.
  const SharpKappa& top = a.max_sharp_kappa.back();
  const std::string needs = top.kappa && std::isfinite(*top.kappa)
                                ? format(": at K = %d the KL std must be %.2g times kappa", top.dim,
                                         a.concentration.back().predicted.std / *top.kappa)
                                : "";
  return format("Minimum K: with the run's belief statistics the predicted row_std exceeds %.2f at %s %s; a head is "
                "SHARP for %s%s.",
                sharp_row_std, note_kappa(at_note.kappa).c_str(),
                at_note.dim ? format("from K = %d (l = %d) on", *at_note.dim, (*at_note.dim - 1) / 2).c_str()
                            : format("for no K <= %d", 2 * max_supported_l + 1).c_str(),
                per_dim.c_str(), needs.c_str());
}

std::string exact_against_upstream(const Analysis& a) {
  const KlComparison& k = largest(a.kl, &KlComparison::upstream_mean_change);
  const RowComparison& r = largest(a.rows, &RowComparison::upstream_row_std_change);
  const auto same_classes = std::count_if(a.rows.begin(), a.rows.end(), [](const RowComparison& x) {
    return x.exact.uniform == x.upstream.uniform && x.exact.medium == x.upstream.medium &&
           x.exact.sharp == x.upstream.sharp;
  });
  return format("Exact against the upstream diagonal approximation: it changes the KL mean by up to %+.0f%% (%s %s) "
                "and row_std by up to %+.1f%% (%s %s at kappa %g); the UNIFORM/MEDIUM/SHARP counts agree in %d of %d "
                "(spec, kappa, l). The predictor is for the exact mode only.",
                100 * k.upstream_mean_change(), k.exact.spec.c_str(), irrep_label(k.exact.l).c_str(),
                100 * r.upstream_row_std_change(), r.exact.spec.c_str(), irrep_label(r.exact.l).c_str(),
                r.exact.kappa, int(same_classes), int(a.rows.size()));
}

std::string predictor_errors(const Analysis& a) {
  return format("The predictor against this run (exact mode, sequence 0, its sampling noise included): KL mean within "
                "%.1f%%, KL std within %.1f%%, row_std within %.1f%% (largest |error|).",
                100 * std::abs(largest(a.kl, &KlComparison::mean_error).mean_error()),
                100 * std::abs(largest(a.kl, &KlComparison::std_error).std_error()),
                100 * std::abs(largest(a.rows, &RowComparison::row_std_error).row_std_error()));
}

std::string conclusion(const Analysis& a, const Focus& f) {
  const KlConcentration &lo = a.concentration.front(), &hi = a.concentration.back();
  if (lo.dim == hi.dim || hi.measured.std <= lo.measured.std)
    return "So: in this run the KL spread does not grow with K; nothing here contradicts the note's explanation.";
  // The ℓ of the focus spec whose heads are all UNIFORM at the note's κ, and their KL std in units of κ.
  std::string uniform;
  double low = std::numeric_limits<double>::infinity(), high = 0;
  for (int l : f.spins)
    if (const SpinSummary& s = f.at(f.note_kappa, l).exact; s.uniform == s.heads) {
      uniform += (uniform.empty() ? "" : ", ") + irrep_label(l);
      const double spread = f.kl(a, l).exact.kl.std / f.note_kappa;
      low = std::min(low, spread);
      high = std::max(high, spread);
    }
  const std::string why =
      uniform.empty() ? ""
                      : format(" The %s spec's %s heads are UNIFORM at kappa = %g because their KL std is only "
                               "%.1f-%.1f times kappa, and because row_std reads %.4f even for perfectly uniform "
                               "attention.",
                               f.spec.c_str(), uniform.c_str(), f.note_kappa, low, high, a.uniform_row_std);
  return format("So: for these beliefs the note's explanation does not hold. KL concentrates only relative to its "
                "mean; its spread grows with K, and at a fixed kappa a larger K sharpens attention.%s",
                why.c_str());
}

}  // namespace

std::vector<std::string> verdict(const Analysis& a) {
  const Focus f(a);
  return {law_of_large_numbers(a), uniform_baseline(a, f), lowering_kappa(a, f), minimum_dim(a),
          exact_against_upstream(a), predictor_errors(a), conclusion(a, f)};
}

}  // namespace gauge_attn_study
