// analysis_report.cpp: one table per part of the analysis, measured before predicted, errors as
// (predicted − measured) / measured in percent.
#include "analysis_report.hpp"

#include <cmath>
#include <cstdio>
#include <string>

namespace gauge_attn_study {

using namespace gauge_attn;
using namespace gauge_attn::study;

namespace {

std::string spin(const std::string& spec, int l) { return spec + " " + irrep_label(l); }

void print_statistics(const Analysis& a) {
  const BeliefStatistics& b = a.run.beliefs;
  std::printf("\nBelief statistics (P1): s2 = variance of mu per component, m and eta = mean and std of ln sigma, "
              "phi_std; rho = transport mixing (P4)\n");
  std::printf("run (for the sharp thresholds and the predicted curve against K): the %s beliefs, %d sequences x %d "
              "tokens x %d components: s2=%.5f m=%.4f eta=%.4f phi_std=%.3f\n",
              a.run.spec.c_str(), a.run.sequences, a.run.tokens, a.run.components, b.mu_variance, b.log_sigma_mean,
              b.log_sigma_std, b.phi_std);
  std::printf("per spec and l, sequence 0 (the tokens measured), the heads of one l pooled:\n");
  std::printf("%-12s %-4s %3s %5s  %8s %8s %7s %7s %6s\n", "spec", "l", "K", "heads", "s2", "m", "eta", "phi_std",
              "rho");
  for (const SpinStatistics& s : a.statistics)
    std::printf("%-12s ℓ%-3d %3d %5d  %8.5f %8.4f %7.4f %7.3f %6.3f\n", s.spec.c_str(), s.l, s.dim(), s.heads,
                s.beliefs.mu_variance, s.beliefs.log_sigma_mean, s.beliefs.log_sigma_std, s.beliefs.phi_std,
                s.transport_mixing);
}

void print_kl(const Analysis& a) {
  std::printf("\nKL per head dimension K (P3, P4), sequence 0, the heads of one l pooled: exact measured | predicted | "
              "error; upstream mode measured\n");
  std::printf("%-12s %-4s %3s   %8s %9s %7s   %8s %9s %7s   %13s %8s\n", "spec", "l", "K", "mean", "predicted",
              "error", "std", "predicted", "error", "upstream mean", "std");
  for (const KlComparison& k : a.kl) {
    std::printf("%-12s ℓ%-3d %3d   %8.4f %9.4f %+6.1f%%   %8.4f %9.4f %+6.1f%%   %13.4f %8.4f\n", k.exact.spec.c_str(),
                k.exact.l, k.exact.dim(), k.exact.kl.mean, k.predicted.mean, 100 * k.mean_error(),
                k.exact.kl.std, k.predicted.std, 100 * k.std_error(), k.upstream.kl.mean, k.upstream.kl.std);
  }
}

void print_concentration(const Analysis& a) {
  std::printf("\nKL against K (the note's law of large numbers): exact mode, the heads of each K pooled over the specs; "
              "predicted from the run's statistics\n");
  std::printf("%3s %5s   %8s %8s %8s   %9s %8s %8s\n", "K", "heads", "mean", "std", "std/mean", "predicted", "std",
              "std/mean");
  for (const KlConcentration& c : a.concentration)
    std::printf("%3d %5d   %8.4f %8.4f %8.3f   %9.4f %8.4f %8.3f\n", c.dim, c.heads, c.measured.mean, c.measured.std,
                c.measured.std / c.measured.mean, c.predicted.mean, c.predicted.std, c.predicted.std / c.predicted.mean);
}

void print_rows(const Analysis& a) {
  std::printf("\nrow_std per l and kappa (P7, P8), the mean over the heads of one l: exact measured | predicted | error, "
              "entropy measured | predicted; upstream mode measured (no prediction)\n");
  std::printf("%-12s %-4s %3s %9s   %7s %9s %7s   %7s %9s   %8s\n", "spec", "l", "K", "kappa", "row_std", "predicted",
              "error", "entropy", "predicted", "upstream");
  for (const RowComparison& r : a.rows) {
    std::printf("%-12s ℓ%-3d %3d %9g   %7.4f %9.4f %+6.1f%%   %7.3f %9.3f   %8.4f\n", r.exact.spec.c_str(), r.exact.l,
                2 * r.exact.l + 1, r.exact.kappa, r.exact.row_std, r.predicted.row_std, 100 * r.row_std_error(), r.exact.entropy,
                r.predicted.entropy, r.upstream.row_std);
  }
}

void print_sharp(const Analysis& a) {
  std::printf("\nSHARP attention (row_std > %.2f), predicted from the run's statistics at N = %d: uniform attention "
              "gives %.4f and one-hot rows %.4f, the most row_std can reach at this N\n",
              sharp_row_std, a.run.tokens, a.uniform_row_std, a.one_hot_row_std);
  std::printf("smallest K (an irrep dim 2l+1 <= %d) at each kappa of %s:\n", 2 * max_supported_l + 1,
              a.run.spec.c_str());
  for (const SharpDim& d : a.min_sharp_dim) {
    std::printf("  kappa = %g", d.kappa);
    if (d.kappa != d.kappa_base) std::printf(" (base %g)", d.kappa_base);
    std::printf(": ");
    if (d.dim)
      std::printf("K >= %d (l >= %d)\n", *d.dim, (*d.dim - 1) / 2);
    else
      std::printf("never\n");
  }
  std::printf("largest kappa for each K of the run:\n");
  for (const SharpKappa& k : a.max_sharp_kappa) {
    std::printf("  K = %-3d (ℓ%d): ", k.dim, (k.dim - 1) / 2);
    if (!k.kappa)
      std::printf("never\n");
    else if (std::isinf(*k.kappa))
      std::printf("any kappa (uniform attention already exceeds %.2f at this N)\n", sharp_row_std);
    else
      std::printf("kappa <= %.3g\n", *k.kappa);
  }
}

}  // namespace

void print_analysis(const Analysis& a) {
  std::printf("\n== analysis: the predictor (docs/study.md) against this run ==\n");
  std::printf("The prediction is for the exact mode (M4); it makes no correction for the upstream diagonal "
              "approximation, whose values are measured only, shown beside. error = (predicted - measured) / "
              "measured.\n");
  print_statistics(a);
  print_kl(a);
  print_concentration(a);
  print_rows(a);
  const KlComparison &mean = largest(a.kl, &KlComparison::mean_error),
                     &std = largest(a.kl, &KlComparison::std_error);
  const RowComparison& row = largest(a.rows, &RowComparison::row_std_error);
  std::printf("largest |error|: KL mean %+.1f%% (%s), KL std %+.1f%% (%s), row_std %+.1f%% (%s at kappa %g)\n",
              100 * mean.mean_error(), spin(mean.exact.spec, mean.exact.l).c_str(), 100 * std.std_error(),
              spin(std.exact.spec, std.exact.l).c_str(), 100 * row.row_std_error(),
              spin(row.exact.spec, row.exact.l).c_str(), row.exact.kappa);
  print_sharp(a);
}

void print_verdict(const std::vector<std::string>& lines) {
  std::printf("\n== verdict ==\n");
  for (const std::string& line : lines) std::printf("- %s\n", line.c_str());
}

}  // namespace gauge_attn_study
