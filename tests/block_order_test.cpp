// Tests of the pair kernels' block order (BlockGroups and place_block, cuda/include/gauge_attn/cuda/
// layout.cuh; plain C++, so tested here without a GPU): every (irrep, sequence, head, tile) is one
// block, the groups run widest ℓ first whatever the spec's order (ties in spec order), and within a
// group the heaviest tiles come first (the last under causality for the forward, the first for the
// backward's key tiles).
#include <gauge_attn/cuda/layout.cuh>
#include <gauge_attn/irreps.hpp>
#include <gauge_attn/specs.hpp>

#include <catch2/catch.hpp>

#include <set>
#include <tuple>
#include <vector>

namespace {

using namespace gauge_attn;
using gpu::BlockGroups;
using gpu::BlockPlace;
using gpu::place_block;

/// ℓ0 × 2, ℓ3 × 1, ℓ1 × 2, ℓ3 × 2: widest not first, two irreps of one ℓ.
using Shuffled = IrrepSpec<Irrep<0, 2>, Irrep<3, 1>, Irrep<1, 2>, Irrep<3, 2>>;

/// Rows per tile that differ by irrep, so that a block placed in the wrong group gets a wrong tile count.
template <class Spec>
BlockGroups<Spec::num_irreps> groups_of(int batch, int tokens) {
  return BlockGroups<Spec::num_irreps>::template of<Spec>(batch, tokens,
                                                          [](auto irrep) { return 16 * (decltype(irrep)::l + 1); });
}

/// Checks the launch of Spec over (batch, tokens), tiles counted from the last when last_first.
template <class Spec>
void check_block_order(int batch, int tokens, bool last_first) {
  const auto g = groups_of<Spec>(batch, tokens);
  int expected_blocks = 0;
  Spec::for_each_irrep([&](auto irrep, int) {
    const int rows = 16 * (decltype(irrep)::l + 1);
    expected_blocks += (tokens + rows - 1) / rows * decltype(irrep)::heads * batch;
  });
  REQUIRE(g.blocks() == expected_blocks);

  std::set<std::tuple<int, int, int, int>> seen;  // (irrep, b, h, tile)
  std::set<int> started;                          // irreps whose blocks have begun
  int previous_l = 1 << 30, previous_irrep = -1, previous_tile = -1;
  for (int block = 0; block < g.blocks(); ++block) {
    const BlockPlace at = place_block(g, block, batch, last_first);
    REQUIRE(at.group >= 0);
    REQUIRE(at.group < Spec::num_irreps);
    REQUIRE(Spec::head(at.h).irrep == at.group);
    const int l = Spec::head(at.h).l, rows = 16 * (l + 1);
    REQUIRE(at.b >= 0);
    REQUIRE(at.b < batch);
    REQUIRE(at.tile >= 0);
    REQUIRE(at.tile < (tokens + rows - 1) / rows);
    REQUIRE(seen.insert({at.group, at.b, at.h, at.tile}).second);
    // Widest ℓ first; an irrep's blocks are contiguous; equal ℓ in spec order.
    REQUIRE(l <= previous_l);
    if (at.group != previous_irrep) {
      REQUIRE(started.insert(at.group).second);
      if (l == previous_l) REQUIRE(at.group > previous_irrep);
      previous_tile = -1;
    } else if (previous_tile >= 0) {
      // The heaviest tiles first: descending from the last, or ascending from the first.
      REQUIRE((last_first ? at.tile <= previous_tile : at.tile >= previous_tile));
    }
    previous_l = l;
    previous_irrep = at.group;
    previous_tile = at.tile;
  }
  REQUIRE(int(seen.size()) == expected_blocks);
}

TEST_CASE("Pair-kernel blocks cover every (irrep, sequence, head, tile) once, widest irrep first", "[layout]") {
  for (const bool last_first : {true, false}) {
    check_block_order<specs::Upstream>(3, 200, last_first);
    check_block_order<Shuffled>(2, 97, last_first);
    check_block_order<IrrepSpec<Irrep<8, 1>, Irrep<4, 2>>>(2, 33, last_first);
    check_block_order<specs::SingleL9>(1, 1, last_first);
  }
}

TEST_CASE("The launch order of the irrep groups is by ℓ, widest first, equal ℓ in spec order", "[layout]") {
  const auto g = groups_of<Shuffled>(1, 64);
  // Shuffled's irreps: 0 (ℓ0), 1 (ℓ3), 2 (ℓ1), 3 (ℓ3).
  CHECK(std::vector<int>(g.irrep, g.irrep + 4) == std::vector<int>{1, 3, 2, 0});
  const auto upstream = groups_of<specs::Upstream>(1, 64);
  CHECK(std::vector<int>(upstream.irrep, upstream.irrep + 3) == std::vector<int>{2, 1, 0});
}

}  // namespace
