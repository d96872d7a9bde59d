// gauge_attn/irreps.hpp: compile-time irrep specs (math.md §1).
//
// A spec is a list of (ℓ, heads, dim = 2ℓ+1). Heads are laid out in spec order, each a
// contiguous slice of the embedding of width dim:
//   IrrepSpec<Irrep<0,5>, Irrep<1,3>, Irrep<2,1>>  ->  E = 19, 9 heads, offsets 0..4, 5, 8, 11, 14.
#pragma once

#include <array>
#include <string>
#include <type_traits>
#include <utility>

namespace gauge_attn {

/// `Heads` heads of the real spin-L irrep of SO(3), each of dimension Dim = 2L+1.
template <int L, int Heads, int Dim = 2 * L + 1>
struct Irrep {
  static_assert(L >= 0, "gauge_attn::Irrep<L, Heads, Dim>: the spin L must be >= 0");
  static_assert(Heads > 0, "gauge_attn::Irrep<L, Heads, Dim>: Heads must be at least 1");
  static_assert(Dim == 2 * L + 1,
                "gauge_attn::Irrep<L, Heads, Dim>: Dim must equal 2L+1, the dimension of the spin-L irrep");
  static constexpr int l = L;
  static constexpr int heads = Heads;
  static constexpr int dim = Dim;
};

/// Where one head lives in the embedding.
struct HeadInfo {
  int l = 0;       // spin
  int dim = 0;     // 2l+1
  int offset = 0;  // first embedding index of the head
  int irrep = 0;   // index of its Irrep in the spec
};

/// "ℓ0", "ℓ1", …: the label the upstream project prints as `Head 8 (ℓ2)`.
inline std::string irrep_label(int l) { return "\u2113" + std::to_string(l); }

namespace detail {
template <class T>
struct is_irrep : std::false_type {};
template <int L, int H, int D>
struct is_irrep<Irrep<L, H, D>> : std::true_type {};
}  // namespace detail

/// A compile-time list of irreps; everything about the layout is derived at compile time.
template <class... Irreps>
struct IrrepSpec {
  static_assert(sizeof...(Irreps) > 0, "gauge_attn::IrrepSpec<...>: a spec needs at least one Irrep");
  static_assert((detail::is_irrep<Irreps>::value && ...),
                "gauge_attn::IrrepSpec<...>: every argument must be a gauge_attn::Irrep<L, Heads>");

  static constexpr int num_irreps = static_cast<int>(sizeof...(Irreps));
  using spins = std::integer_sequence<int, Irreps::l...>;  // ℓ of each Irrep, in spec order
  static constexpr int num_heads = (Irreps::heads + ...);
  static constexpr int embed_dim = ((Irreps::heads * Irreps::dim) + ...);
  static constexpr int max_l = [] {
    int m = 0;
    for (int l : {Irreps::l...}) m = l > m ? l : m;
    return m;
  }();

 private:
  static constexpr std::array<HeadInfo, num_heads> make_heads() {
    std::array<HeadInfo, num_heads> out{};
    constexpr int ls[] = {Irreps::l...};
    constexpr int hs[] = {Irreps::heads...};
    int h = 0, offset = 0;
    for (int r = 0; r < num_irreps; ++r)
      for (int k = 0; k < hs[r]; ++k, ++h) {
        out[h] = HeadInfo{ls[r], 2 * ls[r] + 1, offset, r};
        offset += 2 * ls[r] + 1;
      }
    return out;
  }

 public:
  /// heads[h]: spin, dim, offset and irrep index of head h.
  static constexpr std::array<HeadInfo, num_heads> heads = make_heads();
  static constexpr HeadInfo head(int h) { return heads[h]; }
  static std::string label(int h) { return irrep_label(heads[h].l); }

  /// Calls f(irrep, first_head) once per Irrep of the spec, in spec order, with `irrep`
  /// a value of the Irrep type so that f can use decltype(irrep)::l as a constant.
  template <class F>
  static void for_each_irrep(F&& f) {
    int first = 0;
    ((f(Irreps{}, first), first += Irreps::heads), ...);
  }
};

}  // namespace gauge_attn
