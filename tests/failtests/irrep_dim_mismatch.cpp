// Failtest: an Irrep whose Dim is not 2L+1 is rejected. The control is Irrep<2, 1, 5>.
#include <gauge_attn/irreps.hpp>

#ifdef GAUGE_ATTN_FAILTEST_SHOULD_FAIL
using Tested = gauge_attn::Irrep<1, 2, 4>;
#else
using Tested = gauge_attn::Irrep<2, 1, 5>;
#endif

int main() { return Tested::dim == 2 * Tested::l + 1 ? 0 : 1; }
