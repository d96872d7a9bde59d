// Failtest: a spec without irreps is rejected. The control is IrrepSpec<Irrep<0, 1>>.
#include <gauge_attn/irreps.hpp>

#ifdef GAUGE_ATTN_FAILTEST_SHOULD_FAIL
using Tested = gauge_attn::IrrepSpec<>;
#else
using Tested = gauge_attn::IrrepSpec<gauge_attn::Irrep<0, 1>>;
#endif

int main() { return Tested::embed_dim > 0 ? 0 : 1; }
