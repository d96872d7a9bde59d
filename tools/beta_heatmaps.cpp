// beta_heatmaps.cpp: from the attention maps of study/study.hpp to the heatmap grid of heatmap_png.
#include "beta_heatmaps.hpp"

#include "heatmap_png.hpp"

#include <cstdio>
#include <filesystem>
#include <limits>

namespace gauge_attn_study {

void write_beta_heatmap(const std::string& dir, const gauge_attn::study::AttentionMaps& maps) {
  const int n = maps.tokens;
  std::vector<std::vector<Heatmap>> rows;  // heads of one irrep follow each other in a spec
  for (std::size_t h = 0; h < maps.l.size(); ++h) {
    if (h == 0 || maps.l[h] != maps.l[h - 1]) rows.emplace_back();
    Heatmap m{"head " + std::to_string(h) + " (l" + std::to_string(maps.l[h]) + ")", n,
              std::vector<double>(std::size_t(n) * n, std::numeric_limits<double>::quiet_NaN())};
    for (int i = 0; i < n; ++i) {
      const gauge_attn::KeyRange keys = gauge_attn::key_range(maps.mask, i, n);
      for (int j = keys.begin; j < keys.end; ++j)
        if (keys.allows(j)) m.values[std::size_t(i) * n + j] = keys.count() * maps.at(int(h), i, j);
    }
    rows.back().push_back(std::move(m));
  }
  char title[160];
  std::snprintf(title, sizeof title, "%s, %s mode, kappa %g (base %g): beta of sequence 0, N = %d", maps.spec.c_str(),
                gauge_attn::study::to_string(maps.mode), maps.kappa, maps.kappa_base, n);
  const std::string file = "beta_" + maps.spec + "_" + gauge_attn::study::to_string(maps.mode) + ".png";
  write_heatmap_grid((std::filesystem::path(dir) / file).string(), title, rows,
                     {0.1, 10, "n_i * beta_ij: 1 = uniform over the n_i allowed keys of row i; grey: masked"});
}

}  // namespace gauge_attn_study
