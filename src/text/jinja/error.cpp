// Formatting of jinja::Error: the kind name follows jinja2's exception classes so that a
// user comparing with Python output recognizes the failure.
#include "text/jinja/error.h"

#include <utility>

namespace rackserve::jinja {

const char* error_kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::Syntax: return "TemplateSyntaxError";
    case ErrorKind::Undefined: return "UndefinedError";
    case ErrorKind::Type: return "TypeError";
    case ErrorKind::Value: return "ValueError";
    case ErrorKind::Security: return "SecurityError";
    case ErrorKind::Template: return "TemplateError";
    case ErrorKind::Runtime: return "TemplateRuntimeError";
    case ErrorKind::Limit: return "LimitExceeded";
  }
  return "Error";
}

Error::Error(ErrorKind kind, std::string message, uint32_t offset)
    : rackserve::Error(message), kind_(kind), message_(std::move(message)), offset_(offset) {
  format();
}

void Error::set_location(int line, int column) {
  line_ = line;
  column_ = column;
  format();
}

void Error::format() {
  formatted_ = error_kind_name(kind_);
  if (line_ > 0) {
    formatted_ += " at line " + std::to_string(line_) + ", column " + std::to_string(column_);
  }
  formatted_ += ": " + message_;
}

}  // namespace rackserve::jinja
