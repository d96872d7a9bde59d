// Tests of belief.hpp: the views index the upstream layouts (math.md §4) as documented, the owning
// container casts exactly, and the checks name the argument and the index of a bad value.
#include <gauge_attn/belief.hpp>
#include <gauge_attn/specs.hpp>

#include <catch2/catch.hpp>

#include <limits>
#include <random>
#include <string>

#include "test_support.hpp"

using namespace gauge_attn;

TEST_CASE("belief views read the upstream layouts", "[belief]") {
  std::mt19937 rng(41);
  using Spec = specs::HigherRank;
  const int B = 3, N = 5, E = Spec::embed_dim;
  for (Covariance kind : {Covariance::diagonal, Covariance::full}) {
    const auto q = testing::random_beliefs<Spec>(rng, B, N, kind);
    const auto v = q.view();
    for (int b = 0; b < B; ++b)
      for (int n = 0; n < N; ++n) {
        const std::size_t t = std::size_t(b) * N + n;
        for (int a = 0; a < 3; ++a) CHECK(v.frame(b, n)(a) == q.phi[t * 3 + a]);
        for (int h = 0; h < Spec::num_heads; ++h) {
          const HeadInfo hd = Spec::head(h);
          const auto mu = v.mean(b, n, hd.offset, hd.dim);
          const Eigen::MatrixXd S = v.covariance_block(b, n, hd.offset, hd.dim);
          for (int r = 0; r < hd.dim; ++r) {
            CHECK(mu(r) == q.mu[t * E + hd.offset + r]);
            for (int c = 0; c < hd.dim; ++c) {
              const double want = kind == Covariance::full ? q.sigma[(t * E + hd.offset + r) * E + hd.offset + c]
                                                           : (r == c ? q.sigma[t * E + hd.offset + r] : 0.0);
              CHECK(S(r, c) == want);
            }
          }
        }
      }
  }
}

TEST_CASE("beliefs cast between float and double", "[belief]") {
  std::mt19937 rng(42);
  const auto q = testing::random_beliefs<specs::Upstream>(rng, 2, 4, Covariance::full);
  const auto f = q.cast<float>();
  REQUIRE(f.sigma.size() == q.sigma.size());
  for (std::size_t k = 0; k < q.mu.size(); ++k) CHECK(f.mu[k] == float(q.mu[k]));
  for (std::size_t k = 0; k < q.sigma.size(); ++k) CHECK(f.sigma[k] == float(q.sigma[k]));
  const auto back = f.cast<double>();
  for (std::size_t k = 0; k < q.phi.size(); ++k) CHECK(back.phi[k] == double(float(q.phi[k])));
}

TEST_CASE("belief checks name the argument, the value and the index", "[belief][errors]") {
  std::mt19937 rng(43);
  auto q = testing::random_beliefs<specs::Upstream>(rng, 2, 6, Covariance::diagonal);
  CHECK_NOTHROW(validate_shape(q.view(), 19));
  CHECK_NOTHROW(validate_values(q.view()));
  auto message_of = [](auto&& f) -> std::string {
    try {
      f();
    } catch (const InvalidArgument& e) {
      return e.what();
    }
    return "";
  };
  CHECK_THROWS_AS(validate_shape(q.view(), 28), InvalidArgument);
  q.sigma[(std::size_t(1) * 6 + 4) * 19 + 7] = -0.25;  // (b=1, n=4, e=7)
  const std::string m = message_of([&] { validate_values(q.view()); });
  CHECK(m.find("'sigma'") != std::string::npos);
  CHECK(m.find("-0.25") != std::string::npos);
  CHECK(m.find("b=1, n=4, e=7") != std::string::npos);
  // Padding beyond the valid length is not read, so it is not checked either.
  CHECK_NOTHROW(validate_values(q.view(), {6, 4}));
  q.phi[2] = std::numeric_limits<double>::infinity();
  CHECK(message_of([&] { validate_values(q.view(), {6, 4}); }).find("'phi'") != std::string::npos);
}
