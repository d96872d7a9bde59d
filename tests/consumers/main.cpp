// A consumer of gauge_attn: uses only <gauge_attn/irreps.hpp> and <gauge_attn/specs.hpp>.
#include <cstdio>

#include <gauge_attn/irreps.hpp>
#include <gauge_attn/specs.hpp>

int main() {
  using Spec = gauge_attn::IrrepSpec<gauge_attn::Irrep<0, 5>, gauge_attn::Irrep<1, 3>, gauge_attn::Irrep<2, 1>>;
  static_assert(Spec::embed_dim == 19 && Spec::num_heads == 9, "the upstream spec is E = 19 with 9 heads");
  static_assert(gauge_attn::specs::Upstream::embed_dim == Spec::embed_dim, "specs::Upstream is that spec");
  const int last = Spec::num_heads - 1;
  std::printf("gauge_attn consumer: E = %d, %d heads, head %d is %s at offset %d\n", Spec::embed_dim,
              Spec::num_heads, last, Spec::label(last).c_str(), Spec::head(last).offset);
  return Spec::head(last).offset == 14 ? 0 : 1;
}
