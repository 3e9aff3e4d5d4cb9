// The byte steps inside a JSON string (after its opening quote) and a JSON number, shared by
// JsonGrammar and JsonSchemaGrammar. Each grammar keeps its own Mode enum; both name the
// string and number modes alike (String, StringEscape, StringUnicode, StringUtf8,
// NumberMinus, NumberZero, NumberInteger, NumberDot, NumberFraction, NumberExponentMark,
// NumberExponentSign, NumberExponent), and these templates step through them.
#pragma once

#include <cstdint>

#include "engine/json_bytes.h"

namespace rackserve::json_scalar {

enum class Step : uint8_t {
  Accepted,  // the byte extends the string or number
  Ended,     // string: the closing quote, consumed; number: the number is whole and the byte
             // cannot extend it (not consumed: the caller reads it as what follows the value)
  Rejected,
};

// The UTF-8 and escape bookkeeping inside a string: pending hex digits (StringUnicode) or
// continuation bytes (StringUtf8), and the range of the next continuation byte.
struct StringState {
  uint8_t pending = 0;
  uint8_t continuation_low = 0;
  uint8_t continuation_high = 0;
  bool operator==(const StringState&) const = default;
};

// One byte inside a string; `mode` is one of the four string modes.
template <class Mode>
Step string_byte(Mode& mode, StringState& state, uint8_t byte) {
  switch (mode) {
    case Mode::StringEscape:
      if (byte == 'u') {
        mode = Mode::StringUnicode;
        state.pending = 4;
        return Step::Accepted;
      }
      mode = Mode::String;
      return byte == '"' || byte == '\\' || byte == '/' || byte == 'b' || byte == 'f' || byte == 'n' || byte == 'r' ||
                     byte == 't'
                 ? Step::Accepted
                 : Step::Rejected;
    case Mode::StringUnicode:
      if (!json_bytes::is_hex_digit(byte)) return Step::Rejected;
      if (--state.pending == 0) mode = Mode::String;
      return Step::Accepted;
    case Mode::StringUtf8:
      if (byte < state.continuation_low || byte > state.continuation_high) return Step::Rejected;
      state.continuation_low = 0x80;
      state.continuation_high = 0xBF;
      if (--state.pending == 0) mode = Mode::String;
      return Step::Accepted;
    default:
      break;
  }
  if (byte == '"') return Step::Ended;
  if (byte == '\\') {
    mode = Mode::StringEscape;
    return Step::Accepted;
  }
  if (byte < 0x20) return Step::Rejected;
  if (byte < 0x80) return Step::Accepted;
  const json_bytes::Utf8Lead lead = json_bytes::utf8_lead(byte);
  if (lead.continuations == 0) return Step::Rejected;
  mode = Mode::StringUtf8;
  state.pending = lead.continuations;
  state.continuation_low = lead.low;
  state.continuation_high = lead.high;
  return Step::Accepted;
}

// One byte of a number after its first; `mode` is one of the eight number modes.
// integer_only: no fraction or exponent (a JSON Schema integer).
template <class Mode>
Step number_byte(Mode& mode, bool integer_only, uint8_t byte) {
  const bool digit = json_bytes::is_digit(byte);
  const bool exponent_mark = !integer_only && (byte == 'e' || byte == 'E');
  const bool dot = !integer_only && byte == '.';
  switch (mode) {
    case Mode::NumberMinus:
      if (!digit) return Step::Rejected;
      mode = byte == '0' ? Mode::NumberZero : Mode::NumberInteger;
      return Step::Accepted;
    case Mode::NumberInteger:
      if (digit) return Step::Accepted;
      [[fallthrough]];
    case Mode::NumberZero:
      if (dot) {
        mode = Mode::NumberDot;
        return Step::Accepted;
      }
      if (exponent_mark) {
        mode = Mode::NumberExponentMark;
        return Step::Accepted;
      }
      return Step::Ended;
    case Mode::NumberDot:
      if (!digit) return Step::Rejected;
      mode = Mode::NumberFraction;
      return Step::Accepted;
    case Mode::NumberFraction:
      if (digit) return Step::Accepted;
      if (exponent_mark) {
        mode = Mode::NumberExponentMark;
        return Step::Accepted;
      }
      return Step::Ended;
    case Mode::NumberExponentMark:
      if (byte == '+' || byte == '-') {
        mode = Mode::NumberExponentSign;
        return Step::Accepted;
      }
      [[fallthrough]];
    case Mode::NumberExponentSign:
      if (!digit) return Step::Rejected;
      mode = Mode::NumberExponent;
      return Step::Accepted;
    case Mode::NumberExponent:
      return digit ? Step::Accepted : Step::Ended;
    default:
      return Step::Rejected;
  }
}

}  // namespace rackserve::json_scalar
