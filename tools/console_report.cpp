// console_report.cpp: two columns, exact mode on the left and upstream mode on the right; rows
// of both modes come in the same order, exact ones first.
#include "console_report.hpp"

#include <cstdio>

namespace gauge_attn_study {

using namespace gauge_attn;
using namespace gauge_attn::study;

namespace {

constexpr std::size_t column = 67;  // width of the exact column

/// `text` padded with spaces to `columns` characters (UTF-8 aware: ℓ and × are one column each).
std::string pad(std::string text, std::size_t columns) {
  std::size_t shown = 0;
  for (unsigned char c : text) shown += (c & 0xC0) != 0x80;
  if (shown < columns) text.append(columns - shown, ' ');
  return text;
}

void print_columns(const std::string& exact, const std::string& upstream) {
  std::printf("%s | %s\n", pad(exact, column).c_str(), upstream.c_str());
}

std::string format_summary(const SpinSummary& s) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "%s: %d heads row_std=%.4f uniform=%.4f entropy=%.3f  %dU %dM %dS",
                irrep_label(s.l).c_str(), s.heads, s.row_std, s.uniform_row_std, s.entropy, s.uniform, s.medium,
                s.sharp);
  return buf;
}

std::string format_kl(const KlByDim& k) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "%s K=%d: %d heads KL mean=%.4f std=%.4f range=[%.4f, %.4f]",
                irrep_label(k.l).c_str(), k.dim(), k.heads, k.kl.mean, k.kl.std, k.kl.min, k.kl.max);
  return buf;
}

}  // namespace

void print_spec(const std::string& spec, const SweepResult& r, const std::vector<SpinSummary>& summary) {
  std::printf("\n== %s: %s ==\n", spec.c_str(), describe_spec(spec).c_str());
  const std::size_t half = r.heads.size() / 2, half_summary = summary.size() / 2;
  for (std::size_t i = 0; i < half; ++i) {
    const HeadRow &e = r.heads[i], &u = r.heads[half + i];
    if (i == 0 || e.kappa_base != r.heads[i - 1].kappa_base) {
      std::printf("\n-- kappa = %g (base %g) --\n", e.kappa, e.kappa_base);
      print_columns("exact KL (M4)", "upstream diagonal approximation (math.md 6)");
    }
    print_columns(format_calibrated(e.head), format_calibrated(u.head));
    if (i + 1 == half || r.heads[i + 1].kappa_base != e.kappa_base)
      for (std::size_t s = 0; s < half_summary; ++s)
        if (summary[s].kappa_base == e.kappa_base)
          print_columns(format_summary(summary[s]), format_summary(summary[half_summary + s]));
  }
  for (const DiversityRow& d : r.diversity)
    std::printf("\n%s:\n%s", to_string(d.mode), format_diversity(d.diversity).c_str());
  std::printf("\nKL per head dimension K (sequence 0, off-diagonal pairs, the heads of one K pooled):\n");
  const std::size_t half_kl = r.kl_by_dim.size() / 2;
  for (std::size_t k = 0; k < half_kl; ++k)
    print_columns(format_kl(r.kl_by_dim[k]), format_kl(r.kl_by_dim[half_kl + k]));
}

}  // namespace gauge_attn_study
