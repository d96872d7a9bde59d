// gauge_attn/detail/so3_jacobian.hpp: the derivative of the Wigner-D matrices with respect to the
// frame (M10), on fixed arrays for the CPU backward and the CUDA kernels alike:
//   ∂D^ℓ(φ)/∂φ_a = D^ℓ(φ) Σ_b J(φ)_ba G^ℓ_b,
//   J(φ) = I − (1 − cos t)/t² [φ]× + (t − sin t)/t³ [φ]×²   (the right Jacobian of SO(3), t = |φ|).
// It uses only the Lie bracket [G_a, G_b] = ε_abc G_c, so one 3×3 matrix serves every spin.
#pragma once

#include <cmath>

#include "../config.hpp"

namespace gauge_attn::detail {

/// J(φ) row-major. Below t = 1e-4 the series I − [φ]×/2 + [φ]×²/6 (next terms O(t²) smaller than
/// the last kept, under 1e-8 relative) avoids the cancellation of 1 − cos t and t − sin t.
GAUGE_ATTN_HOST_DEVICE inline void so3_right_jacobian(const double phi[3], double J[9]) {
  const double t2 = phi[0] * phi[0] + phi[1] * phi[1] + phi[2] * phi[2], t = std::sqrt(t2);
  double c1, c2;  // coefficients of [φ]× and [φ]×²
  if (t < 1e-4) {
    c1 = 0.5 - t2 / 24;
    c2 = 1.0 / 6 - t2 / 120;
  } else {
    c1 = (1 - std::cos(t)) / t2;
    c2 = (t - std::sin(t)) / (t2 * t);
  }
  // [φ]× = [[0, −z, y], [z, 0, −x], [−y, x, 0]]; [φ]×² = φφᵀ − t² I.
  const double x = phi[0], y = phi[1], z = phi[2];
  const double cross[9] = {0, -z, y, z, 0, -x, -y, x, 0};
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c)
      J[r * 3 + c] = (r == c ? 1.0 : 0.0) - c1 * cross[r * 3 + c] + c2 * (phi[r] * phi[c] - (r == c ? t2 : 0.0));
}

/// φ̄ = J(φ)ᵀ y (G13), where y_b = ⟨Dᵀ D̄, G_b⟩_F summed over the heads of one token.
GAUGE_ATTN_HOST_DEVICE inline void frame_gradient(const double phi[3], const double y[3], double out[3]) {
  double J[9];
  so3_right_jacobian(phi, J);
  for (int a = 0; a < 3; ++a) out[a] = J[0 * 3 + a] * y[0] + J[1 * 3 + a] * y[1] + J[2 * 3 + a] * y[2];
}

}  // namespace gauge_attn::detail
