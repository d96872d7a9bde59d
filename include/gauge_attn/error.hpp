// gauge_attn/error.hpp: the exception every argument check throws.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace gauge_attn {

/// Thrown for bad input. The message names the argument, the offending value and,
/// for array arguments, the index where it was found.
class InvalidArgument : public std::invalid_argument {
 public:
  InvalidArgument(const std::string& argument, const std::string& detail)
      : std::invalid_argument("gauge_attn: bad argument '" + argument + "': " + detail),
        argument_(argument) {}
  const std::string& argument() const noexcept { return argument_; }

 private:
  std::string argument_;
};

namespace detail {

/// Concatenates anything streamable into a message.
template <class... Parts>
std::string str(const Parts&... parts) {
  std::ostringstream os;
  os.precision(17);
  (os << ... << parts);
  return os.str();
}

/// Throws InvalidArgument(argument, message) unless `condition` holds.
template <class... Parts>
void require(bool condition, const char* argument, const Parts&... message) {
  if (!condition) throw InvalidArgument(argument, str(message...));
}

}  // namespace detail
}  // namespace gauge_attn
