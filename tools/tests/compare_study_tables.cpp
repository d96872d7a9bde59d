// compare_study_tables DIR_A DIR_B TABLE...: the tables TABLE.csv that gauge_attn_study --out wrote
// into DIR_A and DIR_B (runs on two devices) hold the same rows: the same header, the same text
// (spec, mode, class) and integers, and numbers within |a - b| <= 1e-12 + 1e-8 max(|a|, |b|).
// Prints the largest relative difference per table and every mismatch; exit code 0 when all agree,
// 1 on a mismatch, 2 on bad usage or an unreadable table.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

// Both devices compute in float64 by different routes (exact mode: the CPU's factorised KL (M8),
// the GPU's direct (M4); upstream mode: Padé against scaled Taylor exponentials). Their KL agree
// to ~1e-13 absolute (ℓ = 9 heads; 1e-10 relative on the smallest KL), which the logits −KL/κ
// magnify by 1/κ = 1e4 at the smallest default κ: ~1e-9 relative in β and the row statistics.
// Hence 1e-8 relative, with 1e-12 absolute for values at 0.
constexpr double relative_tolerance = 1e-8, absolute_tolerance = 1e-12;

std::vector<std::string> split(const std::string& line) {
  std::vector<std::string> fields;
  std::stringstream s(line);
  for (std::string f; std::getline(s, f, ',');) fields.push_back(f);
  return fields;
}

std::vector<std::vector<std::string>> read_csv(const std::string& path) {
  std::ifstream f(path);
  if (!f) {
    std::fprintf(stderr, "compare_study_tables: cannot read %s\n", path.c_str());
    std::exit(2);
  }
  std::vector<std::vector<std::string>> rows;
  for (std::string line; std::getline(f, line);) rows.push_back(split(line));
  return rows;
}

bool parse_number(const std::string& s, double& x) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  x = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size() && errno == 0;
}

/// Mismatches of one table, printed; the largest relative difference goes to `worst`.
int compare_table(const std::string& a_dir, const std::string& b_dir, const std::string& table, double& worst) {
  const auto a = read_csv(a_dir + "/" + table + ".csv"), b = read_csv(b_dir + "/" + table + ".csv");
  if (a.size() != b.size() || a.empty() || a[0] != b[0]) {
    std::printf("%s: %zu and %zu lines, or different headers\n", table.c_str(), a.size(), b.size());
    return 1;
  }
  const std::vector<std::string>& header = a[0];
  int mismatches = 0;
  for (std::size_t r = 1; r < a.size(); ++r) {
    if (a[r].size() != header.size() || b[r].size() != header.size()) {
      std::printf("%s row %zu: not %zu fields\n", table.c_str(), r, header.size());
      ++mismatches;
      continue;
    }
    for (std::size_t c = 0; c < header.size(); ++c) {
      double x = 0, y = 0;
      bool same = a[r][c] == b[r][c];
      if (!same && parse_number(a[r][c], x) && parse_number(b[r][c], y)) {
        const double scale = std::max(std::abs(x), std::abs(y));
        worst = std::max(worst, std::abs(x - y) / scale);
        same = std::abs(x - y) <= absolute_tolerance + relative_tolerance * scale;
      }
      if (!same && ++mismatches <= 20)
        std::printf("%s row %zu (%s %s) %s: %s against %s\n", table.c_str(), r, a[r][0].c_str(), a[r][1].c_str(),
                    header[c].c_str(), a[r][c].c_str(), b[r][c].c_str());
    }
  }
  return mismatches;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: compare_study_tables DIR_A DIR_B TABLE...\n");
    return 2;
  }
  int mismatches = 0;
  for (int t = 3; t < argc; ++t) {
    double worst = 0;
    const int m = compare_table(argv[1], argv[2], argv[t], worst);
    std::printf("%s.csv: %d mismatches, largest relative difference %.3g (tolerance %.0e relative, %.0e absolute)\n",
                argv[t], m, worst, relative_tolerance, absolute_tolerance);
    mismatches += m;
  }
  return mismatches == 0 ? 0 : 1;
}
