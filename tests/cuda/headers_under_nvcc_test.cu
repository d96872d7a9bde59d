// The device-ready headers compile under nvcc and work in device code: the compile-time spec
// algebra of <gauge_attn/irreps.hpp> and the per-pair maths of <gauge_attn/lifted.hpp>, which the
// kernel instantiates and checks against the same code run on the host.
// Without a GPU this prints a skip and returns 77 (CTest: skipped).
#include <cmath>
#include <cstdio>

#include <cuda_runtime.h>

#include <gauge_attn/config.hpp>
#include <gauge_attn/irreps.hpp>
#include <gauge_attn/lifted.hpp>

namespace {

using Upstream = gauge_attn::IrrepSpec<gauge_attn::Irrep<0, 5>, gauge_attn::Irrep<1, 3>, gauge_attn::Irrep<2, 1>>;
constexpr int K = 5;  // the ℓ2 head of the upstream spec
using Widths = gauge_attn::LiftedWidths<K>;
static_assert(Widths::lifted == K * (K + 1) / 2 + K + 1, "P = K(K+1)/2 + K + 1");

constexpr int kConstants = 3;
constexpr int kResults = 2 * 2;  // {float, double} x {diagonal, full}: a_i · b_j

// A fixed frame (a permutation with a sign flip, so R ≠ I), means and SPD covariances.
template <class T>
struct Inputs {
  T R[K * K];
  T mu_i[K], mu_j[K];
  T var_i[K], var_j[K];
  T sigma_i[K * K], sigma_j[K * K];
};

template <class T>
GAUGE_ATTN_HOST_DEVICE Inputs<T> make_inputs() {
  Inputs<T> in{};
  for (int r = 0; r < K; ++r) {
    in.R[r * K + (r + 1) % K] = r == 0 ? T(-1) : T(1);
    in.mu_i[r] = T(0.3) * T(r + 1) - T(0.7);
    in.mu_j[r] = T(0.25) - T(0.2) * T(r);
    in.var_i[r] = T(0.5) + T(0.25) * T(r);
    in.var_j[r] = T(1.5) - T(0.2) * T(r);
    for (int c = 0; c < K; ++c) {
      in.sigma_i[r * K + c] = (r == c ? T(2) : T(0)) + T(0.1) / T(1 + r + c);
      in.sigma_j[r * K + c] = (r == c ? T(1) + T(0.1) * T(r) : T(0)) + T(0.05) * T(r == c + 1 || c == r + 1);
    }
  }
  return in;
}

// a_i · b_j of (M8) for one pair, or NaN when a covariance is rejected.
template <class T>
GAUGE_ATTN_HOST_DEVICE T lifted_score(bool diagonal) {
  namespace lifted = gauge_attn::lifted;
  const Inputs<T> in = make_inputs<T>();
  lifted::PulledBack<T, K> pi{}, pj{};
  const bool ok_i = lifted::pull_back<T, K>(in.R, in.mu_i, diagonal ? in.var_i : in.sigma_i, K, diagonal, pi);
  const bool ok_j = lifted::pull_back<T, K>(in.R, in.mu_j, diagonal ? in.var_j : in.sigma_j, K, diagonal, pj);
  if (!ok_i || !ok_j) return T(NAN);
  T a[Widths::lifted], b[Widths::lifted];
  lifted::pack_query<T, K, T>(pi, pi.nu, a);
  lifted::pack_key<T, K, T>(pj, pj.nu, T(0.43), b);
  T dot = 0;
  for (int p = 0; p < Widths::lifted; ++p) dot += a[p] * b[p];
  return dot;
}

__global__ void device_checks(int* constants, double* results) {
  static_assert(Upstream::embed_dim == 19, "upstream spec: E = 19");
  static_assert(Upstream::num_heads == 9, "upstream spec: 9 heads");
  static_assert(Upstream::max_l == 2, "upstream spec: max l = 2");
  constants[0] = Upstream::embed_dim;
  constants[1] = Upstream::num_heads;
  constants[2] = gauge_attn::lifted::sym_index(K, K - 1, K - 1);
  results[0] = lifted_score<float>(true);
  results[1] = lifted_score<float>(false);
  results[2] = lifted_score<double>(true);
  results[3] = lifted_score<double>(false);
}

}  // namespace

int main() {
  // The host half runs everywhere: the lifted score must be finite in both precisions.
  const double expected[kResults] = {lifted_score<float>(true), lifted_score<float>(false),
                                     lifted_score<double>(true), lifted_score<double>(false)};
  for (int k = 0; k < kResults; ++k)
    if (!std::isfinite(expected[k])) {
      std::printf("FAIL: host lifted score %d is not finite\n", k);
      return 1;
    }

  int devices = 0;
  const cudaError_t status = cudaGetDeviceCount(&devices);
  if (status != cudaSuccess || devices == 0) {
    std::printf("SKIP: no CUDA device (%s)\n", status != cudaSuccess ? cudaGetErrorString(status) : "0 devices");
    return 77;
  }

  int* d_constants = nullptr;
  double* d_results = nullptr;
  int constants[kConstants] = {};
  double results[kResults] = {};
  if (cudaMalloc(&d_constants, sizeof constants) != cudaSuccess || cudaMalloc(&d_results, sizeof results) != cudaSuccess) {
    std::printf("FAIL: cudaMalloc\n");
    return 1;
  }
  device_checks<<<1, 1>>>(d_constants, d_results);
  cudaError_t err = cudaGetLastError();
  if (err == cudaSuccess) err = cudaMemcpy(constants, d_constants, sizeof constants, cudaMemcpyDeviceToHost);
  if (err == cudaSuccess) err = cudaMemcpy(results, d_results, sizeof results, cudaMemcpyDeviceToHost);
  cudaFree(d_constants);
  cudaFree(d_results);
  if (err != cudaSuccess) {
    std::printf("FAIL: %s\n", cudaGetErrorString(err));
    return 1;
  }

  int failures = 0;
  const int expected_constants[kConstants] = {19, 9, Widths::sym - 1};
  for (int k = 0; k < kConstants; ++k)
    if (constants[k] != expected_constants[k]) {
      std::printf("FAIL: constant %d = %d on the device, expected %d\n", k, constants[k], expected_constants[k]);
      ++failures;
    }
  // The device runs the same code as the host; the only differences are contraction (FMA) and
  // the device's libm, a few ulps per operation over ~10^3 operations: 1e-4 relative in float,
  // 1e-12 in double.
  const double tolerance[kResults] = {1e-4, 1e-4, 1e-12, 1e-12};
  const char* names[kResults] = {"float diagonal", "float full", "double diagonal", "double full"};
  for (int k = 0; k < kResults; ++k) {
    const double error = std::fabs(results[k] - expected[k]);
    const bool ok = error <= tolerance[k] * std::fmax(1.0, std::fabs(expected[k]));
    std::printf("%s: %s a_i . b_j = %.17g on the device, %.17g on the host\n", ok ? "PASS" : "FAIL", names[k],
                results[k], expected[k]);
    failures += ok ? 0 : 1;
  }
  return failures == 0 ? 0 : 1;
}
