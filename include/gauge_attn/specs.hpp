// gauge_attn/specs.hpp: the five specs named in the upstream note (math.md §1), and a
// run-time dispatch from a name to its compile-time instantiation.
#pragma once

#include <array>
#include <string>
#include <string_view>

#include "error.hpp"
#include "irreps.hpp"

namespace gauge_attn::specs {

using Upstream = IrrepSpec<Irrep<0, 5>, Irrep<1, 3>, Irrep<2, 1>>;                     // E = 19, 9 heads
using MoreTensor = IrrepSpec<Irrep<0, 2>, Irrep<1, 2>, Irrep<2, 4>>;                   // E = 28, 8 heads
using HigherRank = IrrepSpec<Irrep<1, 4>, Irrep<2, 3>, Irrep<3, 2>>;                   // E = 41, 9 heads
using Scaled = IrrepSpec<Irrep<0, 10>, Irrep<1, 10>, Irrep<2, 8>, Irrep<3, 4>>;        // E = 108, 32 heads
using SingleL9 = IrrepSpec<Irrep<9, 1>>;                                               // E = 19, 1 head

/// The names the study tool and the examples accept, in the order of math.md §1.
inline constexpr std::array<std::string_view, 5> names = {"upstream", "more-tensor", "higher-rank", "scaled",
                                                          "single-l9"};

/// Calls f(Spec{}) with the named spec; throws InvalidArgument for an unknown name.
template <class F>
decltype(auto) visit(std::string_view name, F&& f) {
  if (name == "upstream") return f(Upstream{});
  if (name == "more-tensor") return f(MoreTensor{});
  if (name == "higher-rank") return f(HigherRank{});
  if (name == "scaled") return f(Scaled{});
  if (name == "single-l9") return f(SingleL9{});
  throw InvalidArgument("spec", detail::str("unknown spec name '", name,
                                            "' (known: upstream, more-tensor, higher-rank, scaled, single-l9)"));
}

}  // namespace gauge_attn::specs
