// Tests of gauge_attn/irreps.hpp and gauge_attn/specs.hpp: the compile-time layout of an irrep
// spec (math.md §1), head labels, for_each_irrep and the run-time dispatch of the named specs.
//
// Everything here is integer bookkeeping, so every comparison is exact (no tolerances).
#include <gauge_attn/irreps.hpp>
#include <gauge_attn/specs.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

using gauge_attn::HeadInfo;
using gauge_attn::Irrep;
using gauge_attn::IrrepSpec;
namespace specs = gauge_attn::specs;

// ---------------------------------------------------------------------------------------------
// Compile-time layout of the five named specs (the table of math.md §1).

static_assert(specs::Upstream::embed_dim == 19 && specs::Upstream::num_heads == 9, "upstream: E = 19, 9 heads");
static_assert(specs::MoreTensor::embed_dim == 28 && specs::MoreTensor::num_heads == 8, "more-tensor: E = 28, 8 heads");
static_assert(specs::HigherRank::embed_dim == 41 && specs::HigherRank::num_heads == 9, "higher-rank: E = 41, 9 heads");
static_assert(specs::Scaled::embed_dim == 108 && specs::Scaled::num_heads == 32, "scaled: E = 108, 32 heads");
static_assert(specs::SingleL9::embed_dim == 19 && specs::SingleL9::num_heads == 1, "single-l9: E = 19, 1 head");

static_assert(specs::Upstream::num_irreps == 3 && specs::Upstream::max_l == 2, "upstream: ℓ0, ℓ1, ℓ2");
static_assert(specs::MoreTensor::num_irreps == 3 && specs::MoreTensor::max_l == 2, "more-tensor: ℓ0, ℓ1, ℓ2");
static_assert(specs::HigherRank::num_irreps == 3 && specs::HigherRank::max_l == 3, "higher-rank: ℓ1, ℓ2, ℓ3");
static_assert(specs::Scaled::num_irreps == 4 && specs::Scaled::max_l == 3, "scaled: ℓ0..ℓ3");
static_assert(specs::SingleL9::num_irreps == 1 && specs::SingleL9::max_l == 9, "single-l9: ℓ9");

// IrrepSpec::spins lists ℓ of each Irrep in spec order.
static_assert(std::is_same_v<specs::Upstream::spins, std::integer_sequence<int, 0, 1, 2>>, "upstream spins");
static_assert(std::is_same_v<specs::HigherRank::spins, std::integer_sequence<int, 1, 2, 3>>, "higher-rank spins");
static_assert(std::is_same_v<specs::Scaled::spins, std::integer_sequence<int, 0, 1, 2, 3>>, "scaled spins");
static_assert(std::is_same_v<specs::SingleL9::spins, std::integer_sequence<int, 9>>, "single-l9 spins");

// §1: upstream heads 0..4 are ℓ0 at offsets 0..4, heads 5..7 are ℓ1 at 5, 8, 11, head 8 is ℓ2 at 14.
constexpr bool upstream_heads_as_in_math_md() {
  constexpr int offset[9] = {0, 1, 2, 3, 4, 5, 8, 11, 14};
  constexpr int spin[9] = {0, 0, 0, 0, 0, 1, 1, 1, 2};
  constexpr int irrep[9] = {0, 0, 0, 0, 0, 1, 1, 1, 2};
  for (int h = 0; h < 9; ++h) {
    const HeadInfo info = specs::Upstream::head(h);
    if (info.offset != offset[h] || info.l != spin[h] || info.dim != 2 * spin[h] + 1 || info.irrep != irrep[h])
      return false;
  }
  return true;
}
static_assert(upstream_heads_as_in_math_md(), "upstream head layout differs from math.md §1");

// Every spec: heads are contiguous slices in spec order that exactly tile [0, E).
template <class Spec>
constexpr bool heads_tile_the_embedding() {
  int offset = 0;
  for (int h = 0; h < Spec::num_heads; ++h) {
    const HeadInfo info = Spec::heads[h];
    if (info.offset != offset || info.dim != 2 * info.l + 1) return false;
    if (h > 0 && info.irrep < Spec::heads[h - 1].irrep) return false;  // spec order
    offset += info.dim;
  }
  return offset == Spec::embed_dim;
}
static_assert(heads_tile_the_embedding<specs::Upstream>(), "upstream heads do not tile E");
static_assert(heads_tile_the_embedding<specs::MoreTensor>(), "more-tensor heads do not tile E");
static_assert(heads_tile_the_embedding<specs::HigherRank>(), "higher-rank heads do not tile E");
static_assert(heads_tile_the_embedding<specs::Scaled>(), "scaled heads do not tile E");
static_assert(heads_tile_the_embedding<specs::SingleL9>(), "single-l9 heads do not tile E");

// A spec outside the named ones, with an irrep repeated and out of ℓ order.
using Unusual = IrrepSpec<Irrep<3, 1>, Irrep<0, 2>, Irrep<3, 2, 7>>;
static_assert(Unusual::embed_dim == 7 + 2 + 14 && Unusual::num_heads == 5 && Unusual::max_l == 3, "unusual spec");
static_assert(Unusual::head(1).offset == 7 && Unusual::head(2).offset == 8 && Unusual::head(3).offset == 9 &&
                  Unusual::head(4).offset == 16 && Unusual::head(4).irrep == 2,
              "unusual spec offsets");
static_assert(heads_tile_the_embedding<Unusual>(), "unusual spec heads do not tile E");

/// The expected (E, heads, per-irrep (ℓ, heads)) of each named spec, straight from math.md §1.
struct Expected {
  std::string_view name;
  int embed_dim;
  int num_heads;
  std::vector<std::pair<int, int>> irreps;  // (ℓ, heads) in spec order
};
const std::vector<Expected>& math_md_table() {
  static const std::vector<Expected> table = {
      {"upstream", 19, 9, {{0, 5}, {1, 3}, {2, 1}}},
      {"more-tensor", 28, 8, {{0, 2}, {1, 2}, {2, 4}}},
      {"higher-rank", 41, 9, {{1, 4}, {2, 3}, {3, 2}}},
      {"scaled", 108, 32, {{0, 10}, {1, 10}, {2, 8}, {3, 4}}},
      {"single-l9", 19, 1, {{9, 1}}},
  };
  return table;
}

/// What for_each_irrep reports: (ℓ, heads, dim, first head), in call order.
template <class Spec>
std::vector<std::array<int, 4>> irreps_visited() {
  std::vector<std::array<int, 4>> out;
  Spec::for_each_irrep([&](auto irrep, int first) {
    using I = decltype(irrep);
    // I::l must be a constant expression (that is the point of passing a value of the type).
    std::array<double, 2 * I::l + 1> fixed_size_block{};
    out.push_back({I::l, I::heads, static_cast<int>(fixed_size_block.size()), first});
  });
  return out;
}

const std::string ell = "\xE2\x84\x93";  // U+2113 SCRIPT SMALL L in UTF-8, written without "\u2113"

}  // namespace

TEST_CASE("irreps: upstream spec head table of math.md §1 at run time", "[irreps]") {
  using S = specs::Upstream;
  const int offsets[9] = {0, 1, 2, 3, 4, 5, 8, 11, 14};
  const int spins[9] = {0, 0, 0, 0, 0, 1, 1, 1, 2};
  for (int h = 0; h < S::num_heads; ++h) {
    CAPTURE(h);
    CHECK(S::head(h).offset == offsets[h]);
    CHECK(S::heads[h].l == spins[h]);
    CHECK(S::heads[h].dim == 2 * spins[h] + 1);
  }
}

TEST_CASE("irreps: head labels are the UTF-8 irrep names", "[irreps]") {
  CHECK(gauge_attn::irrep_label(0) == ell + "0");
  CHECK(gauge_attn::irrep_label(2) == ell + "2");
  CHECK(gauge_attn::irrep_label(10) == ell + "10");
  CHECK(gauge_attn::irrep_label(2).size() == 4);  // three UTF-8 bytes for ℓ, one digit

  // The upstream project prints `Head 8 (ℓ2)`.
  using S = specs::Upstream;
  for (int h = 0; h < 5; ++h) CHECK(S::label(h) == ell + "0");
  for (int h = 5; h < 8; ++h) CHECK(S::label(h) == ell + "1");
  CHECK(S::label(8) == ell + "2");
  CHECK("Head 8 (" + S::label(8) + ")" == "Head 8 (\xE2\x84\x93" "2)");
  CHECK(specs::SingleL9::label(0) == ell + "9");
  CHECK(specs::Scaled::label(31) == ell + "3");
}

TEST_CASE("irreps: for_each_irrep visits irreps in spec order with their first heads", "[irreps]") {
  using Row = std::array<int, 4>;  // (ℓ, heads, dim, first head)
  CHECK(irreps_visited<specs::Upstream>() == std::vector<Row>{{0, 5, 1, 0}, {1, 3, 3, 5}, {2, 1, 5, 8}});
  CHECK(irreps_visited<specs::MoreTensor>() == std::vector<Row>{{0, 2, 1, 0}, {1, 2, 3, 2}, {2, 4, 5, 4}});
  CHECK(irreps_visited<specs::HigherRank>() == std::vector<Row>{{1, 4, 3, 0}, {2, 3, 5, 4}, {3, 2, 7, 7}});
  CHECK(irreps_visited<specs::Scaled>() ==
        std::vector<Row>{{0, 10, 1, 0}, {1, 10, 3, 10}, {2, 8, 5, 20}, {3, 4, 7, 28}});
  CHECK(irreps_visited<specs::SingleL9>() == std::vector<Row>{{9, 1, 19, 0}});
  CHECK(irreps_visited<Unusual>() == std::vector<Row>{{3, 1, 7, 0}, {0, 2, 1, 1}, {3, 2, 7, 3}});

  // The first head of each visited irrep is the head table's first head of that irrep.
  int r = 0;
  specs::Scaled::for_each_irrep([&](auto irrep, int first) {
    CHECK(specs::Scaled::heads[first].irrep == r);
    CHECK(specs::Scaled::heads[first].l == decltype(irrep)::l);
    if (first > 0) CHECK(specs::Scaled::heads[first - 1].irrep == r - 1);
    ++r;
  });
  CHECK(r == 4);
}

TEST_CASE("irreps: specs::visit dispatches every name of math.md §1", "[irreps][specs]") {
  REQUIRE(specs::names.size() == math_md_table().size());
  for (std::size_t k = 0; k < specs::names.size(); ++k) {
    const Expected& want = math_md_table()[k];
    CAPTURE(want.name);
    CHECK(specs::names[k] == want.name);  // the order of math.md §1
    const auto got = specs::visit(want.name, [](auto spec) {
      using S = decltype(spec);
      std::vector<std::pair<int, int>> irreps;
      S::for_each_irrep([&](auto irrep, int) { irreps.emplace_back(decltype(irrep)::l, decltype(irrep)::heads); });
      return std::make_tuple(S::embed_dim, S::num_heads, irreps);
    });
    CHECK(std::get<0>(got) == want.embed_dim);
    CHECK(std::get<1>(got) == want.num_heads);
    CHECK(std::get<2>(got) == want.irreps);
  }
  // The visitor's return type passes through (here a label string).
  CHECK(specs::visit("higher-rank", [](auto spec) { return decltype(spec)::label(8); }) == ell + "3");
}

TEST_CASE("irreps: specs::visit rejects an unknown name naming the argument 'spec'", "[irreps][specs]") {
  for (const std::string bad : {"Upstream", "", "single-l10", "upstream ", "l9"}) {
    CAPTURE(bad);
    bool visited = false;
    REQUIRE_THROWS_AS(specs::visit(bad, [&](auto) { visited = true; }), gauge_attn::InvalidArgument);
    CHECK_FALSE(visited);
    try {
      specs::visit(bad, [](auto) {});
    } catch (const gauge_attn::InvalidArgument& e) {
      CHECK(e.argument() == "spec");
      const std::string what = e.what();
      CHECK(what.find("'spec'") != std::string::npos);
      CHECK(what.find("'" + bad + "'") != std::string::npos);  // the offending value
      CHECK(what.find("single-l9") != std::string::npos);      // and the known names
    }
  }
}
