#include "engine/json_grammar.h"

#include "engine/json_bytes.h"
#include "engine/json_scalar_reader.h"

namespace rackserve {
namespace {

constexpr std::string_view kLiterals[] = {"true", "false", "null"};

using json_bytes::is_digit;
using json_bytes::is_whitespace;

}  // namespace

bool JsonGrammar::accept(uint8_t byte) {
  JsonGrammar next = *this;
  if (!next.step(byte)) return false;
  *this = next;
  return true;
}

bool JsonGrammar::accept(std::string_view bytes) {
  JsonGrammar next = *this;
  for (char byte : bytes) {
    if (!next.step(static_cast<uint8_t>(byte))) return false;
  }
  *this = next;
  return true;
}

bool JsonGrammar::step(uint8_t byte) {
  switch (mode_) {
    case Mode::Start:
      return byte == '{' && open(true, Mode::ObjectOpen);
    case Mode::ObjectOpen:
      if (byte == '}') {
        close();
        return true;
      }
      [[fallthrough]];
    case Mode::ObjectKey:
      if (is_whitespace(byte)) return true;
      if (byte != '"') return false;
      mode_ = Mode::String;
      in_key_ = true;
      return true;
    case Mode::Colon:
      if (is_whitespace(byte)) return true;
      if (byte != ':') return false;
      mode_ = Mode::Value;
      return true;
    case Mode::ArrayOpen:
      if (byte == ']') {
        close();
        return true;
      }
      [[fallthrough]];
    case Mode::Value:
      return is_whitespace(byte) || value_start(byte);
    case Mode::AfterValue:
      return after_value(byte);
    case Mode::String:
    case Mode::StringEscape:
    case Mode::StringUnicode:
    case Mode::StringUtf8:
      return string_byte(byte);
    case Mode::NumberMinus:
    case Mode::NumberZero:
    case Mode::NumberInteger:
    case Mode::NumberDot:
    case Mode::NumberFraction:
    case Mode::NumberExponentMark:
    case Mode::NumberExponentSign:
    case Mode::NumberExponent:
      return number_byte(byte);
    case Mode::Literal:
      return literal_byte(byte);
    case Mode::Done:
      return is_whitespace(byte);
  }
  return false;
}

bool JsonGrammar::value_start(uint8_t byte) {
  switch (byte) {
    case '{':
      return open(true, Mode::ObjectOpen);
    case '[':
      return open(false, Mode::ArrayOpen);
    case '"':
      mode_ = Mode::String;
      in_key_ = false;
      return true;
    case '-':
      mode_ = Mode::NumberMinus;
      return true;
    case '0':
      mode_ = Mode::NumberZero;
      return true;
    case 't':
    case 'f':
    case 'n':
      mode_ = Mode::Literal;
      literal_ = byte == 't' ? 0 : byte == 'f' ? 1 : 2;
      pending_ = 1;
      return true;
    default:
      if (byte < '1' || byte > '9') return false;
      mode_ = Mode::NumberInteger;
      return true;
  }
}

bool JsonGrammar::after_value(uint8_t byte) {
  if (is_whitespace(byte)) return true;
  const bool in_object = innermost_is_object();
  if (byte == ',') {
    mode_ = in_object ? Mode::ObjectKey : Mode::Value;
    return true;
  }
  if (byte != (in_object ? '}' : ']')) return false;
  close();
  return true;
}

bool JsonGrammar::string_byte(uint8_t byte) {
  const json_scalar::Step step = json_scalar::string_byte(mode_, string_, byte);
  if (step == json_scalar::Step::Ended) mode_ = in_key_ ? Mode::Colon : Mode::AfterValue;
  return step != json_scalar::Step::Rejected;
}

bool JsonGrammar::number_byte(uint8_t byte) {
  const json_scalar::Step step = json_scalar::number_byte(mode_, /*integer_only=*/false, byte);
  if (step != json_scalar::Step::Ended) return step == json_scalar::Step::Accepted;
  // A whole number followed by a byte that cannot extend it: that byte follows the value.
  mode_ = Mode::AfterValue;
  return after_value(byte);
}

bool JsonGrammar::literal_byte(uint8_t byte) {
  const std::string_view literal = kLiterals[literal_];
  if (byte != static_cast<uint8_t>(literal[pending_])) return false;
  if (++pending_ == literal.size()) mode_ = Mode::AfterValue;
  return true;
}

bool JsonGrammar::open(bool is_object, Mode next) {
  if (depth_ == kMaxDepth) return false;
  uint64_t& word = object_levels_[depth_ / kWordBits];
  const uint64_t bit = uint64_t{1} << (depth_ % kWordBits);
  word = is_object ? word | bit : word & ~bit;
  ++depth_;
  mode_ = next;
  return true;
}

void JsonGrammar::close() {
  --depth_;
  object_levels_[depth_ / kWordBits] &= ~(uint64_t{1} << (depth_ % kWordBits));  // closed levels read as 0
  mode_ = depth_ == 0 ? Mode::Done : Mode::AfterValue;
}

bool JsonGrammar::innermost_is_object() const {
  const int level = depth_ - 1;
  return (object_levels_[level / kWordBits] >> (level % kWordBits)) & 1;
}

}  // namespace rackserve
