// heatmap_png.hpp: grids of square heatmaps written as one PNG, with a title, a label over each
// heatmap and a colour bar, colours on a logarithmic scale.
#pragma once

#include <string>
#include <vector>

namespace gauge_attn_study {

/// An n × n heatmap, row-major; NaN marks a cell without a value (drawn grey).
struct Heatmap {
  std::string label;
  int n = 0;
  std::vector<double> values;
};

/// The values shown from `lo` to `hi` (> lo > 0), logarithmically; values outside are clamped.
struct LogScale {
  double lo = 0.1, hi = 10;
  std::string caption;  // under the colour bar: what the colours mean
};

/// Writes `rows` (one line of heatmaps per inner vector, all of one n) under `title` to the PNG
/// `path`. Cells are max(1, 192 / n) pixels wide; text is ASCII. Throws std::runtime_error when
/// the file cannot be written.
void write_heatmap_grid(const std::string& path, const std::string& title,
                        const std::vector<std::vector<Heatmap>>& rows, const LogScale& scale);

}  // namespace gauge_attn_study
