// Errors of the Jinja engine. Every failure, at parse or render time, is a jinja::Error that
// names its kind (mirroring jinja2's exception classes) and, once it leaves the Template
// boundary, the line and column (1-based, column in code points) where it happened.
#pragma once

#include <cstdint>
#include <string>

#include "core/error.h"

namespace rackserve::jinja {

enum class ErrorKind {
  Syntax,     // TemplateSyntaxError: malformed template (also unknown filters/tests outside `if`)
  Undefined,  // UndefinedError: an undefined value used where a real one is required
  Type,       // TypeError: operation on the wrong Python type
  Value,      // ValueError / IndexError / ZeroDivisionError and friends
  Security,   // SecurityError: the immutable sandbox forbids the operation (list.append, ...)
  Template,   // TemplateError raised by the template itself through raise_exception()
  Runtime,    // TemplateRuntimeError
  Limit,      // a resource limit of this engine (nesting depth, output size, loop steps)
};

const char* error_kind_name(ErrorKind kind);

class Error : public rackserve::Error {
 public:
  static constexpr uint32_t kNoOffset = UINT32_MAX;

  Error(ErrorKind kind, std::string message, uint32_t offset = kNoOffset);

  ErrorKind kind() const { return kind_; }
  // The bare message, e.g. the text given to raise_exception().
  const std::string& message() const { return message_; }
  // Byte offset in the newline-normalized template source; kNoOffset until known.
  uint32_t offset() const { return offset_; }
  void set_offset(uint32_t offset) { offset_ = offset; }
  // 0 until the Template resolves the offset.
  int line() const { return line_; }
  int column() const { return column_; }
  void set_location(int line, int column);

  // "<kind> at line L, column C: <message>".
  const char* what() const noexcept override { return formatted_.c_str(); }

 private:
  void format();

  ErrorKind kind_;
  std::string message_;
  uint32_t offset_;
  int line_ = 0;
  int column_ = 0;
  std::string formatted_;
};

}  // namespace rackserve::jinja
