// jinja2's make_attrgetter: the `attribute=` argument of map, selectattr, sort, unique, sum,
// join, min and max is a dotted path ("function.name", "0.role"); each part is looked up
// with the environment's getitem, digits as integer indexes.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "text/jinja/value.h"

namespace rackserve::jinja {

class AttributePath {
 public:
  // An attribute argument that is an int is one integer index; a string is split on '.'.
  explicit AttributePath(const Value& attribute);
  // The item at the path (an undefined value when a part is missing, as jinja2 returns).
  Value get(Renderer& renderer, const Value& item) const;

 private:
  std::vector<Value> parts_;
};

// jinja2's ignore_case postprocessor: strings are lower-cased, other values returned as is.
Value ignore_case(const Value& value);

}  // namespace rackserve::jinja
