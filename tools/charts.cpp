// charts.cpp: .dat files of gnuplot data blocks (one per series, read by `index`) and the .gp
// scripts that plot them, with file names relative to the output directory.
#include "charts.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

namespace gauge_attn_study {

using namespace gauge_attn;
using namespace gauge_attn::study;

namespace {

/// The script's preamble: pngcairo where this gnuplot has it, else the libgd png terminal.
std::string terminal(int width, int height, const std::string& png) {
  const std::string size = " size " + std::to_string(width) + "," + std::to_string(height);
  return "set encoding utf8\n"
         "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) { set terminal pngcairo" + size + " font ',10' } "
         "else { set terminal png" + size + " }\n"
         "set termoption noenhanced\n"
         "set output '" + png + "'\n";
}

/// Writes `text` to dir/name; throws InvalidArgument when it cannot.
void write_file(const std::string& dir, const std::string& name, const std::string& text) {
  const std::filesystem::path path = std::filesystem::path(dir) / name;
  std::ofstream f(path);
  f << text;
  detail::require(bool(f), "--out", "cannot write ", path.string());
}

/// Writes the chart `name` (.dat and .gp) and removes its PNG of an earlier run, which would not
/// show the new data if gnuplot does not draw it again.
void write_chart(const std::string& dir, const std::string& name, const std::string& data, const std::string& gp) {
  write_file(dir, name + ".dat", data);
  write_file(dir, name + ".gp", gp);
  std::filesystem::remove(std::filesystem::path(dir) / (name + ".png"));
}

/// Data blocks are separated by two blank lines; `index` counts them from 0.
struct DataBlocks {
  std::ostringstream text;
  int count = 0;
  int begin(const std::string& comment) {
    text << (count ? "\n\n" : "") << "# " << comment << "\n";
    return count++;
  }
};

/// The distinct values of `key` over `rows`, in the order they first appear.
template <class Row, class Key>
auto distinct(const std::vector<Row>& rows, Key key) {
  std::vector<decltype(key(rows[0]))> out;
  for (const Row& r : rows)
    if (std::find(out.begin(), out.end(), key(r)) == out.end()) out.push_back(key(r));
  return out;
}

constexpr Mode modes[] = {Mode::exact, Mode::upstream};

}  // namespace

std::string write_row_std_chart(const std::string& dir, const std::vector<SpinSummary>& summary,
                                const std::vector<RowComparison>& predicted) {
  const auto specs = distinct(summary, [](const SpinSummary& s) { return s.spec; });
  const int columns = std::min<int>(int(specs.size()), 3), rows = (int(specs.size()) + columns - 1) / columns;
  DataBlocks data;
  std::ostringstream gp;
  const auto [low, high] = std::minmax_element(
      summary.begin(), summary.end(), [](const SpinSummary& a, const SpinSummary& b) { return a.kappa < b.kappa; });
  gp << terminal(600 * columns, 450 * rows, "row_std_vs_kappa.png") << "set multiplot layout " << rows << ","
     << columns << "\nset logscale x\nset format x '%g'\n"
     << "set xrange [" << low->kappa / 2 << ":" << high->kappa * 2 << "]\n"
     << "set xlabel 'κ'\nset ylabel 'mean row_std of the heads of one ℓ'\n"
     << "set yrange [0:*]\nset key top right opaque\nset grid\n";
  for (const std::string& spec : specs) {
    std::vector<SpinSummary> of_spec;
    std::copy_if(summary.begin(), summary.end(), std::back_inserter(of_spec),
                 [&](const SpinSummary& s) { return s.spec == spec; });
    gp << "set title '" << spec << ": " << describe_spec(spec) << "'\nplot ";
    const int first_index = data.count;
    for (int l : distinct(of_spec, [](const SpinSummary& s) { return s.l; })) {
      for (Mode mode : modes) {
        const int index = data.begin(spec + " " + irrep_label(l) + " " + to_string(mode) +
                                     ": kappa row_std uniform_row_std");
        for (const SpinSummary& s : of_spec)
          if (s.l == l && s.mode == mode)
            data.text << s.kappa << " " << s.row_std << " " << s.uniform_row_std << "\n";
        const bool exact = mode == Mode::exact;  // one colour per ℓ, solid exact, dashed upstream
        gp << "'row_std_vs_kappa.dat' index " << index << " using 1:2 with linespoints lt " << l + 1 << " dt "
           << (exact ? 1 : 2) << " pt " << (exact ? 7 : 6) << " title '" << irrep_label(l) << " "
           << to_string(mode) << "', \\\n     ";
      }
      if (std::none_of(predicted.begin(), predicted.end(),
                       [&](const RowComparison& p) { return p.exact.spec == spec && p.exact.l == l; }))
        continue;
      const int index = data.begin(spec + " " + irrep_label(l) + " predicted: kappa row_std");
      for (const RowComparison& p : predicted)
        if (p.exact.spec == spec && p.exact.l == l) data.text << p.exact.kappa << " " << p.predicted.row_std << "\n";
      gp << "'row_std_vs_kappa.dat' index " << index << " using 1:2 with points lt " << l + 1 << " pt 2 ps 1.5 "
         << "title '" << irrep_label(l) << " predicted', \\\n     ";
    }
    // The uniform baseline depends only on N and the mask: the same for every head of a run.
    gp << "'row_std_vs_kappa.dat' index " << first_index << " using 1:3 with lines lc 'gray40' dt 3 lw 2 "
       << "title 'uniform attention', \\\n     0.10 with lines lc 'red' dt 4 title 'SHARP > 0.10'\n";
  }
  gp << "unset multiplot\n";
  write_chart(dir, "row_std_vs_kappa", data.text.str(), gp.str());
  return "row_std_vs_kappa.gp";
}

std::string write_kl_std_chart(const std::string& dir, const std::vector<KlByDim>& rows,
                               const std::vector<std::pair<int, double>>& predicted) {
  DataBlocks data;
  std::ostringstream plot;
  const auto specs = distinct(rows, [](const KlByDim& r) { return r.spec; });
  for (std::size_t s = 0; s < specs.size(); ++s)
    for (Mode mode : modes) {
      const int index = data.begin(specs[s] + " " + to_string(mode) + ": K kl_std kl_mean");
      for (const KlByDim& r : rows)
        if (r.spec == specs[s] && r.mode == mode) data.text << r.dim() << " " << r.kl.std << " " << r.kl.mean << "\n";
      // One marker shape per spec, filled for exact and open for upstream (gnuplot's pt 2s+5 / 2s+4).
      const bool exact = mode == Mode::exact;
      plot << (index ? ", \\\n     " : "") << "'kl_std_vs_dim.dat' index " << index << " using 1:2 with points lt "
           << (exact ? 1 : 2) << " pt " << 2 * s + (exact ? 5 : 4) << " ps 1.5 title '" << specs[s] << " "
           << to_string(mode) << "'";
    }
  if (!predicted.empty()) {
    const int index = data.begin("predicted: K kl_std");
    for (const auto& [K, std] : predicted) data.text << K << " " << std << "\n";
    plot << ", \\\n     'kl_std_vs_dim.dat' index " << index << " using 1:2 with lines lc 'black' title 'predicted'";
  }
  const auto dims = distinct(rows, [](const KlByDim& r) { return r.dim(); });
  std::ostringstream tics;
  for (int K : dims) tics << (tics.tellp() > 0 ? ", " : "") << K;
  std::ostringstream gp;
  gp << terminal(800, 560, "kl_std_vs_dim.png")
     << "set logscale x\nset yrange [0:*]\nset xlabel 'head dimension K = 2ℓ+1'\n"
     << "set ylabel 'KL std over the off-diagonal pairs of sequence 0 (nats)'\n"
     << "set title 'KL spread per head dimension (the heads of one K pooled)'\n"
     << "set xtics (" << tics.str() << ")\nset xrange [0.8:" << *std::max_element(dims.begin(), dims.end()) * 1.25
     << "]\nset key outside right\nset grid\nplot " << plot.str() << "\n";
  write_chart(dir, "kl_std_vs_dim", data.text.str(), gp.str());
  return "kl_std_vs_dim.gp";
}

}  // namespace gauge_attn_study
