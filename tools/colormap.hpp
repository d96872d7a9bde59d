// colormap.hpp: the colour map of the tool's heatmaps.
#pragma once

#include <algorithm>
#include <cmath>

namespace gauge_attn_study {

struct Rgb {
  unsigned char r = 0, g = 0, b = 0;
};

/// Cubehelix (D. A. Green 2011, Bull. Astr. Soc. India 39, 289, eq. 2) at x ∈ [0, 1], with
/// start 0.5, −1.5 rotations and hue 1: a helix around the grey diagonal of the RGB cube whose
/// perceived brightness rises monotonically with x, so the map reads the same in grey print and to
/// colour-blind readers.
inline Rgb cubehelix(double x) {
  constexpr double pi = 3.14159265358979323846, start = 0.5, rotations = -1.5, hue = 1.0;
  const double lambda = std::clamp(x, 0.0, 1.0);
  const double amplitude = hue * lambda * (1 - lambda) / 2;
  const double phi = 2 * pi * (start / 3 + rotations * lambda);
  const double c = std::cos(phi), s = std::sin(phi);
  auto byte = [&](double v) { return static_cast<unsigned char>(std::lround(255 * std::clamp(v, 0.0, 1.0))); };
  return {byte(lambda + amplitude * (-0.14861 * c + 1.78277 * s)),
          byte(lambda + amplitude * (-0.29227 * c - 0.90649 * s)), byte(lambda + amplitude * (1.97294 * c))};
}

}  // namespace gauge_attn_study
