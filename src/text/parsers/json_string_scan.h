// Where a byte-by-byte scan of JSON text stands with respect to strings, for scanners that
// only step over them (counting brackets, capturing keys): open() at an opening '"', then
// every byte until the string ends goes to step(), which says when the closing quote came.
#pragma once

namespace rackserve::text {

class JsonStringScan {
 public:
  bool in_string() const { return in_string_; }
  void open() {
    in_string_ = true;
    escaped_ = false;
  }
  void reset() { in_string_ = escaped_ = false; }
  // A byte inside the string: true when it is the closing quote (the scan is then outside).
  bool step(char byte) {
    if (escaped_) {
      escaped_ = false;
    } else if (byte == '\\') {
      escaped_ = true;
    } else if (byte == '"') {
      in_string_ = false;
      return true;
    }
    return false;
  }

 private:
  bool in_string_ = false;
  bool escaped_ = false;  // after a '\' inside the string
};

}  // namespace rackserve::text
