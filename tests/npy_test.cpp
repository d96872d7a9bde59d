// Tests of gauge_attn/npy.hpp: round trips, the upstream fixtures, every malformed-input
// check, a seeded mutation fuzz and a committed corpus of tricky files.
#include <gauge_attn/npy.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using gauge_attn::NpyArray;
using gauge_attn::NpyDtype;
using gauge_attn::NpyError;
using Shape = std::vector<std::size_t>;

#ifdef GAUGE_ATTN_FIXTURE_DIR
const std::string fixture_dir = GAUGE_ATTN_FIXTURE_DIR;
#else
const std::string fixture_dir = "../shared/fixtures/upstream_parity_small";
#endif

#ifdef GAUGE_ATTN_TEST_DATA_DIR
const std::string corpus_dir = std::string(GAUGE_ATTN_TEST_DATA_DIR) + "/npy";
#else
const std::string corpus_dir = "tests/data/npy";
#endif

/// A fresh directory under the system temp folder, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    for (int attempt = 0; attempt < 100; ++attempt) {
      path_ = fs::temp_directory_path() / ("gauge_attn_npy_" + std::to_string(rd()));
      if (fs::create_directory(path_)) return;
    }
    FAIL("cannot create a temporary directory");
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void spit(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::size_t product(const Shape& shape) {
  std::size_t n = 1;
  for (std::size_t d : shape) n *= d;
  return n;
}

/// An .npy file around `header` verbatim: padded with spaces to `align`, newline-ended,
/// with the preamble of `version` (1, 2 or 3).
std::string npy_file(const std::string& header, const std::string& data = "", int version = 1,
                     std::size_t align = 64) {
  const std::size_t prefix = version == 1 ? 10 : 12;
  std::string text = header;
  while ((prefix + text.size() + 1) % align != 0) text += ' ';
  text += '\n';
  std::string out("\x93NUMPY", 6);
  out += static_cast<char>(version);
  out += '\0';
  for (std::size_t k = 0; k < prefix - 8; ++k) {
    out += static_cast<char>((text.size() >> (8 * k)) & 0xff);
  }
  return out + text + data;
}

std::string f8_bytes(const std::vector<double>& values) {
  const std::string file = gauge_attn::encode_npy(values.data(), {values.size()});
  return file.substr(file.size() - 8 * values.size());
}

/// Header text of an encoded file (between the preamble and the data).
std::string header_of(const std::string& file) {
  const std::size_t prefix = file[6] == 1 ? 10 : 12;
  std::size_t len = 0;
  for (std::size_t k = 0; k < prefix - 8; ++k) {
    len |= std::size_t(static_cast<unsigned char>(file[8 + k])) << (8 * k);
  }
  return file.substr(prefix, len);
}

/// The same array in another format version (the header is re-wrapped, data unchanged).
std::string with_version(const std::string& file, int version) {
  const std::string header = header_of(file);
  const std::size_t prefix = file[6] == 1 ? 10 : 12;
  std::string trimmed = header;
  while (!trimmed.empty() && (trimmed.back() == ' ' || trimmed.back() == '\n')) trimmed.pop_back();
  return npy_file(trimmed, file.substr(prefix + header.size()), version);
}

NpyArray parse(const std::string& bytes, const std::string& name = "mem.npy") {
  // An exactly-sized heap copy, so the sanitizers see any read past the end.
  const std::vector<unsigned char> copy(bytes.begin(), bytes.end());
  return gauge_attn::parse_npy(copy.data(), copy.size(), name);
}

/// Expects parse_npy, and read_npy of the same bytes on disk, to throw NpyError naming
/// the file with a message containing `needle`.
void expect_error(const std::string& bytes, const std::string& needle) {
  INFO("expected an NpyError containing: " << needle);
  try {
    parse(bytes, "mem.npy");
    FAIL("parse_npy accepted the input");
  } catch (const NpyError& e) {
    CHECK_THAT(e.what(), Catch::Contains(needle));
    CHECK(e.argument() == "mem.npy");
  }
  TempDir dir;
  const std::string path = dir.file("case.npy");
  spit(path, bytes);
  try {
    gauge_attn::read_npy(path);
    FAIL("read_npy accepted the file");
  } catch (const NpyError& e) {
    CHECK_THAT(e.what(), Catch::Contains(needle));
    CHECK(e.argument() == path);
  }
}

const std::string f8_2x3_header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }";
const std::string six_doubles = f8_bytes({0.5, -1.0, 2.0, 3.25, -4.5, 5.0});

/// A header of float64 with the given dict body, wrapped around `data` (six doubles).
std::string f8_case(const std::string& header, const std::string& data = six_doubles) {
  return npy_file(header, data);
}

std::vector<double> random_values(std::mt19937_64& rng, std::size_t n) {
  // Never zero; magnitudes over many decades and both signs.
  std::uniform_real_distribution<double> exponent(-30.0, 30.0);
  std::bernoulli_distribution negative(0.5);
  std::vector<double> v(n);
  for (auto& x : v) x = (negative(rng) ? -1.0 : 1.0) * std::pow(10.0, exponent(rng));
  return v;
}

Shape random_shape(std::mt19937_64& rng) {
  std::uniform_int_distribution<std::size_t> rank(0, 4), dim(1, 6);
  Shape shape(rank(rng));
  for (auto& d : shape) d = dim(rng);
  return shape;
}

}  // namespace

TEST_CASE("npy round trip of float64 arrays of random shapes") {
  std::mt19937_64 rng(20240611);
  TempDir dir;
  for (int trial = 0; trial < 60; ++trial) {
    const Shape shape = random_shape(rng);
    const auto values = random_values(rng, product(shape));
    const std::string path = dir.file("a" + std::to_string(trial) + ".npy");
    gauge_attn::write_npy(path, values.data(), shape);
    const NpyArray a = gauge_attn::read_npy(path);
    REQUIRE(a.dtype == NpyDtype::float64);
    REQUIRE(a.shape == shape);
    REQUIRE(a.data == values);  // bit-exact: float64 is stored as is

    const std::string bytes = slurp(path);
    REQUIRE(bytes == gauge_attn::encode_npy(values.data(), shape));
    REQUIRE((bytes.size() - 8 * values.size()) % 64 == 0);  // data starts 64-byte aligned
    REQUIRE(bytes[bytes.size() - 8 * values.size() - 1] == '\n');
  }
}

TEST_CASE("npy round trip of float32 arrays of random shapes") {
  std::mt19937_64 rng(77);
  TempDir dir;
  for (int trial = 0; trial < 60; ++trial) {
    const Shape shape = random_shape(rng);
    const auto wide = random_values(rng, product(shape));
    std::vector<float> values(wide.begin(), wide.end());
    const std::string path = dir.file("a" + std::to_string(trial) + ".npy");
    gauge_attn::write_npy(path, values.data(), shape);
    const NpyArray a = gauge_attn::read_npy(path);
    REQUIRE(a.dtype == NpyDtype::float32);
    REQUIRE(a.shape == shape);
    REQUIRE(a.size() == values.size());
    for (std::size_t i = 0; i < values.size(); ++i) {
      REQUIRE(a.data[i] == static_cast<double>(values[i]));  // float -> double is exact
    }
    REQUIRE((slurp(path).size() - 4 * values.size()) % 64 == 0);
  }
}

TEST_CASE("npy writer and reader agree on scalars, empty arrays and other versions") {
  const double x = -2.5;
  const NpyArray scalar = parse(gauge_attn::encode_npy(&x, {}));
  CHECK(scalar.shape.empty());
  CHECK(scalar.data == std::vector<double>{-2.5});

  const float* none = nullptr;
  const NpyArray empty = parse(gauge_attn::encode_npy(none, {4, 0, 3}));
  CHECK(empty.shape == Shape{4, 0, 3});
  CHECK(empty.size() == 0);

  const std::vector<double> v{1.0, -2.0, 3.5, 1e-300, -1e300, 7.0};
  const std::string v1 = gauge_attn::encode_npy(v.data(), {3, 2});
  for (int version : {2, 3}) {
    const NpyArray a = parse(with_version(v1, version));
    CHECK(a.shape == Shape{3, 2});
    CHECK(a.data == v);
  }
}

TEST_CASE("npy writer reproduces np.save byte for byte") {
  // mu.npy was written by np.save; re-encoding what we read must give the same file.
  for (const char* name : {"mu.npy", "phi.npy", "sigma_full.npy", "full_exact_beta.npy"}) {
    const std::string path = fixture_dir + "/" + name;
    INFO(path);
    const std::string original = slurp(path);
    REQUIRE(!original.empty());
    const NpyArray a = gauge_attn::read_npy(path);
    CHECK(gauge_attn::encode_npy(a.data.data(), a.shape) == original);
  }
}

TEST_CASE("npy writer argument checks") {
  const std::vector<double> v{1.0, 2.0};
  CHECK_THROWS_AS(gauge_attn::encode_npy(static_cast<const double*>(nullptr), {2}),
                  gauge_attn::InvalidArgument);
  const std::size_t huge = std::size_t(1) << 62;
  CHECK_THROWS_WITH(gauge_attn::encode_npy(v.data(), {huge, 4}), Catch::Contains("overflows"));
  CHECK_THROWS_WITH(gauge_attn::encode_npy(v.data(), Shape(65, 1)), Catch::Contains("rank 65"));
  TempDir dir;
  const std::string path = dir.file("no/such/dir/x.npy");
  CHECK_THROWS_WITH(gauge_attn::write_npy(path, v.data(), {2}),
                    Catch::Contains("cannot open the file for writing"));
}

TEST_CASE("npy reads every upstream fixture") {
  INFO("fixture dir: " << fixture_dir);
  REQUIRE(fs::is_directory(fixture_dir));
  // Shapes from the fixture README: B = 1, N = 16, E = 19, 9 heads.
  const std::map<std::string, Shape> shapes{
      {"mu.npy", {1, 16, 19}},
      {"sigma_diag.npy", {1, 16, 19}},
      {"sigma_full.npy", {1, 16, 19, 19}},
      {"phi.npy", {1, 16, 3}},
      {"diag_exact_beta.npy", {1, 9, 16, 16}},
      {"diag_exact_kl.npy", {1, 9, 16, 16}},
      {"diag_exact_mu_out.npy", {1, 16, 19}},
      {"diag_exact_sigma_out.npy", {1, 16, 19}},
      {"diag_taylor_beta.npy", {1, 9, 16, 16}},
      {"diag_taylor_kl.npy", {1, 9, 16, 16}},
      {"diag_taylor_mu_out.npy", {1, 16, 19}},
      {"full_exact_beta.npy", {1, 9, 16, 16}},
      {"full_exact_kl.npy", {1, 9, 16, 16}},
      {"full_exact_mu_out.npy", {1, 16, 19}},
      {"full_exact_sigma_out.npy", {1, 16, 19, 19}},
  };
  std::map<std::string, NpyArray> loaded;
  for (const auto& entry : fs::directory_iterator(fixture_dir)) {
    if (entry.path().extension() != ".npy") continue;
    const std::string name = entry.path().filename().string();
    INFO(name);
    const NpyArray a = gauge_attn::read_npy(entry.path().string());
    CHECK(a.dtype == NpyDtype::float64);
    CHECK(a.size() == product(a.shape));
    CHECK(gauge_attn::all_finite(a));
    REQUIRE(shapes.count(name) == 1);
    CHECK(a.shape == shapes.at(name));
    loaded.emplace(name, a);
  }
  REQUIRE(loaded.size() == shapes.size());

  // Values as numpy prints them (repr is round-trip exact).
  CHECK(loaded["mu.npy"].data.front() == 0.0006150766787412871);
  CHECK(loaded["mu.npy"].data.back() == -0.2896960252216981);
  CHECK(loaded["phi.npy"].data.front() == -0.9020060025849841);
  CHECK(loaded["phi.npy"].data.back() == 0.2701804261475322);

  const auto& sigma = loaded["sigma_full.npy"].data;  // (1, 16, 19, 19), symmetric
  for (std::size_t t = 0; t < 16; ++t) {
    for (std::size_t r = 0; r < 19; ++r) {
      CHECK(sigma[(t * 19 + r) * 19 + r] > 0.0);
      for (std::size_t c = 0; c < r; ++c) {
        CHECK(sigma[(t * 19 + r) * 19 + c] == sigma[(t * 19 + c) * 19 + r]);
      }
    }
  }

  // beta (1, 9, N, N): the upstream clamps every weight to >= 1e-8 after the softmax, so a
  // row of N = 16 sums to 1 plus at most 15 clamped entries' 1e-8 each: |sum - 1| <= 16e-8.
  // The causal mask leaves future entries (j > i) at exactly the clamp value.
  for (const char* name : {"full_exact_beta.npy", "diag_exact_beta.npy", "diag_taylor_beta.npy"}) {
    INFO(name);
    const auto& beta = loaded[name].data;
    for (std::size_t row = 0; row < 9 * 16; ++row) {
      const std::size_t i = row % 16;
      double sum = 0.0;
      for (std::size_t j = 0; j < 16; ++j) {
        const double b = beta[row * 16 + j];
        sum += b;
        CHECK((b >= 1e-8 && b <= 1.0));
        if (j > i) CHECK(b == 1e-8);
      }
      CHECK(std::abs(sum - 1.0) <= 16e-8);
    }
  }
}

TEST_CASE("npy accepts valid header variants") {
  const std::vector<double> six{0.5, -1.0, 2.0, 3.25, -4.5, 5.0};
  const std::vector<std::string> headers{
      f8_2x3_header,
      "{'shape': (2, 3), 'fortran_order': False, 'descr': '<f8'}",
      "{\"descr\": \"<f8\", \"fortran_order\": False, \"shape\": (2, 3)}",
      " \t{ 'descr' :'<f8' ,\n'fortran_order':False,'shape':( 2 ,\t3 , ) , }\t",
      "{'descr': '<f8', 'fortran_order': False, 'shape': (2L, 3L), }",
      "{'descr': '<f8', 'fortran_order': False, 'shape': (+2, 3)}",
      "{'descr': '<f8', 'fortran_order': False, 'shape': ((2), 3)}",  // (2) is just 2
  };
  for (const auto& header : headers) {
    INFO(header);
    for (int version : {1, 2, 3}) {
      const NpyArray a = parse(npy_file(header, six_doubles, version));
      CHECK(a.shape == Shape{2, 3});
      CHECK(a.data == six);
    }
    // Older numpy aligned the data to 16 bytes only.
    CHECK(parse(npy_file(header, six_doubles, 1, 16)).data == six);
  }

  const NpyArray vec = parse(npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)}",
                                      std::string("\x00\x00\xc0\x3f", 4)));
  CHECK(vec.dtype == NpyDtype::float32);
  CHECK(vec.shape == Shape{1});
  CHECK(vec.data == std::vector<double>{1.5});

  const NpyArray scalar =
      parse(npy_file("{'descr': '<f8', 'fortran_order': False, 'shape': ()}", f8_bytes({-3.0})));
  CHECK(scalar.shape.empty());
  CHECK(scalar.data == std::vector<double>{-3.0});

  // A zero dimension makes the array empty whatever the other dimensions are.
  const NpyArray empty = parse(npy_file(
      "{'descr': '<f8', 'fortran_order': False, 'shape': (9223372036854775807, 0, 5)}"));
  CHECK(empty.shape == Shape{9223372036854775807u, 0, 5});
  CHECK(empty.size() == 0);

  if (gauge_attn::detail::host_is_little_endian()) {
    CHECK(parse(npy_file("{'descr': '=f8', 'fortran_order': False, 'shape': (2, 3)}",
                         six_doubles))
              .data == six);
  }
}

TEST_CASE("npy rejects missing and unreadable files") {
  TempDir dir;
  CHECK_THROWS_WITH(gauge_attn::read_npy(dir.file("absent.npy")), Catch::Contains("no such file"));
  CHECK_THROWS_AS(gauge_attn::read_npy(dir.file("absent.npy")), NpyError);
  fs::create_directory(dir.file("sub.npy"));
  CHECK_THROWS_WITH(gauge_attn::read_npy(dir.file("sub.npy")), Catch::Contains("is a directory"));
  // Unreadable: only testable where permissions bind (not as root).
  const std::string locked = dir.file("locked.npy");
  spit(locked, npy_file(f8_2x3_header, six_doubles));
  fs::permissions(locked, fs::perms::none);
  if (!std::ifstream(locked)) {
    CHECK_THROWS_WITH(gauge_attn::read_npy(locked),
                      Catch::Contains("cannot open the file for reading"));
  }
  fs::permissions(locked, fs::perms::owner_all);
  if (fs::exists("/dev/null")) {
    CHECK_THROWS_WITH(gauge_attn::read_npy("/dev/null"), Catch::Contains("not a regular file"));
  }
  try {
    gauge_attn::read_npy(dir.file("absent.npy"));
  } catch (const NpyError& e) {
    CHECK(e.argument() == dir.file("absent.npy"));  // the path is the argument's name
  }
}

TEST_CASE("npy rejects a bad preamble") {
  const std::string good = npy_file(f8_2x3_header, six_doubles);
  expect_error("", "empty file");
  expect_error("hello, world\n", "bad magic");
  expect_error(std::string("\x93NUMPZ\x01\x00", 8) + good.substr(8), "bad magic");
  expect_error("\x93NUX", "bad magic");  // short, but already wrong
  expect_error("\x93NUM", "truncated preamble");
  expect_error(good.substr(0, 7), "truncated preamble");
  expect_error(good.substr(0, 9), "truncated preamble");
  expect_error(std::string("\x93NUMPY\x02\x00\x10\x00\x00", 11), "truncated preamble");

  std::string v = good;
  v[6] = 4;
  expect_error(v, "unsupported .npy format version 4.0");
  v[6] = 0;
  expect_error(v, "unsupported .npy format version 0.0");
  v[6] = 1;
  v[7] = 1;
  expect_error(v, "unsupported .npy format version 1.1");
}

TEST_CASE("npy rejects a header length beyond the file") {
  std::string v1 = npy_file(f8_2x3_header, six_doubles);
  v1[8] = '\xff';
  v1[9] = '\x00';
  expect_error(v1, "header length 255 goes beyond the end of the file (166 bytes follow");
  std::string v2 = npy_file(f8_2x3_header, six_doubles, 2);
  v2[8] = v2[9] = v2[10] = v2[11] = '\xff';
  expect_error(v2, "header length 4294967295 goes beyond the end of the file");
  // Within the file, but beyond any sane header: a lying length costs no big allocation.
  std::string big = npy_file(f8_2x3_header, std::string(std::size_t(3) << 20, ' '), 2);
  big[8] = big[9] = '\0';
  big[10] = '\x20';  // 2 MiB
  expect_error(big, "exceeds the limit");
}

TEST_CASE("npy rejects a header that is not a well-formed dict") {
  expect_error(f8_case(""), "header is not a dict literal");
  expect_error(f8_case("   "), "header is not a dict literal");
  expect_error(f8_case("['<f8', False, (2, 3)]"), "header is not a dict literal");
  expect_error(f8_case("('<f8', False, (2, 3))"), "header is not a dict literal");
  expect_error(f8_case("{'descr' '<f8', 'fortran_order': False, 'shape': (2, 3)}"),
               "expected ':'");
  expect_error(f8_case("{'descr': '<f8, 'fortran_order': False, 'shape': (2, 3)}"),
               "malformed header");
  expect_error(f8_case("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3)"),
               "expected ',' or '}'");
  expect_error(f8_case("{'descr': '<f8' 'fortran_order': False, 'shape': (2, 3)}"),
               "expected ',' or '}'");
  expect_error(f8_case("{descr: '<f8', 'fortran_order': False, 'shape': (2, 3)}"),
               "expected a quoted key");
  expect_error(f8_case("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3)} x"),
               "unexpected text after the header dict");
  expect_error(f8_case("{'descr': '<f8',, 'fortran_order': False, 'shape': (2, 3)}"),
               "expected a quoted key");
  expect_error(f8_case("{'descr': '<f8', 'fortran_order': Nope, 'shape': (2, 3)}"),
               "unsupported value 'Nope'");
  expect_error(f8_case("{'descr': '<\\x66\\x38', 'fortran_order': False, 'shape': (2, 3)}"),
               "backslash escapes");
  expect_error(f8_case("{'descr': '<f8', 'fortran_order': False, 'shape': (2.0, 3)}"),
               "only plain decimal integers");
  expect_error(f8_case("{'descr': '<f8', 'fortran_order': False, 'shape': " +
                       std::string(40, '(') + "2" + std::string(40, ')') + "}"),
               "nest too deeply");
  expect_error(f8_case("{'descr': '<f8', 'fortran_order': False, 'shape': {'a': 1}}"),
               "unsupported value");
}

TEST_CASE("npy rejects missing, unexpected and repeated keys") {
  expect_error(f8_case("{'fortran_order': False, 'shape': (2, 3)}"), "lacks the key 'descr'");
  expect_error(f8_case("{'descr': '<f8', 'shape': (2, 3)}"), "lacks the key 'fortran_order'");
  expect_error(f8_case("{'descr': '<f8', 'fortran_order': False}"), "lacks the key 'shape'");
  expect_error(f8_case("{}"), "lacks the key 'descr'");
  expect_error(f8_case("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), 'x': 1}"),
               "unexpected key 'x'");
  expect_error(f8_case("{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (2, 3)}"),
               "repeats the key 'descr'");
}

TEST_CASE("npy rejects unsupported dtypes, naming them") {
  for (const char* descr :
       {"<i8", ">f8", ">f4", "|f4", "<f2", "<c16", "float64", "f8", "<f8 ", ""}) {
    INFO(descr);
    expect_error(f8_case(std::string("{'descr': '") + descr +
                         "', 'fortran_order': False, 'shape': (2, 3)}"),
                 std::string("unsupported dtype '") + descr + "'");
  }
  expect_error(f8_case("{'descr': [('x', '<f8')], 'fortran_order': False, 'shape': (2, 3)}"),
               "structured dtype");
  expect_error(f8_case("{'descr': 8, 'fortran_order': False, 'shape': (2, 3)}"),
               "descr is not a string");
  // Untrusted text is quoted safely in the message.
  expect_error(f8_case("{'descr': '\x01\xfe', 'fortran_order': False, 'shape': (2, 3)}"),
               "unsupported dtype '\\x01\\xfe'");
}

TEST_CASE("npy rejects Fortran order") {
  expect_error(f8_case("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3)}"),
               "fortran_order is True");
  expect_error(f8_case("{'descr': '<f8', 'fortran_order': 0, 'shape': (2, 3)}"),
               "fortran_order is not True or False");
}

TEST_CASE("npy rejects bad shapes") {
  const auto with_shape = [](const std::string& shape) {
    return f8_case("{'descr': '<f8', 'fortran_order': False, 'shape': " + shape + "}");
  };
  expect_error(with_shape("(2, -3)"), "negative dimension -3");
  expect_error(with_shape("(-1,)"), "negative dimension -1");
  expect_error(with_shape("[2, 3]"), "shape is not a tuple");
  expect_error(with_shape("(6)"), "shape is not a tuple");  // parenthesised int, as in Python
  expect_error(with_shape("6"), "shape is not a tuple");
  expect_error(with_shape("('2', 3)"), "not an integer");
  expect_error(with_shape("(None,)"), "not an integer");
  expect_error(with_shape("(9223372036854775808,)"),
               "dimension 9223372036854775808 in shape is too large");  // > PTRDIFF_MAX
  expect_error(with_shape("(" + std::string(300, '9') + ",)"), "too large");
  expect_error(with_shape("(4611686018427387904, 4611686018427387904)"), "too many elements");
  expect_error(with_shape("(65536, 65536, 65536, 65536)"), "too many elements");
  std::string rank65 = "(";
  for (int i = 0; i < 65; ++i) rank65 += "1, ";
  expect_error(with_shape(rank65 + ")"), "rank 65");
  // A huge but representable shape is refused by the size check before any allocation.
  expect_error(with_shape("(1000000000000,)"),
               "truncated data: shape (1000000000000,) of float64 needs 8000000000000 bytes");
}

TEST_CASE("npy rejects truncated data and trailing garbage") {
  expect_error(npy_file(f8_2x3_header, six_doubles.substr(0, 45)),
               "truncated data: shape (2, 3) of float64 needs 48 bytes after the header, "
               "the file has 45");
  expect_error(npy_file(f8_2x3_header, ""), "needs 48 bytes after the header, the file has 0");
  expect_error(npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}", six_doubles),
               "trailing garbage: 24 bytes follow the 24 data bytes of shape (2, 3) of float32");
  expect_error(npy_file(f8_2x3_header, six_doubles + "\n"), "trailing garbage: 1 bytes follow");
  const std::string v3 = npy_file(f8_2x3_header, six_doubles, 3);
  expect_error(v3.substr(0, v3.size() - 10), "needs 48 bytes after the header, the file has 38");
}

TEST_CASE("npy finiteness helpers") {
  NpyArray a;
  a.shape = {3};
  a.data = {1.0, -2.0, 3.0};
  CHECK(gauge_attn::all_finite(a));
  CHECK(gauge_attn::first_non_finite(a) == 3);
  a.data[1] = std::numeric_limits<double>::quiet_NaN();
  CHECK_FALSE(gauge_attn::all_finite(a));
  CHECK(gauge_attn::first_non_finite(a) == 1);
  a.data[1] = 0.0;
  a.data[2] = -std::numeric_limits<double>::infinity();
  CHECK(gauge_attn::first_non_finite(a) == 2);
  // The reader itself passes NaN/Inf through: the caller checks with its own names.
  const double bad[2] = {std::numeric_limits<double>::quiet_NaN(), 1.0};
  CHECK(gauge_attn::first_non_finite(parse(gauge_attn::encode_npy(bad, {2}))) == 0);
}

TEST_CASE("npy survives seeded random mutations of valid files") {
  // Seeds: several dtypes, versions and shapes, including scalars and empty arrays.
  std::vector<std::string> seeds;
  {
    std::mt19937_64 rng(5);
    const std::vector<Shape> shapes{{}, {1}, {0}, {7}, {2, 3}, {1, 2, 2}, {3, 0, 2}, {2, 1, 1, 2}};
    for (const auto& shape : shapes) {
      const auto v = random_values(rng, product(shape));
      const std::vector<float> f(v.begin(), v.end());
      const std::string f8 = gauge_attn::encode_npy(v.data(), shape);
      const std::string f4 = gauge_attn::encode_npy(f.data(), shape);
      seeds.insert(seeds.end(), {f8, f4, with_version(f8, 2), with_version(f4, 3)});
    }
    seeds.push_back(npy_file(" {\"shape\":(2,3,),'fortran_order' :False,\t'descr':'=f8',}",
                             six_doubles, 2));
    seeds.push_back(npy_file("{'descr': '<f8', 'fortran_order': False, 'shape': (2L, 3L)}",
                             six_doubles, 1, 16));
  }
  // Tokens spliced into headers, chosen to reach the deeper checks.
  const std::vector<std::string> tokens{
      "(", ")", "[", "]", "{", "}", ",", ":", "'", "\"", " ", "\n", "\t", "-", "+", "L", "0",
      "1", "9", "()", "(1,)", "-1", "True", "False", "None", "'<f4'", "'<i8'", "'>f8'",
      "'shape'", "'descr'", "'fortran_order'", "18446744073709551616", "9223372036854775807",
      "4294967296", "\\", "\x93", std::string(1, '\0')};

  std::mt19937_64 rng(0x6e7079);  // "npy"
  auto uniform = [&rng](std::size_t n) {  // in [0, n)
    return n == 0 ? std::size_t(0) : std::uniform_int_distribution<std::size_t>(0, n - 1)(rng);
  };
  const int mutations = 24000;
  int parsed = 0, rejected = 0, failures = 0, cross_checked = 0;
  std::string first_failure;
  std::set<std::string> error_kinds;  // message up to its first number or quote
  TempDir dir;

  for (int iter = 0; iter < mutations; ++iter) {
    std::string bytes = seeds[uniform(seeds.size())];
    const std::size_t edits = uniform(4) == 0 ? 2 + uniform(3) : 1;
    for (std::size_t e = 0; e < edits; ++e) {
      const std::size_t at = uniform(bytes.size() + 1);
      switch (uniform(10)) {
        case 0:  // flip a bit
          if (!bytes.empty()) bytes[at % bytes.size()] ^= static_cast<char>(1u << uniform(8));
          break;
        case 1:  // overwrite a byte
          if (!bytes.empty()) bytes[at % bytes.size()] = static_cast<char>(uniform(256));
          break;
        case 2:  // truncate
          bytes.resize(at);
          break;
        case 3:  // insert random bytes
          for (std::size_t k = 1 + uniform(8); k > 0; --k) {
            bytes.insert(bytes.begin() + static_cast<std::ptrdiff_t>(uniform(bytes.size() + 1)),
                         static_cast<char>(uniform(256)));
          }
          break;
        case 4:  // erase a range
          bytes.erase(at, 1 + uniform(16));
          break;
        case 5:  // corrupt the header length field
          if (bytes.size() >= 12) bytes[8 + uniform(4)] = static_cast<char>(uniform(256));
          break;
        default: {  // splice a token into the header and re-wrap it with a correct length
          if (bytes.size() < 12 || (bytes[6] != 1 && bytes[6] != 2 && bytes[6] != 3)) break;
          const std::size_t prefix = bytes[6] == 1 ? 10 : 12;
          std::string header = header_of(bytes);
          if (prefix + header.size() > bytes.size()) break;
          const std::string data = bytes.substr(prefix + header.size());
          const std::size_t pos = uniform(header.size() + 1);
          const std::size_t cut = uniform(3) == 0 ? uniform(4) : 0;
          header.replace(pos, cut, tokens[uniform(tokens.size())]);
          const int version = uniform(4) == 0 ? static_cast<int>(1 + uniform(3)) : bytes[6];
          bytes = npy_file(header, data, version, uniform(2) == 0 ? 64 : 1);
          break;
        }
      }
    }

    // A fresh file each time: rewriting one file in place makes ext4 flush it on close.
    const std::string path = dir.file("fuzz" + std::to_string(iter) + ".npy");
    std::string outcome;
    try {
      const NpyArray a = parse(bytes, path);
      ++parsed;
      if (a.size() != product(a.shape)) outcome = "inconsistent array";
      outcome += "ok";
      // Some of the time, the file path must give exactly the same result.
      if (iter % 100 == 0) {
        spit(path, bytes);
        const NpyArray b = gauge_attn::read_npy(path);
        ++cross_checked;
        if (b.shape != a.shape || b.dtype != a.dtype || b.data.size() != a.data.size() ||
            !std::equal(a.data.begin(), a.data.end(), b.data.begin(),
                        [](double x, double y) { return x == y || (x != x && y != y); })) {
          outcome = "read_npy differs from parse_npy";
        }
      }
    } catch (const NpyError& e) {
      ++rejected;
      outcome = "error";
      const std::string message = e.what();
      const std::string detail = message.substr(message.find("': ") + 3);
      error_kinds.insert(detail.substr(0, detail.find_first_of(":('0123456789")));
      if (iter % 100 == 0) {
        spit(path, bytes);
        ++cross_checked;
        try {
          gauge_attn::read_npy(path);
          outcome = "read_npy accepted what parse_npy refused";
        } catch (const NpyError& e2) {
          if (std::string(e.what()) != e2.what()) {
            outcome = std::string("messages differ: ") + e2.what();
          }
        }
      }
    } catch (const std::exception& e) {
      outcome = std::string("foreign exception: ") + e.what();
    }
    if (outcome != "ok" && outcome != "error") {
      if (failures++ == 0) first_failure = "mutation " + std::to_string(iter) + ": " + outcome;
    }
  }
  INFO(first_failure);
  CHECK(failures == 0);
  CHECK(parsed + rejected == mutations);
  CHECK(cross_checked >= 200);
  // Both outcomes must be common, or the mutations are not exercising the parser.
  CHECK(parsed > mutations / 50);
  CHECK(rejected > mutations / 2);
  CHECK(error_kinds.size() >= 12);  // from magic to trailing garbage, not one check over and over
}

TEST_CASE("npy corpus of tricky files") {
  struct Expected {
    Shape shape;               // when the file is valid
    NpyDtype dtype;
    std::vector<double> head;  // its first values
    std::string error;         // else: a substring of the NpyError message
  };
  const auto ok = [](Shape shape, NpyDtype dtype, std::vector<double> head) {
    return Expected{std::move(shape), dtype, std::move(head), ""};
  };
  const auto error = [](std::string message) {
    return Expected{{}, NpyDtype::float64, {}, std::move(message)};
  };
  const auto f8 = NpyDtype::float64;
  const auto f4 = NpyDtype::float32;
  // tests/data/npy/make_corpus.py writes these; numpy loads the valid ones the same way.
  std::map<std::string, Expected> corpus{
      {"v1_f8_2x3.npy", ok({2, 3}, f8, {0.25, -1.5, 3.0, 1e-300, -0.0, 6.5e10})},
      {"v2_f4_3.npy", ok({3}, f4, {1.5, -2.25, static_cast<double>(1e-3f)})},
      {"v3_f8_2x2.npy", ok({2, 2}, f8, {1.0, 2.0, 3.0, 4.0})},
      {"scalar_f8.npy", ok({}, f8, {-2.5})},
      {"empty_f4_0x3.npy", ok({0, 3}, f4, {})},
      {"odd_header.npy", ok({2, 3}, f8, {0.25, -1.5})},
      {"py2_long_dims.npy", ok({2, 1}, f8, {7.0, -8.0})},
      {"align16_header.npy", ok({1}, f8, {9.0})},
      {"native_f4.npy", gauge_attn::detail::host_is_little_endian()
                            ? ok({2}, f4, {0.5, 4.0})
                            : error("unsupported dtype '=f4'")},
      {"truncated_data.npy", error("truncated data: shape (2, 3) of float64 needs 48 bytes")},
      {"trailing_garbage.npy", error("trailing garbage: 1 bytes")},
      {"truncated_preamble.npy", error("truncated preamble")},
      {"empty.npy", error("empty file")},
      {"bad_magic.npy", error("bad magic")},
      {"version_4.npy", error("unsupported .npy format version 4.0")},
      {"header_beyond_file.npy", error("goes beyond the end of the file")},
      {"fortran_order.npy", error("fortran_order is True")},
      {"big_endian_f8.npy", error("unsupported dtype '>f8'")},
      {"int64.npy", error("unsupported dtype '<i8'")},
      {"structured.npy", error("structured dtype")},
      {"negative_dim.npy", error("negative dimension -3")},
      {"overflow_shape.npy", error("too many elements")},
      {"missing_shape.npy", error("lacks the key 'shape'")},
      {"not_a_dict.npy", error("header is not a dict literal")},
  };

  INFO("corpus dir: " << corpus_dir);
  REQUIRE(fs::is_directory(corpus_dir));
  std::set<std::string> seen;
  for (const auto& entry : fs::directory_iterator(corpus_dir)) {
    if (entry.path().extension() != ".npy") continue;
    const std::string name = entry.path().filename().string();
    INFO(name);
    CHECK(fs::file_size(entry.path()) < 2048);
    REQUIRE(corpus.count(name) == 1);  // every corpus file has an expected outcome
    seen.insert(name);
    const Expected& want = corpus.at(name);
    if (want.error.empty()) {
      const NpyArray a = gauge_attn::read_npy(entry.path().string());
      CHECK(a.shape == want.shape);
      CHECK(a.dtype == want.dtype);
      REQUIRE(a.size() >= want.head.size());
      const auto head_end = a.data.begin() + static_cast<std::ptrdiff_t>(want.head.size());
      CHECK(std::vector<double>(a.data.begin(), head_end) == want.head);
    } else {
      CHECK_THROWS_AS(gauge_attn::read_npy(entry.path().string()), NpyError);
      CHECK_THROWS_WITH(gauge_attn::read_npy(entry.path().string()), Catch::Contains(want.error));
    }
  }
  CHECK(seen.size() == corpus.size());
}
