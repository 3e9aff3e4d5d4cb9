// Dotted attribute paths for the sequence filters.
#include "text/jinja/attribute_path.h"

#include "text/jinja/evaluator.h"
#include "text/jinja/unicode.h"

namespace rackserve::jinja {

AttributePath::AttributePath(const Value& attribute) {
  if (attribute.is_integral()) {
    parts_.push_back(attribute);
    return;
  }
  if (!attribute.is_string()) {
    parts_.push_back(attribute);
    return;
  }
  const std::string& text = attribute.as_string();
  size_t start = 0;
  while (true) {
    const size_t dot = text.find('.', start);
    const std::string part = text.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool digits = !part.empty();
    for (char c : part) digits = digits && c >= '0' && c <= '9';
    if (digits && part.size() < 18) {
      parts_.push_back(Value::integer(std::stoll(part)));
    } else {
      parts_.push_back(Value::string(part));
    }
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
}

Value AttributePath::get(Renderer& renderer, const Value& item) const {
  Value current = item;
  for (const Value& part : parts_) current = renderer.get_item(current, part);
  return current;
}

Value ignore_case(const Value& value) {
  if (value.is_string()) return Value::string(unicode::lower(value.as_string()));
  return value;
}

}  // namespace rackserve::jinja
