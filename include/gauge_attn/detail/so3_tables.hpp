// gauge_attn/detail/so3_tables.hpp: the (M1) generators and the quarter-turn rotation of every
// spin as plain row-major tables (no Eigen), built once per spin and cached. The Eigen API of
// so3.hpp/wigner.hpp and the CUDA kernels both read these.
#pragma once

#include <array>
#include <cmath>
#include <complex>
#include <mutex>
#include <vector>

#include "../error.hpp"

namespace gauge_attn {

/// Highest spin for which generators and Wigner-D matrices are provided.
inline constexpr int max_supported_l = 24;

namespace detail {

inline void check_spin(int l) {
  require(l >= 0 && l <= max_supported_l, "l", "spin ", l, " is outside [0, ", max_supported_l, "]");
}

/// G_x, G_y, G_z of one spin, each (2ℓ+1)² row-major.
using GeneratorTables = std::array<std::vector<double>, 3>;

/// (M1): G_a = skew(Re(S (i J_a) S†)) with J the complex angular momentum in |ℓ, m⟩ and S the
/// unitary change to the real basis ordered [m = 0, c1, s1, c2, s2, …, cℓ, sℓ].
inline GeneratorTables build_generator_tables(int l) {
  using C = std::complex<double>;
  const int K = 2 * l + 1;
  const C i(0.0, 1.0);
  auto at = [K](std::vector<C>& m, int r, int c) -> C& { return m[std::size_t(r) * K + c]; };
  std::vector<C> J[3], S(std::size_t(K) * K, 0.0);
  for (auto& j : J) j.assign(std::size_t(K) * K, 0.0);
  for (int r = 0; r < K; ++r) {
    const double m = r - l;
    at(J[2], r, r) = m;  // J_z = diag(m); J_x = (J₊ + J₋)/2, J_y = (J₊ − J₋)/(2i)
    if (m < l) {
      const double up = std::sqrt((l - m) * (l + m + 1));  // J₊[r, r+1]
      at(J[0], r, r + 1) += up / 2.0;
      at(J[1], r, r + 1) += up / (2.0 * i);
    }
    if (m > -l) {
      const double down = std::sqrt((l + m) * (l - m + 1));  // J₋[r, r−1]
      at(J[0], r, r - 1) += down / 2.0;
      at(J[1], r, r - 1) -= down / (2.0 * i);
    }
  }
  at(S, 0, l) = 1.0;
  const double r2 = 1.0 / std::sqrt(2.0);
  for (int m = 1; m <= l; ++m) {
    const double p = (m % 2 == 0) ? 1.0 : -1.0;
    const int c = 2 * m - 1, s = 2 * m;
    at(S, c, l + m) = r2;
    at(S, c, l - m) = p * r2;
    at(S, s, l + m) = -i * r2;
    at(S, s, l - m) = i * p * r2;
  }
  GeneratorTables G;
  for (int a = 0; a < 3; ++a) {
    std::vector<C> X(std::size_t(K) * K, 0.0);  // X = S (i J_a) S†
    for (int r = 0; r < K; ++r)
      for (int c = 0; c < K; ++c)
        for (int p = 0; p < K; ++p)
          for (int q = 0; q < K; ++q) at(X, r, c) += at(S, r, p) * i * at(J[a], p, q) * std::conj(at(S, c, q));
    G[a].resize(std::size_t(K) * K);
    for (int r = 0; r < K; ++r)
      for (int c = 0; c < K; ++c) G[a][std::size_t(r) * K + c] = (at(X, r, c).real() - at(X, c, r).real()) / 2.0;
  }
  return G;
}

/// X = exp(−(π/2) G_x), the fixed rotation with X G_z Xᵀ = G_y (Ad_{exp(tG_x)} G_z = cos t G_z −
/// sin t G_y), so exp(b G_y) = X exp(b G_z) Xᵀ. Taylor series with scaling and squaring in long
/// double, which leaves it orthogonal to double rounding. Row-major (2ℓ+1)².
inline std::vector<double> build_quarter_turn_table(int l) {
  using LD = long double;
  const int K = 2 * l + 1;
  const LD pi = 3.141592653589793238462643383279502884L;
  const int squarings = 12;
  const GeneratorTables G = build_generator_tables(l);
  std::vector<LD> A(std::size_t(K) * K), sum(A.size(), 0), term(A.size(), 0), tmp(A.size());
  for (std::size_t k = 0; k < A.size(); ++k) A[k] = LD(G[0][k]) * (-pi / 2 / LD(1 << squarings));
  auto multiply = [K](const std::vector<LD>& x, const std::vector<LD>& y, std::vector<LD>& out) {
    for (int r = 0; r < K; ++r)
      for (int c = 0; c < K; ++c) {
        LD s = 0;
        for (int p = 0; p < K; ++p) s += x[std::size_t(r) * K + p] * y[std::size_t(p) * K + c];
        out[std::size_t(r) * K + c] = s;
      }
  };
  for (int r = 0; r < K; ++r) sum[std::size_t(r) * K + r] = term[std::size_t(r) * K + r] = 1;
  for (int k = 1; k <= 30; ++k) {
    multiply(term, A, tmp);
    for (std::size_t e = 0; e < tmp.size(); ++e) sum[e] += term[e] = tmp[e] / LD(k);
  }
  for (int k = 0; k < squarings; ++k) {
    multiply(sum, sum, tmp);
    sum.swap(tmp);
  }
  return std::vector<double>(sum.begin(), sum.end());
}

/// Lazily built, thread-safe table of one value per spin 0..max_supported_l.
template <class Value, Value (*Build)(int)>
const Value& per_spin_cache(int l) {
  check_spin(l);
  static std::array<std::once_flag, max_supported_l + 1> once;
  static std::array<Value, max_supported_l + 1> table;
  std::call_once(once[l], [l] { table[l] = Build(l); });
  return table[l];
}

inline const GeneratorTables& generator_tables(int l) {
  return per_spin_cache<GeneratorTables, build_generator_tables>(l);
}
inline const std::vector<double>& quarter_turn_table(int l) {
  return per_spin_cache<std::vector<double>, build_quarter_turn_table>(l);
}

}  // namespace detail
}  // namespace gauge_attn
