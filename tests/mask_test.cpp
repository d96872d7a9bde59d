// Tests of gauge_attn/mask.hpp: the allowed keys of each query (causal j ≤ i, causal window
// i − W < j ≤ i, non-causal window |i − j| ≤ ⌊W/2⌋, the upstream mask_self of math.md §6, a valid
// length n < N) and the ALiBi logit bias slope·(i − j).
//
// Integer bookkeeping is compared exactly; logit_bias is one double multiplication and is compared
// to the same product written out (exact too).
#include <gauge_attn/mask.hpp>

#include <catch2/catch.hpp>

#include <random>
#include <vector>

namespace {

using gauge_attn::key_range;
using gauge_attn::KeyRange;
using gauge_attn::MaskSpec;

constexpr MaskSpec make(bool causal, bool mask_self, int window, double slope = 0) {
  MaskSpec m;
  m.causal = causal;
  m.mask_self = mask_self;
  m.window = window;
  m.alibi_slope = slope;
  return m;
}

/// The definition, pair by pair, before mask_self.
bool base_allowed(const MaskSpec& m, int i, int j, int n) {
  if (j < 0 || j >= n) return false;
  if (m.causal) {
    if (j > i) return false;
    if (m.window > 0 && !(i - m.window < j)) return false;
    return true;
  }
  if (m.window > 0) return (i > j ? i - j : j - i) <= m.window / 2;
  return true;
}

/// With mask_self: drop j = i unless it is the row's only key (math.md §6).
bool allowed(const MaskSpec& m, int i, int j, int n) {
  if (!base_allowed(m, i, j, n)) return false;
  if (m.mask_self && j == i) {
    for (int k = 0; k < n; ++k)
      if (k != i && base_allowed(m, i, k, n)) return false;
  }
  return true;
}

std::vector<int> keys_of(const KeyRange& r, int n) {
  std::vector<int> out;
  for (int j = 0; j < n; ++j)
    if (r.allows(j)) out.push_back(j);
  return out;
}

// key_range is constexpr (shared with the CUDA kernels).
static_assert(key_range(make(true, false, 0), 3, 10).end == 4, "causal row 3 ends after key 3");
static_assert(key_range(make(true, true, 0), 0, 10).excluded == -1, "row 0 keeps its only key");
static_assert(gauge_attn::logit_bias(make(false, false, 0, 0.5), 4, 1) == 1.5, "slope·(i − j)");

}  // namespace

TEST_CASE("mask: default MaskSpec allows every valid key", "[mask]") {
  const MaskSpec m;
  CHECK_FALSE(m.causal);
  CHECK_FALSE(m.mask_self);
  CHECK(m.window == 0);
  CHECK(m.alibi_slope == 0.0);
  for (int n : {1, 5, 17})
    for (int i = 0; i < n; ++i) {
      const KeyRange r = key_range(m, i, n);
      CAPTURE(n, i);
      CHECK(r.begin == 0);
      CHECK(r.end == n);
      CHECK(r.excluded == -1);
      CHECK(r.count() == n);
      CHECK_FALSE(r.allows(-1));
      CHECK_FALSE(r.allows(n));
    }
}

TEST_CASE("mask: causal rows allow exactly j <= i", "[mask]") {
  const int n = 9;
  for (int i = 0; i < n; ++i) {
    const KeyRange r = key_range(make(true, false, 0), i, n);
    std::vector<int> want;
    for (int j = 0; j <= i; ++j) want.push_back(j);
    CAPTURE(i);
    CHECK(keys_of(r, n) == want);
    CHECK(r.count() == i + 1);
  }
}

TEST_CASE("mask: causal window allows exactly i-W < j <= i", "[mask]") {
  const int n = 10;
  // W = 3: row 0 → {0}, row 1 → {0, 1}, row 5 → {3, 4, 5}, row 9 → {7, 8, 9}.
  CHECK(keys_of(key_range(make(true, false, 3), 0, n), n) == std::vector<int>{0});
  CHECK(keys_of(key_range(make(true, false, 3), 1, n), n) == std::vector<int>{0, 1});
  CHECK(keys_of(key_range(make(true, false, 3), 5, n), n) == std::vector<int>{3, 4, 5});
  CHECK(keys_of(key_range(make(true, false, 3), 9, n), n) == std::vector<int>{7, 8, 9});
  // W = 1: only the query itself; W ≥ N: plain causal.
  for (int i = 0; i < n; ++i) {
    CAPTURE(i);
    CHECK(keys_of(key_range(make(true, false, 1), i, n), n) == std::vector<int>{i});
    CHECK(key_range(make(true, false, n + 4), i, n).count() == i + 1);
  }
}

TEST_CASE("mask: non-causal window allows exactly |i-j| <= W/2", "[mask]") {
  const int n = 8;
  // W = 4 (half 2): row 0 → {0, 1, 2}, row 3 → {1..5}, row 7 → {5, 6, 7}.
  CHECK(keys_of(key_range(make(false, false, 4), 0, n), n) == std::vector<int>{0, 1, 2});
  CHECK(keys_of(key_range(make(false, false, 4), 3, n), n) == std::vector<int>{1, 2, 3, 4, 5});
  CHECK(keys_of(key_range(make(false, false, 4), 7, n), n) == std::vector<int>{5, 6, 7});
  // W = 5 rounds the half down (2), W = 1 leaves the query alone, W = 2 a neighbour each side.
  CHECK(keys_of(key_range(make(false, false, 5), 3, n), n) == std::vector<int>{1, 2, 3, 4, 5});
  CHECK(keys_of(key_range(make(false, false, 1), 3, n), n) == std::vector<int>{3});
  CHECK(keys_of(key_range(make(false, false, 2), 3, n), n) == std::vector<int>{2, 3, 4});
}

TEST_CASE("mask: mask_self excludes the diagonal except on rows with no other key", "[mask]") {
  const int n = 6;
  // Causal: row 0 has only itself and keeps it (upstream: row 0 attends to itself).
  const KeyRange r0 = key_range(make(true, true, 0), 0, n);
  CHECK(r0.excluded == -1);
  CHECK(r0.count() == 1);
  CHECK(r0.allows(0));
  for (int i = 1; i < n; ++i) {
    const KeyRange r = key_range(make(true, true, 0), i, n);
    std::vector<int> want;
    for (int j = 0; j < i; ++j) want.push_back(j);
    CAPTURE(i);
    CHECK(r.excluded == i);
    CHECK_FALSE(r.allows(i));
    CHECK(r.count() == i);
    CHECK(keys_of(r, n) == want);
  }
  // Causal window W = 1 leaves one key per row: nothing is excluded anywhere.
  for (int i = 0; i < n; ++i) CHECK(keys_of(key_range(make(true, true, 1), i, n), n) == std::vector<int>{i});
  // Non-causal: every row of n ≥ 2 loses its diagonal; n = 1 keeps it.
  CHECK(keys_of(key_range(make(false, true, 0), 2, n), n) == std::vector<int>{0, 1, 3, 4, 5});
  CHECK(keys_of(key_range(make(false, true, 0), 0, 1), 1) == std::vector<int>{0});
}

TEST_CASE("mask: a valid length n < N clips the keys to the first n tokens", "[mask]") {
  // N = 12 tokens of which n = 7 are valid.
  const int n = 7;
  for (int i = 0; i < n; ++i) {
    CAPTURE(i);
    CHECK(key_range(make(false, false, 0), i, n).end == n);
    CHECK(key_range(make(false, false, 0), i, n).count() == n);
    CHECK_FALSE(key_range(make(false, false, 0), i, n).allows(n));
    CHECK(key_range(make(true, false, 0), i, n).end == i + 1);  // causal rows never reach past i
  }
  // A non-causal window at the last valid row stops at n, not at i + W/2.
  CHECK(keys_of(key_range(make(false, false, 6), 6, n), 12) == std::vector<int>{3, 4, 5, 6});
  CHECK(keys_of(key_range(make(false, true, 6), 5, n), 12) == std::vector<int>{2, 3, 4, 6});
}

TEST_CASE("mask: key_range agrees with a brute-force enumeration for random options", "[mask]") {
  std::mt19937 rng(501);
  for (int trial = 0; trial < 300; ++trial) {
    const int N = 1 + int(rng() % 24);
    const int n = 1 + int(rng() % N);
    const MaskSpec m = make(rng() % 2, rng() % 2, (rng() % 3 == 0) ? 0 : int(rng() % (N + 3)));
    for (int i = 0; i < n; ++i) {
      const KeyRange r = key_range(m, i, n);
      int count = 0;
      for (int j = -2; j < N + 2; ++j) {
        const bool want = allowed(m, i, j, n);
        count += want ? 1 : 0;
        if (r.allows(j) != want) {
          CAPTURE(N, n, m.causal, m.mask_self, m.window, i, j, want);
          FAIL_CHECK("allows(j) disagrees with the definition");
        }
      }
      CAPTURE(N, n, m.causal, m.mask_self, m.window, i);
      CHECK(r.count() == count);
      CHECK(r.count() >= 1);  // every row has a key
      CHECK(r.begin >= 0);
      CHECK(r.end <= n);
    }
  }
}

TEST_CASE("mask: logit_bias is slope·(i - j)", "[mask]") {
  std::mt19937 rng(502);
  std::uniform_real_distribution<double> slope(-2.0, 2.0);
  for (int t = 0; t < 50; ++t) {
    const double s = slope(rng);
    const int i = int(rng() % 100), j = int(rng() % 100);
    const MaskSpec m = make(t % 2, false, 0, s);
    CAPTURE(s, i, j);
    CHECK(gauge_attn::logit_bias(m, i, j) == s * double(i - j));
    CHECK(gauge_attn::logit_bias(m, i, i) == 0.0);
  }
  // A positive slope raises keys in the past: (i − j) > 0 for j < i.
  CHECK(gauge_attn::logit_bias(make(true, false, 0, 0.25), 10, 2) == 2.0);
  CHECK(gauge_attn::logit_bias(make(true, false, 0, 0.25), 2, 10) == -2.0);
  CHECK(gauge_attn::logit_bias(MaskSpec{}, 7, 3) == 0.0);
}
