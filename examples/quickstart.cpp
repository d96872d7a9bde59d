// Quick start: KL attention of the upstream spec on random beliefs, and its diagnostics.
#include <gauge_attn/gauge_attn.hpp>

#include <cstdio>
#include <random>

int main() {
  using namespace gauge_attn;
  using Spec = IrrepSpec<Irrep<0, 5>, Irrep<1, 3>, Irrep<2, 1>>;  // E = 19, 9 heads
  static_assert(Spec::embed_dim == 19 && Spec::num_heads == 9);

  // B = 2 sequences of N = 64 tokens; diagonal covariances. Fill with your own data.
  Beliefs<float> q(2, 64, Spec::embed_dim, Covariance::diagonal);
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_real_distribution<float> variance(0.5f, 2.f);
  for (auto& x : q.mu) x = normal(rng);
  for (auto& x : q.sigma) x = variance(rng);
  for (auto& x : q.phi) x = 0.5f * normal(rng);

  AttentionOptions options;
  options.kappa = {1.0};        // one temperature for all heads, or one per head
  options.mask.causal = true;   // j <= i
  options.covariance_message = true;
  const AttentionResult<float> out = attention_forward<Spec>(q.view(), options);
  // out.mu: (B, N, E) mean messages (M6); out.sigma: (B, N, E) covariance messages (M7).

  for (const HeadDiagnostics& d : head_diagnostics<Spec>(out)) std::printf("%s\n", format_calibrated(d).c_str());
  return 0;
}
