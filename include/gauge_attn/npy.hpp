// gauge_attn/npy.hpp: reading and writing NumPy .npy files (float32 / float64, C order).
//
// The reader takes untrusted files: every malformed input throws NpyError naming the file
// and the problem, nothing is read out of bounds, and nothing is allocated before the
// bytes it stands for are known to exist. Values are not checked for NaN/Inf here (the
// caller knows the argument's name); all_finite / first_non_finite help with that.
#pragma once

#include <gauge_attn/error.hpp>

#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace gauge_attn {

/// The element type as stored in the file; values are always handed out as double.
enum class NpyDtype { float32, float64 };

inline const char* dtype_name(NpyDtype dtype) {
  return dtype == NpyDtype::float32 ? "float32" : "float64";
}

/// A loaded array. `data` holds size() = product(shape) values in C order; a scalar has
/// shape () and one value.
struct NpyArray {
  std::vector<std::size_t> shape;
  std::vector<double> data;
  NpyDtype dtype = NpyDtype::float64;

  std::size_t size() const { return data.size(); }
  std::size_t rank() const { return shape.size(); }
};

/// Thrown for any file that is missing, unreadable or not a supported .npy file; the
/// argument is the file's path (or the name given to parse_npy).
class NpyError : public InvalidArgument {
 public:
  NpyError(const std::string& file, const std::string& detail) : InvalidArgument(file, detail) {}
};

namespace detail {

static_assert(std::numeric_limits<double>::is_iec559 && std::numeric_limits<float>::is_iec559,
              ".npy float32/float64 are IEEE 754; this host's float types must be too");

// numpy 2's NPY_MAXDIMS; numpy cannot make an array of higher rank either.
inline constexpr std::size_t npy_max_rank = 64;
// A float header of rank 64 takes under 2 KiB; the cap only bounds what a corrupt
// header length can make us read.
inline constexpr std::size_t npy_max_header_bytes = std::size_t(1) << 20;
// Nesting in the header dict; only a structured dtype nests at all, and deep nesting
// would otherwise recurse without bound.
inline constexpr int npy_max_nesting = 16;
// numpy's alignment of the data start.
inline constexpr std::size_t npy_align = 64;
inline constexpr std::size_t npy_magic_len = 6;
inline constexpr char npy_magic[] = "\x93NUMPY";

constexpr bool host_is_little_endian() {
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__)
  return __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;
#elif defined(_WIN32)
  return true;
#else
  return false;  // unknown: '=' (native order) is then refused rather than guessed
#endif
}

/// Untrusted text made safe to quote in a message: non-printables escaped, length capped.
inline std::string npy_quote(const std::string& s, std::size_t max_len = 40) {
  static const char hex[] = "0123456789abcdef";
  std::string out = "'";
  for (std::size_t i = 0; i < s.size() && i < max_len; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  if (s.size() > max_len) out += "...";
  return out + "'";
}

inline std::string npy_shape_string(const std::vector<std::size_t>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + (shape.size() == 1 ? ",)" : ")");
}

inline std::size_t npy_itemsize(NpyDtype dtype) { return dtype == NpyDtype::float32 ? 4 : 8; }

/// The fixed part before the header: magic, version, header length.
struct NpyPreamble {
  unsigned major = 0;
  std::size_t header_offset = 0;  // 10 for version 1.0, 12 for 2.0 and 3.0
  std::size_t header_len = 0;
};

/// `p` holds the first min(total, 12) bytes (or more) of a file of `total` bytes.
inline NpyPreamble parse_npy_preamble(const unsigned char* p, std::size_t total,
                                      const std::string& name) {
  const std::size_t magic_seen = total < npy_magic_len ? total : npy_magic_len;
  if (total == 0) throw NpyError(name, "empty file: not an .npy file");
  if (std::memcmp(p, npy_magic, magic_seen) != 0) {
    std::string start(reinterpret_cast<const char*>(p), magic_seen);
    throw NpyError(name, "bad magic string " + npy_quote(start) +
                             " (expected '\\x93NUMPY'): not an .npy file");
  }
  if (total < 10) {
    throw NpyError(name, str("truncated preamble: the file has ", total,
                             " bytes, an .npy file has at least 10"));
  }
  NpyPreamble pre;
  pre.major = p[6];
  const unsigned minor = p[7];
  if (pre.major < 1 || pre.major > 3 || minor != 0) {
    throw NpyError(name, str("unsupported .npy format version ", pre.major, ".", minor,
                             " (supported: 1.0, 2.0, 3.0)"));
  }
  if (pre.major == 1) {
    pre.header_offset = 10;
    pre.header_len = std::size_t(p[8]) | std::size_t(p[9]) << 8;
  } else {
    if (total < 12) {
      throw NpyError(name, str("truncated preamble: the file has ", total,
                               " bytes, a version ", pre.major, ".0 file has at least 12"));
    }
    pre.header_offset = 12;
    pre.header_len = std::size_t(p[8]) | std::size_t(p[9]) << 8 | std::size_t(p[10]) << 16 |
                     std::size_t(p[11]) << 24;
  }
  const std::size_t after = total - pre.header_offset;
  if (pre.header_len > after) {
    throw NpyError(name, str("header length ", pre.header_len,
                             " goes beyond the end of the file (", after,
                             " bytes follow the preamble)"));
  }
  if (pre.header_len > npy_max_header_bytes) {
    throw NpyError(name, str("header length ", pre.header_len, " exceeds the limit of ",
                             npy_max_header_bytes, " bytes"));
  }
  return pre;
}

/// One Python literal from the header: the subset ast.literal_eval would give for an
/// .npy header (strings, True/False/None, integers, tuples, lists).
struct PyLiteral {
  enum class Kind { string, boolean, none, integer, tuple, list };
  Kind kind = Kind::none;
  std::string text;  // string contents, or an integer's digits (no sign)
  bool negative = false;  // integers
  bool flag = false;      // booleans
  std::vector<PyLiteral> items;  // tuples and lists
};

/// Recursive-descent parser of the header dict. Positions in messages are byte offsets
/// into the header text.
class NpyHeaderParser {
 public:
  NpyHeaderParser(const char* begin, const char* end, const std::string& name)
      : begin_(begin), pos_(begin), end_(end), name_(name) {}

  std::vector<std::pair<std::string, PyLiteral>> parse_dict() {
    skip_space();
    if (pos_ == end_ || *pos_ != '{') {
      throw NpyError(name_, "header is not a dict literal (it does not start with '{'): " +
                                npy_quote(std::string(pos_, end_)));
    }
    ++pos_;
    std::vector<std::pair<std::string, PyLiteral>> entries;
    skip_space();
    while (!at('}')) {
      if (!at('\'') && !at('"')) fail("expected a quoted key or '}'");
      std::string key = parse_string();
      skip_space();
      expect(':');
      skip_space();
      entries.emplace_back(std::move(key), parse_value(0));
      skip_space();
      if (at(',')) {
        ++pos_;
        skip_space();
      } else if (!at('}')) {
        fail("expected ',' or '}' after a dict value");
      }
    }
    ++pos_;
    skip_space();
    if (pos_ != end_) fail("unexpected text after the header dict");
    return entries;
  }

 private:
  bool at(char c) const { return pos_ != end_ && *pos_ == c; }

  [[noreturn]] void fail(const std::string& what) const {
    const auto offset = static_cast<std::size_t>(pos_ - begin_);
    throw NpyError(name_, str("malformed header: ", what, " at offset ", offset,
                              pos_ == end_ ? " (end of header)" : ""));
  }

  void expect(char c) {
    if (!at(c)) fail(std::string("expected '") + c + "'");
    ++pos_;
  }

  void skip_space() {
    while (pos_ != end_ && (*pos_ == ' ' || *pos_ == '\t' || *pos_ == '\n' || *pos_ == '\r' ||
                            *pos_ == '\f' || *pos_ == '\v')) {
      ++pos_;
    }
  }

  static bool is_digit(char c) { return c >= '0' && c <= '9'; }
  static bool is_ident(char c) {
    return is_digit(c) || c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  }

  std::string parse_string() {
    const char quote = *pos_++;
    const char* start = pos_;
    while (pos_ != end_ && *pos_ != quote) {
      // Escapes and line breaks never occur in an .npy header's strings; refusing them
      // keeps the unescaped text exactly what Python would see.
      if (*pos_ == '\\') fail("backslash escapes in strings are not supported");
      if (*pos_ == '\n' || *pos_ == '\r') fail("unterminated string");
      ++pos_;
    }
    if (pos_ == end_) fail("unterminated string");
    std::string s(start, pos_);
    ++pos_;
    return s;
  }

  PyLiteral parse_value(int depth) {
    if (depth > npy_max_nesting) fail("values nest too deeply");
    PyLiteral v;
    if (pos_ == end_) fail("expected a value");
    const char c = *pos_;
    if (c == '\'' || c == '"') {
      v.kind = PyLiteral::Kind::string;
      v.text = parse_string();
    } else if (c == '(' || c == '[') {
      parse_sequence(v, depth);
    } else if (c == '-' || c == '+' || is_digit(c)) {
      parse_integer(v);
    } else if (is_ident(c)) {
      const char* start = pos_;
      while (pos_ != end_ && is_ident(*pos_)) ++pos_;
      const std::string word(start, pos_);
      if (word == "True" || word == "False") {
        v.kind = PyLiteral::Kind::boolean;
        v.flag = word == "True";
      } else if (word == "None") {
        v.kind = PyLiteral::Kind::none;
      } else {
        pos_ = start;
        fail("unsupported value " + npy_quote(word));
      }
    } else {
      fail("unsupported value");
    }
    return v;
  }

  // Python: "()" is an empty tuple, "(x)" is just x, "(x,)" and "(x, y)" are tuples.
  void parse_sequence(PyLiteral& v, int depth) {
    const bool is_list = *pos_ == '[';
    const char close = is_list ? ']' : ')';
    ++pos_;
    skip_space();
    bool saw_comma = false;
    while (!at(close)) {
      v.items.push_back(parse_value(depth + 1));
      skip_space();
      if (at(',')) {
        saw_comma = true;
        ++pos_;
        skip_space();
      } else if (!at(close)) {
        fail(std::string("expected ',' or '") + close + "'");
      }
    }
    ++pos_;
    if (!is_list && v.items.size() == 1 && !saw_comma) {
      PyLiteral inner = std::move(v.items.front());
      v = std::move(inner);
      return;
    }
    v.kind = is_list ? PyLiteral::Kind::list : PyLiteral::Kind::tuple;
  }

  void parse_integer(PyLiteral& v) {
    v.kind = PyLiteral::Kind::integer;
    if (at('-') || at('+')) {
      v.negative = *pos_ == '-';
      ++pos_;
      skip_space();
    }
    const char* start = pos_;
    while (pos_ != end_ && is_digit(*pos_)) ++pos_;
    if (pos_ == start) fail("expected digits");
    v.text.assign(start, pos_);
    // Python 2 era numpy wrote long dimensions as "3L"; numpy still reads them.
    if (at('L') || at('l')) ++pos_;
    if (at('.') || at('e') || at('E') || at('j') || at('x') || at('_')) {
      fail("unsupported number (only plain decimal integers may appear)");
    }
  }

  const char* begin_;
  const char* pos_;
  const char* end_;
  const std::string& name_;
};

/// What the header says about the data that follows it.
struct NpyHeader {
  NpyDtype dtype = NpyDtype::float64;
  std::vector<std::size_t> shape;
  std::size_t count = 1;       // product(shape)
  std::size_t data_bytes = 0;  // count * itemsize
};

inline NpyDtype npy_dtype_from_descr(const PyLiteral& descr, const std::string& name) {
  if (descr.kind == PyLiteral::Kind::list) {
    throw NpyError(name, "unsupported dtype: a structured dtype (descr is a list); "
                         "supported: '<f4', '<f8'");
  }
  if (descr.kind != PyLiteral::Kind::string) {
    throw NpyError(name, "unsupported dtype: descr is not a string; supported: '<f4', '<f8'");
  }
  const std::string& d = descr.text;
  // '=' means native order, which is little-endian only on a little-endian writer; '|'
  // (no order) is not what numpy writes for floats, so it is refused rather than guessed.
  const bool little = !d.empty() && (d[0] == '<' || (d[0] == '=' && host_is_little_endian()));
  if (little && d.size() == 3 && d.compare(1, 2, "f8") == 0) return NpyDtype::float64;
  if (little && d.size() == 3 && d.compare(1, 2, "f4") == 0) return NpyDtype::float32;
  throw NpyError(name, "unsupported dtype " + npy_quote(d) + " (supported: '<f4', '<f8'" +
                           (host_is_little_endian() ? ", '=f4', '=f8'" : "") + ")");
}

inline std::size_t npy_dimension(const PyLiteral& dim, const std::string& name) {
  if (dim.kind != PyLiteral::Kind::integer) {
    throw NpyError(name, "shape holds a value that is not an integer");
  }
  const std::string& digits = dim.text;
  const bool zero = digits.find_first_not_of('0') == std::string::npos;
  if (dim.negative && !zero) {
    throw NpyError(name, "negative dimension -" + digits.substr(0, 24) + " in shape");
  }
  // numpy's dimensions are npy_intp; anything larger cannot come from numpy.
  constexpr auto max_dim = static_cast<std::size_t>(std::numeric_limits<std::ptrdiff_t>::max());
  std::size_t value = 0;
  for (char c : digits) {
    const auto digit = static_cast<std::size_t>(c - '0');
    if (value > (max_dim - digit) / 10) {
      throw NpyError(name, "dimension " + digits.substr(0, 24) +
                               (digits.size() > 24 ? "..." : "") + " in shape is too large");
    }
    value = value * 10 + digit;
  }
  return value;
}

inline NpyHeader parse_npy_header(const char* text, std::size_t len, const std::string& name) {
  NpyHeaderParser parser(text, text + len, name);
  const auto entries = parser.parse_dict();
  const PyLiteral* descr = nullptr;
  const PyLiteral* fortran = nullptr;
  const PyLiteral* shape = nullptr;
  for (const auto& [key, value] : entries) {
    const PyLiteral** slot = key == "descr"           ? &descr
                             : key == "fortran_order" ? &fortran
                             : key == "shape"         ? &shape
                                                      : nullptr;
    if (slot == nullptr) throw NpyError(name, "header has the unexpected key " + npy_quote(key));
    if (*slot != nullptr) throw NpyError(name, "header repeats the key " + npy_quote(key));
    *slot = &value;
  }
  for (const auto& [slot, key] : {std::pair{descr, "descr"}, std::pair{fortran, "fortran_order"},
                                  std::pair{shape, "shape"}}) {
    if (slot == nullptr) throw NpyError(name, std::string("header lacks the key '") + key + "'");
  }

  NpyHeader h;
  h.dtype = npy_dtype_from_descr(*descr, name);
  if (fortran->kind != PyLiteral::Kind::boolean) {
    throw NpyError(name, "fortran_order is not True or False");
  }
  if (fortran->flag) {
    throw NpyError(name, "fortran_order is True: Fortran-ordered arrays are not supported "
                         "(save the array in C order)");
  }
  if (shape->kind != PyLiteral::Kind::tuple) throw NpyError(name, "shape is not a tuple");
  if (shape->items.size() > npy_max_rank) {
    throw NpyError(name, str("shape has rank ", shape->items.size(), ", more than the ",
                             npy_max_rank, " numpy allows"));
  }
  bool has_zero = false;
  for (const auto& dim : shape->items) {
    h.shape.push_back(npy_dimension(dim, name));
    has_zero = has_zero || h.shape.back() == 0;
  }
  // The element count must fit with room for the bytes and for the doubles we hand out;
  // with a zero dimension the array is empty whatever the others are (numpy agrees).
  const std::size_t max_count = std::numeric_limits<std::size_t>::max() / sizeof(double);
  h.count = has_zero ? 0 : 1;
  for (std::size_t i = 0; !has_zero && i < h.shape.size(); ++i) {
    if (h.count > max_count / h.shape[i]) {
      throw NpyError(name, "shape " + npy_shape_string(h.shape) + " has too many elements");
    }
    h.count *= h.shape[i];
  }
  h.data_bytes = h.count * npy_itemsize(h.dtype);
  return h;
}

/// The array the header describes, values still to be filled in. The bytes are known to
/// exist by now, yet a genuine file can still be larger than memory: that is an NpyError
/// too, not a std::bad_alloc escaping from a file reader.
inline NpyArray allocate_npy_array(const NpyHeader& h, const std::string& name) {
  NpyArray a;
  a.shape = h.shape;
  a.dtype = h.dtype;
  try {
    a.data.resize(h.count);
  } catch (const std::bad_alloc&) {
    throw NpyError(name, str("cannot allocate ", h.count, " doubles for shape ",
                             npy_shape_string(h.shape)));
  } catch (const std::length_error&) {
    throw NpyError(name, str("cannot allocate ", h.count, " doubles for shape ",
                             npy_shape_string(h.shape)));
  }
  return a;
}

/// The bytes after the header must be exactly the data: fewer is truncation, more is
/// garbage (or a file written by something else than it claims).
inline void check_npy_data_size(const NpyHeader& h, std::size_t available,
                                const std::string& name) {
  if (available < h.data_bytes) {
    throw NpyError(name, str("truncated data: shape ", npy_shape_string(h.shape), " of ",
                             dtype_name(h.dtype), " needs ", h.data_bytes,
                             " bytes after the header, the file has ", available));
  }
  if (available > h.data_bytes) {
    throw NpyError(name, str("trailing garbage: ", available - h.data_bytes,
                             " bytes follow the ", h.data_bytes, " data bytes of shape ",
                             npy_shape_string(h.shape), " of ", dtype_name(h.dtype)));
  }
}

// Byte-wise little-endian decoding: independent of host order and of alignment.
inline void decode_npy_values(const unsigned char* p, std::size_t count, NpyDtype dtype,
                              double* out) {
  if (dtype == NpyDtype::float64) {
    for (std::size_t i = 0; i < count; ++i, p += 8) {
      std::uint64_t bits = 0;
      for (int k = 0; k < 8; ++k) bits |= std::uint64_t(p[k]) << (8 * k);
      std::memcpy(&out[i], &bits, 8);
    }
  } else {
    for (std::size_t i = 0; i < count; ++i, p += 4) {
      std::uint32_t bits = 0;
      for (int k = 0; k < 4; ++k) bits |= std::uint32_t(p[k]) << (8 * k);
      float f;
      std::memcpy(&f, &bits, 4);
      out[i] = static_cast<double>(f);
    }
  }
}

inline void encode_npy_value(double v, std::string& out) {
  std::uint64_t bits;
  std::memcpy(&bits, &v, 8);
  for (int k = 0; k < 8; ++k) out += static_cast<char>((bits >> (8 * k)) & 0xff);
}

inline void encode_npy_value(float v, std::string& out) {
  std::uint32_t bits;
  std::memcpy(&bits, &v, 4);
  for (int k = 0; k < 4; ++k) out += static_cast<char>((bits >> (8 * k)) & 0xff);
}

/// Version 1.0 file bytes, byte for byte what np.save writes (same dict text, the same
/// spare spaces for growing the first axis, data start aligned to 64).
template <class T>
std::string encode_npy(const T* data, const std::vector<std::size_t>& shape, const char* descr) {
  require(shape.size() <= npy_max_rank, "shape", "rank ", shape.size(), " exceeds ",
          npy_max_rank);
  std::size_t count = 1;
  for (std::size_t d : shape) {
    require(d == 0 || count <= std::numeric_limits<std::size_t>::max() / sizeof(T) / d, "shape",
            "the product of ", npy_shape_string(shape), " overflows");
    count *= d;
  }
  require(data != nullptr || count == 0, "data", "null pointer for ", count, " values");

  std::string header = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " +
                       npy_shape_string(shape) + ", }";
  // numpy leaves room for the first axis to grow to 21 digits without moving the data.
  if (!shape.empty()) header.append(21 - std::to_string(shape[0]).size(), ' ');
  const std::size_t unpadded = npy_magic_len + 2 + 2 + header.size() + 1;
  header.append(npy_align - unpadded % npy_align, ' ');  // 1..64 spaces, as numpy pads
  header += '\n';
  require(header.size() <= 0xffff, "shape", "header too long for .npy version 1.0");

  std::string out(npy_magic, npy_magic_len);
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  out.reserve(out.size() + count * sizeof(T));
  for (std::size_t i = 0; i < count; ++i) encode_npy_value(data[i], out);
  return out;
}

// The C library's reason ("Permission denied", ...) when the stream left one in errno.
inline std::string npy_errno_suffix(int err) {
  return err != 0 ? ": " + std::generic_category().message(err) : std::string();
}

inline void write_npy_bytes(const std::string& path, const std::string& bytes) {
  errno = 0;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw NpyError(path, "cannot open the file for writing" + npy_errno_suffix(errno));
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) throw NpyError(path, str("writing ", bytes.size(), " bytes failed"));
}

}  // namespace detail

/// Parses an .npy file held in memory; `name_for_errors` names it in every NpyError.
inline NpyArray parse_npy(const void* bytes, std::size_t n, const std::string& name_for_errors) {
  const std::string& name = name_for_errors;
  if (bytes == nullptr && n > 0) throw NpyError(name, "null buffer");
  const auto* p = static_cast<const unsigned char*>(bytes);
  const auto pre = detail::parse_npy_preamble(p, n, name);
  const auto h = detail::parse_npy_header(reinterpret_cast<const char*>(p) + pre.header_offset,
                                          pre.header_len, name);
  const std::size_t data_offset = pre.header_offset + pre.header_len;
  detail::check_npy_data_size(h, n - data_offset, name);
  NpyArray a = detail::allocate_npy_array(h, name);
  detail::decode_npy_values(p + data_offset, h.count, h.dtype, a.data.data());
  return a;
}

/// Reads an .npy file. The header is checked against the file's size before the data is
/// read, so a lying header costs neither memory nor time.
inline NpyArray read_npy(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (status.type() == fs::file_type::not_found) throw NpyError(path, "no such file");
  if (ec) throw NpyError(path, "cannot access the file: " + ec.message());
  if (fs::is_directory(status)) throw NpyError(path, "is a directory, not an .npy file");
  // Pipes and devices have no size to check a header against.
  if (!fs::is_regular_file(status)) throw NpyError(path, "not a regular file");
  const std::uintmax_t file_size = fs::file_size(path, ec);
  if (ec) throw NpyError(path, "cannot determine the file size: " + ec.message());
  if (file_size > std::numeric_limits<std::size_t>::max()) {
    throw NpyError(path, "file too large to address");
  }
  const auto total = static_cast<std::size_t>(file_size);

  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw NpyError(path, "cannot open the file for reading" + detail::npy_errno_suffix(errno));
  }
  auto read_exactly = [&](void* dst, std::size_t n, const char* what) {
    in.read(static_cast<char*>(dst), static_cast<std::streamsize>(n));
    if (static_cast<std::size_t>(in.gcount()) != n) {
      throw NpyError(path, detail::str("read error in the ", what, " (", in.gcount(), " of ", n,
                                       " bytes; did the file change while being read?)"));
    }
  };

  unsigned char preamble[12] = {};
  read_exactly(preamble, total < 12 ? total : 12, "preamble");
  const auto pre = detail::parse_npy_preamble(preamble, total, path);
  // header_len is now known to be within the file and under the header cap.
  std::vector<char> header(pre.header_len);
  in.seekg(static_cast<std::streamoff>(pre.header_offset));
  read_exactly(header.data(), header.size(), "header");
  const auto h = detail::parse_npy_header(header.data(), header.size(), path);
  detail::check_npy_data_size(h, total - pre.header_offset - pre.header_len, path);

  NpyArray a = detail::allocate_npy_array(h, path);  // the file holds these bytes: checked
  const std::size_t itemsize = detail::npy_itemsize(h.dtype);
  constexpr std::size_t chunk_values = 8192;
  std::vector<unsigned char> buffer(chunk_values * itemsize);
  for (std::size_t done = 0; done < h.count;) {
    const std::size_t n = h.count - done < chunk_values ? h.count - done : chunk_values;
    read_exactly(buffer.data(), n * itemsize, "data");
    detail::decode_npy_values(buffer.data(), n, h.dtype, a.data.data() + done);
    done += n;
  }
  if (in.peek() != std::char_traits<char>::eof()) {
    throw NpyError(path, "trailing garbage: the file grew while being read");
  }
  return a;
}

/// The bytes of a version 1.0 .npy file of float64 ('<f8') / float32 ('<f4') values in
/// C order, identical to np.save's. `data` holds product(shape) values.
inline std::string encode_npy(const double* data, const std::vector<std::size_t>& shape) {
  return detail::encode_npy(data, shape, "<f8");
}
inline std::string encode_npy(const float* data, const std::vector<std::size_t>& shape) {
  return detail::encode_npy(data, shape, "<f4");
}

/// Writes encode_npy(data, shape) to `path` (replacing it); throws NpyError on I/O failure.
inline void write_npy(const std::string& path, const double* data,
                      const std::vector<std::size_t>& shape) {
  detail::write_npy_bytes(path, encode_npy(data, shape));
}
inline void write_npy(const std::string& path, const float* data,
                      const std::vector<std::size_t>& shape) {
  detail::write_npy_bytes(path, encode_npy(data, shape));
}

/// Index of the first NaN or infinity in `a`, or a.size() if there is none.
inline std::size_t first_non_finite(const NpyArray& a) {
  for (std::size_t i = 0; i < a.data.size(); ++i) {
    if (!std::isfinite(a.data[i])) return i;
  }
  return a.data.size();
}

inline bool all_finite(const NpyArray& a) { return first_non_finite(a) == a.size(); }

}  // namespace gauge_attn
