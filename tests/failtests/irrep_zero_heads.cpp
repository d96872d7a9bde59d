// Failtest: an Irrep with no heads is rejected. The control is Irrep<1, 1>.
#include <gauge_attn/irreps.hpp>

#ifdef GAUGE_ATTN_FAILTEST_SHOULD_FAIL
using Tested = gauge_attn::Irrep<1, 0>;
#else
using Tested = gauge_attn::Irrep<1, 1>;
#endif

int main() { return Tested::heads > 0 ? 0 : 1; }
