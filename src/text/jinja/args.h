// Binding of call arguments to a builtin's Python-style signature: positional arguments
// fill the names in order, keywords by name; extra or unknown arguments are TypeErrors.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "text/jinja/value.h"

namespace rackserve::jinja {

class ArgBinder {
 public:
  ArgBinder(std::string_view function, const CallArgs& args, std::initializer_list<std::string_view> names);

  bool has(size_t index) const { return bound_[index] != nullptr; }
  // The argument, or `fallback` when it was not given.
  const Value& get(size_t index, const Value& fallback) const { return has(index) ? *bound_[index] : fallback; }
  // The argument, or an undefined value when it was not given.
  const Value& operator[](size_t index) const;

 private:
  std::vector<const Value*> bound_;
};

// Typed reads with Python's TypeErrors.
int64_t require_int(const Value& value, std::string_view what);
const std::string& require_string(const Value& value, std::string_view what);

}  // namespace rackserve::jinja
