// The upstream spec's attention diagnostics (math.md §7) for the upstream parity fixture,
// exact and upstream-compatible side by side: the README's main command until the study tool
// exists.
//
//   upstream_diagnostics [FIXTURE_DIR]      (default: the fixture directory the build was given)
#include <gauge_attn/gauge_attn.hpp>
#include <gauge_attn/npy.hpp>

#include <cstdio>
#include <exception>
#include <string>

#ifndef GAUGE_ATTN_FIXTURE_DIR
#define GAUGE_ATTN_FIXTURE_DIR "../shared/fixtures/upstream_parity_small"
#endif

using namespace gauge_attn;
using Spec = specs::Upstream;

namespace {

/// The fixture's diagonal-covariance inputs: μ (1, 16, 19), σ (1, 16, 19), φ (1, 16, 3).
Beliefs<double> load_fixture(const std::string& dir) {
  const NpyArray mu = read_npy(dir + "/mu.npy");
  const NpyArray sigma = read_npy(dir + "/sigma_diag.npy");
  const NpyArray phi = read_npy(dir + "/phi.npy");
  detail::require(mu.rank() == 3 && mu.shape[2] == std::size_t(Spec::embed_dim), "mu.npy",
                  "expected (B, N, 19), got rank ", mu.rank());
  Beliefs<double> q(int(mu.shape[0]), int(mu.shape[1]), Spec::embed_dim, Covariance::diagonal);
  detail::require(sigma.size() == q.sigma.size(), "sigma_diag.npy", "expected ", q.sigma.size(), " values, got ",
                  sigma.size());
  detail::require(phi.size() == q.phi.size(), "phi.npy", "expected ", q.phi.size(), " values, got ", phi.size());
  q.mu = mu.data;
  q.sigma = sigma.data;
  q.phi = phi.data;
  return q;
}

/// `text` padded with spaces to `columns` characters (UTF-8 aware: ℓ is one column, three bytes).
std::string pad(std::string text, std::size_t columns) {
  std::size_t shown = 0;
  for (unsigned char c : text) shown += (c & 0xC0) != 0x80;
  if (shown < columns) text.append(columns - shown, ' ');
  return text;
}

}  // namespace

int main(int argc, char** argv) try {
  const std::string dir = argc > 1 ? argv[1] : GAUGE_ATTN_FIXTURE_DIR;
  const Beliefs<double> q = load_fixture(dir);

  // The fixture's diag_exact case: causal, self-masked, κ = 0.43 for every head.
  AttentionOptions options;
  options.kappa = {0.43};
  options.mask.causal = true;
  options.mask.mask_self = true;
  options.kl_statistics = true;
  const auto exact = attention_forward<Spec>(q.view(), options);
  options.mode = Mode::upstream;
  const auto upstream = attention_forward<Spec>(q.view(), options);

  std::printf("gauge_attn %d.%d.%d: upstream spec (l0x5, l1x3, l2x1), fixture %s\n", GAUGE_ATTN_VERSION_MAJOR,
              GAUGE_ATTN_VERSION_MINOR, GAUGE_ATTN_VERSION_PATCH, dir.c_str());
  std::printf("B = %d, N = %d, causal, self-masked, kappa = 0.43; uniform = row_std of uniform attention under "
              "the same mask, entropy = H / ln(allowed keys)\n\n",
              q.batch, q.tokens);
  const auto exact_heads = head_diagnostics<Spec>(exact);
  const auto upstream_heads = head_diagnostics<Spec>(upstream);
  constexpr std::size_t width = 67;
  std::printf("%s | %s\n", pad("exact KL (M4), exact transport", width).c_str(),
              "upstream-compatible (math.md section 6)");
  for (std::size_t h = 0; h < exact_heads.size(); ++h)
    std::printf("%s | %s\n", pad(format_calibrated(exact_heads[h]), width).c_str(),
                format_calibrated(upstream_heads[h]).c_str());
  std::printf("\nexact:\n%s", format_diversity(diversity(q.view(), exact.kl_statistics)).c_str());
  std::printf("upstream-compatible:\n%s", format_diversity(diversity(q.view(), upstream.kl_statistics)).c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "upstream_diagnostics: %s\n", e.what());
  return 1;
}
