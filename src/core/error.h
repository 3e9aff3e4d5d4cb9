// Errors: every failure a user can cause (bad file, bad flag, bad request) becomes a
// rackserve::Error with a message that names the thing at fault. Internal invariants
// use the same macro; both are cheap enough for boundaries, not for inner loops.
#pragma once

#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace rackserve {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace rackserve

// RS_CHECK(cond, "format {}", args...): throws rackserve::Error with the formatted text.
#define RS_CHECK(cond, ...)                                   \
  do {                                                        \
    if (!(cond)) throw ::rackserve::Error(fmt::format(__VA_ARGS__)); \
  } while (0)

#define RS_FAIL(...) throw ::rackserve::Error(fmt::format(__VA_ARGS__))
