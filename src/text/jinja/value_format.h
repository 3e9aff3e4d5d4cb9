// Python's str() and repr() for template values: `{{ value }}` prints what Python's str()
// would (None, True, [1, 'a'], {'k': 2.0}), byte for byte.
#pragma once

#include <string>
#include <string_view>

#include "text/jinja/value.h"

namespace rackserve::jinja {

// repr(float): shortest round-trip digits, exponent form below 1e-4 and from 1e16 on.
std::string format_float(double value);
// repr(str): single quotes unless the text holds ' and no ", escapes for non-printables.
std::string repr_string(std::string_view text);
// Printing stops with ErrorKind::Limit once `out` passes the limit (to_str/repr use 64 MiB).
constexpr size_t kDefaultPrintLimit = size_t{64} << 20;
// str(value), appended to `out` (undefined prints nothing).
void append_str(std::string& out, const Value& value, size_t limit = kDefaultPrintLimit);
std::string to_str(const Value& value);
std::string repr(const Value& value);
// repr() from inside the repr of a container or object at nesting level `depth`.
std::string repr_nested(const Value& value, int depth);

}  // namespace rackserve::jinja
