// heatmap_png.cpp: the heatmap grid drawn into an RGB buffer and written by stb_image_write;
// text is drawn from the quads of stb_easy_font (both from Debian's libstb-dev).
#include "heatmap_png.hpp"

#include "colormap.hpp"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_easy_font.h>
#include <stb_image_write.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace gauge_attn_study {
namespace {

constexpr int margin = 12, text_scale = 2, line = 12 * text_scale;  // stb_easy_font: 12 px lines
constexpr int bar_width = 256, bar_height = 16;
constexpr Rgb black{0, 0, 0}, grey{200, 200, 200};

class Canvas {
 public:
  Canvas(int width, int height) : width_(width), height_(height), rgb_(std::size_t(width) * height * 3, 255) {}

  void fill(int x, int y, int w, int h, Rgb c) {
    for (int v = std::max(y, 0); v < std::min(y + h, height_); ++v)
      for (int u = std::max(x, 0); u < std::min(x + w, width_); ++u) {
        unsigned char* p = &rgb_[(std::size_t(v) * width_ + u) * 3];
        p[0] = c.r;
        p[1] = c.g;
        p[2] = c.b;
      }
  }

  /// `s` with its top-left corner at (x, y), each font pixel text_scale pixels wide.
  void text(int x, int y, std::string s, Rgb c) {
    std::vector<char> quads(s.size() * 300 + 64);  // the header's estimate: ~270 bytes per character
    const int n = stb_easy_font_print(0, 0, s.data(), nullptr, quads.data(), int(quads.size()));
    for (int q = 0; q < n; ++q) {
      float v[16];  // 4 vertices of x, y, z and 4 colour bytes
      std::memcpy(v, &quads[std::size_t(q) * sizeof v], sizeof v);
      const float x0 = std::min(v[0], v[8]), x1 = std::max(v[0], v[8]);
      const float y0 = std::min(v[1], v[9]), y1 = std::max(v[1], v[9]);
      fill(x + int(x0 * text_scale), y + int(y0 * text_scale), int((x1 - x0) * text_scale),
           int((y1 - y0) * text_scale), c);
    }
  }

  void write_png(const std::string& path) const {
    if (!stbi_write_png(path.c_str(), width_, height_, 3, rgb_.data(), width_ * 3))
      throw std::runtime_error("cannot write " + path);
  }

 private:
  int width_, height_;
  std::vector<unsigned char> rgb_;
};

int text_width(std::string text) { return stb_easy_font_width(text.data()) * text_scale; }

std::string tick(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

}  // namespace

void write_heatmap_grid(const std::string& path, const std::string& title,
                        const std::vector<std::vector<Heatmap>>& rows, const LogScale& scale) {
  const int n = rows.at(0).at(0).n, cell = std::max(1, 192 / n), side = n * cell;
  std::size_t columns = 0;
  for (const auto& row : rows) columns = std::max(columns, row.size());
  const int width = std::max({margin + int(columns) * (side + margin), 2 * margin + text_width(title),
                              2 * margin + text_width(scale.caption), 2 * margin + bar_width});
  const int row_height = line + side + margin;
  const int bar_top = margin + line + int(rows.size()) * row_height;
  const int height = bar_top + bar_height + 2 * line + margin;

  Canvas c(width, height);
  c.text(margin, margin, title, black);
  const double log_lo = std::log(scale.lo), log_range = std::log(scale.hi) - log_lo;
  auto colour = [&](double v) { return cubehelix((std::log(std::max(v, scale.lo)) - log_lo) / log_range); };
  for (std::size_t r = 0; r < rows.size(); ++r)
    for (std::size_t k = 0; k < rows[r].size(); ++k) {
      const Heatmap& m = rows[r][k];
      const int x = margin + int(k) * (side + margin), y = margin + line + int(r) * row_height;
      c.text(x, y + text_scale, m.label, black);
      for (int i = 0; i < n; ++i)
        for (int j = 0; j < n; ++j) {
          const double v = m.values[std::size_t(i) * n + j];
          c.fill(x + j * cell, y + line + i * cell, cell, cell, std::isnan(v) ? grey : colour(v));
        }
    }
  // Colour bar: lo, the geometric middle and hi, with the caption below.
  for (int u = 0; u < bar_width; ++u) c.fill(margin + u, bar_top, 1, bar_height, cubehelix((u + 0.5) / bar_width));
  const std::string lo = tick(scale.lo), mid = tick(std::sqrt(scale.lo * scale.hi)), hi = tick(scale.hi);
  const int ticks = bar_top + bar_height + text_scale;
  c.text(margin, ticks, lo, black);
  c.text(margin + (bar_width - text_width(mid)) / 2, ticks, mid, black);
  c.text(margin + bar_width - text_width(hi), ticks, hi, black);
  c.text(margin, ticks + line, scale.caption, black);
  c.write_png(path);
}

}  // namespace gauge_attn_study
