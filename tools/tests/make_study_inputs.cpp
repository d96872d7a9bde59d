// Writes the .npy inputs of the gauge_attn_study CTest tests into DIR: good beliefs (E = 41,
// float32, diagonal and full covariance; E = 19, float64) and malformed ones (among them a single
// token, E = 19).
#include <gauge_attn/npy.hpp>
#include <gauge_attn/study/study.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

using namespace gauge_attn;

namespace {

void write_beliefs(const std::string& prefix, const Beliefs<double>& q, bool as_float) {
  const std::size_t B = q.batch, N = q.tokens, E = q.embed_dim;
  auto write = [&](const std::string& name, const std::vector<double>& v, std::vector<std::size_t> shape) {
    const std::vector<float> f(v.begin(), v.end());
    if (as_float)
      write_npy(prefix + name, f.data(), shape);
    else
      write_npy(prefix + name, v.data(), shape);
  };
  write("mu.npy", q.mu, {B, N, E});
  write("sigma.npy", q.sigma, {B, N, E});
  write("phi.npy", q.phi, {B, N, 3});
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_study_inputs DIR\n");
    return 2;
  }
  std::filesystem::create_directories(argv[1]);
  const std::string dir = std::string(argv[1]) + "/";
  study::SyntheticOptions o;
  o.batch = 2;
  o.tokens = 8;
  const Beliefs<double> q41 = study::synthetic_beliefs(41, o), q19 = study::synthetic_beliefs(19, o);
  write_beliefs(dir + "e41_", q41, true);
  write_beliefs(dir + "e19_", q19, false);
  study::SyntheticOptions one = o;  // N = 1: no pairs, nothing to analyse
  one.tokens = 1;
  write_beliefs(dir + "one_token_", study::synthetic_beliefs(19, one), false);

  // Full covariance (B, N, E, E): the diagonal variances on the diagonal.
  const std::size_t B = 2, N = 8, E = 41;
  std::vector<double> full(B * N * E * E, 0.0);
  for (std::size_t t = 0; t < B * N; ++t)
    for (std::size_t e = 0; e < E; ++e) full[(t * E + e) * E + e] = q41.sigma[t * E + e];
  write_npy(dir + "e41_sigma_full.npy", full.data(), {B, N, E, E});

  std::vector<double> mu_nan = q41.mu;
  mu_nan[17] = std::numeric_limits<double>::quiet_NaN();
  write_npy(dir + "bad_mu_nan.npy", mu_nan.data(), {B, N, E});
  write_npy(dir + "bad_mu_rank2.npy", q41.mu.data(), {B * N, E});
  const std::vector<double> phi4(B * N * 4, 0.1);
  write_npy(dir + "bad_phi_4.npy", phi4.data(), {B, N, 4});
  std::ofstream(dir + "bad_not_npy.npy") << "this is not an npy file\n";
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "make_study_inputs: %s\n", e.what());
  return 1;
}
