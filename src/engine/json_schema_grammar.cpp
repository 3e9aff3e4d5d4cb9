#include "engine/json_schema_grammar.h"

#include <algorithm>

#include "engine/json_bytes.h"
#include "engine/json_scalar_reader.h"

namespace rackserve {
namespace {

using json_bytes::is_digit;
using json_bytes::is_whitespace;

bool unbounded(uint32_t max_items) { return max_items >= JsonSchema::kUnboundedItems; }

bool has_length_bounds(const SchemaNode& string) { return string.min_length > 0 || string.max_length != UINT32_MAX; }
bool has_value_bounds(const SchemaNode& integer) { return integer.minimum != INT64_MIN || integer.maximum != INT64_MAX; }

// Magnitudes past this are outside every int64 bound (saturating digit arithmetic stops here).
constexpr uint64_t kMagnitudeCap = 10'000'000'000'000'000'000ULL;

// Whether [low, high] (magnitudes, low <= high) signed by `negative` meets [minimum, maximum].
bool meets(bool negative, __int128 low, __int128 high, int64_t minimum, int64_t maximum) {
  const __int128 from = negative ? -high : low, to = negative ? -low : high;
  return from <= maximum && to >= minimum;
}

}  // namespace

bool JsonSchemaGrammar::accept(uint8_t byte) {
  JsonSchemaGrammar next = *this;
  if (!next.step(byte)) return false;
  *this = next;
  return true;
}

bool JsonSchemaGrammar::accept(std::string_view bytes) {
  JsonSchemaGrammar next = *this;
  for (char byte : bytes) {
    if (!next.step(static_cast<uint8_t>(byte))) return false;
  }
  *this = next;
  return true;
}

bool JsonSchemaGrammar::step(uint8_t byte) {
  if (!is_whitespace(byte)) whitespace_run_ = 0;
  switch (mode_) {
    case Mode::Start:
      return (byte == '{' || byte == '[') && value_start(schema_->root(), byte);
    case Mode::Container:
      return container_byte(byte);
    case Mode::Literal:
      return literal_byte(byte);
    case Mode::String:
    case Mode::StringEscape:
    case Mode::StringUnicode:
    case Mode::StringUtf8:
      return string_byte(byte);
    case Mode::Done:
      return is_whitespace(byte) && whitespace();
    default:
      return number_byte(byte);
  }
}

bool JsonSchemaGrammar::whitespace() {
  if (whitespace_run_ >= schema_->max_whitespace_run()) return false;
  ++whitespace_run_;
  return true;
}

bool JsonSchemaGrammar::container_byte(uint8_t byte) {
  Frame& frame = top();
  const SchemaNode& container = node(frame.node);
  if (frame.phase == Phase::AfterValue) return after_value(byte);
  if (is_whitespace(byte)) return whitespace();
  if (container.kind == SchemaKind::Array) {
    if (frame.phase == Phase::Open && byte == ']') {
      if (container.min_items > 0) return false;
      close();
      return true;
    }
    if (!unbounded(container.max_items) && frame.index >= container.max_items) return false;
    return value_start(container.items, byte);
  }
  const auto property_count = static_cast<uint16_t>(container.properties.size());
  switch (frame.phase) {
    case Phase::Open:
      if (byte == '}') {
        if (container.next_required[0] != property_count) return false;
        close();
        return true;
      }
      [[fallthrough]];
    case Phase::Next: {
      if (frame.index >= property_count) return false;
      const uint16_t last = std::min<uint16_t>(container.next_required[frame.index], property_count - 1);
      return start_literal(frame.node, /*is_key=*/true, frame.index, last, byte);
    }
    case Phase::Colon:
      if (byte != ':') return false;
      frame.phase = Phase::Value;
      return true;
    case Phase::Value:
      return value_start(container.properties[frame.index].value, byte);
    case Phase::AfterValue:
      break;
  }
  return false;
}

bool JsonSchemaGrammar::value_start(SchemaNodeId id, uint8_t byte) {
  if (node(id).kind == SchemaKind::Choice) id = node(id).dispatch[byte];
  if (id == kNoSchemaNode) return false;
  const SchemaNode& value = node(id);
  switch (value.kind) {
    case SchemaKind::Object:
    case SchemaKind::Union:
      return byte == '{' && open(id);
    case SchemaKind::Array:
      return byte == '[' && open(id);
    case SchemaKind::String:
      if (byte != '"') return false;
      mode_ = Mode::String;
      scalar_node_ = id;
      string_chars_ = 0;
      return true;
    case SchemaKind::Number:
    case SchemaKind::Integer:
      number_is_integer_ = value.kind == SchemaKind::Integer;
      if (byte == '-') mode_ = Mode::NumberMinus;
      else if (byte == '0') mode_ = Mode::NumberZero;
      else if (is_digit(byte)) mode_ = Mode::NumberInteger;
      else return false;
      scalar_node_ = id;
      number_negative_ = byte == '-';
      number_magnitude_ = is_digit(byte) ? static_cast<uint64_t>(byte - '0') : 0;
      return !number_is_integer_ || !has_value_bounds(value) || integer_reachable(value);
    case SchemaKind::Literals:
      return start_literal(id, /*is_key=*/false, 0, static_cast<uint16_t>(value.literals.size() - 1), byte);
    case SchemaKind::Choice:
      break;  // dispatch tables hold no Choice nodes
  }
  return false;
}

bool JsonSchemaGrammar::after_value(uint8_t byte) {
  if (is_whitespace(byte)) return whitespace();
  Frame& frame = top();
  const SchemaNode& container = node(frame.node);
  if (container.kind == SchemaKind::Object) {
    const auto property_count = static_cast<uint16_t>(container.properties.size());
    if (byte == ',' && frame.index < property_count) {
      frame.phase = Phase::Next;
      return true;
    }
    if (byte != '}' || container.next_required[frame.index] != property_count) return false;
  } else {
    if (byte == ',' && (unbounded(container.max_items) || frame.index < container.max_items)) {
      frame.phase = Phase::Next;
      return true;
    }
    if (byte != ']' || frame.index < container.min_items) return false;
  }
  close();
  return true;
}

void JsonSchemaGrammar::end_value() {
  mode_ = Mode::Container;
  Frame& frame = top();
  // A Union's one value is its tag, just read as literal candidate_: the object goes on as
  // that tag's variant, whose first property the tag was.
  if (node(frame.node).kind == SchemaKind::Union) frame.node = node(frame.node).branches[candidate_];
  if (frame.index < JsonSchema::kUnboundedItems) ++frame.index;  // objects: the next property
  frame.phase = Phase::AfterValue;
}

bool JsonSchemaGrammar::open(SchemaNodeId id) {
  if (depth_ == kMaxDepth) return false;
  frames_[depth_++] = Frame{id, 0, Phase::Open};
  mode_ = Mode::Container;
  return true;
}

void JsonSchemaGrammar::close() {
  frames_[--depth_] = Frame{};  // closed frames compare equal, so repeated states are found
  if (depth_ == 0) {
    mode_ = Mode::Done;
    return;
  }
  end_value();
}

std::string_view JsonSchemaGrammar::literal_text(uint16_t index) const {
  const SchemaNode& set = node(literal_node_);
  return literal_is_key_ ? std::string_view(set.properties[index].key_text) : std::string_view(set.literals[index]);
}

bool JsonSchemaGrammar::start_literal(SchemaNodeId id, bool is_key, uint16_t first, uint16_t last, uint8_t byte) {
  literal_node_ = id;
  literal_is_key_ = is_key;
  literal_last_ = last;
  candidate_ = first;
  literal_pos_ = 0;
  mode_ = Mode::Literal;
  return literal_byte(byte);
}

// candidate_ is the first text of the range whose first literal_pos_ bytes were read; the
// texts sharing that prefix all come after it. A byte that extends none of them ends the
// value when one of them is exactly the text read (only numbers are prefixes of each other).
bool JsonSchemaGrammar::literal_byte(uint8_t byte) {
  const std::string_view read = literal_text(candidate_).substr(0, literal_pos_);
  bool read_is_whole = false;
  bool extended = false;
  for (uint16_t index = candidate_; index <= literal_last_ && !extended; ++index) {
    const std::string_view text = literal_text(index);
    if (!text.starts_with(read)) continue;
    if (text.size() == read.size()) {
      read_is_whole = true;
    } else if (static_cast<uint8_t>(text[read.size()]) == byte) {
      candidate_ = index;
      ++literal_pos_;
      extended = true;
    }
  }
  if (!extended) {
    if (!read_is_whole || literal_is_key_) return false;
    end_value();
    return after_value(byte);
  }
  // Finish at once when the text read is whole and no longer text shares it.
  const std::string_view text = literal_text(candidate_);
  if (text.size() != literal_pos_) return true;
  for (uint16_t index = candidate_ + 1; index <= literal_last_; ++index) {
    const std::string_view other = literal_text(index);
    if (other.size() > text.size() && other.starts_with(text)) return true;
  }
  if (literal_is_key_) {
    top().index = candidate_;
    top().phase = Phase::Colon;
    mode_ = Mode::Container;
  } else {
    end_value();
  }
  return true;
}

uint32_t JsonSchemaGrammar::plain_string_room() const {
  if (mode_ != Mode::String) return 0;
  const SchemaNode& string = node(scalar_node_);
  return string.max_length == UINT32_MAX ? UINT32_MAX : string.max_length - string_chars_;
}

// A character starts at every byte read in Mode::String but the closing quote: a plain byte,
// a UTF-8 lead or the backslash of an escape (one character: surrogate escapes are refused
// where the length counts).
bool JsonSchemaGrammar::string_byte(uint8_t byte) {
  const SchemaNode& string = node(scalar_node_);
  const bool counted = has_length_bounds(string);
  if (counted && mode_ == Mode::StringUnicode) {
    if (string_.pending == 4) surrogate_escape_ = byte == 'd' || byte == 'D';
    if (string_.pending == 3 && surrogate_escape_ && ((byte >= '8' && byte <= '9') || (byte >= 'a' && byte <= 'f') ||
                                                      (byte >= 'A' && byte <= 'F')))
      return false;  // \uD800-\uDFFF
  }
  const bool starts_character = mode_ == Mode::String && byte != '"';
  const json_scalar::Step step = json_scalar::string_byte(mode_, string_, byte);
  if (step == json_scalar::Step::Rejected) return false;
  if (step == json_scalar::Step::Ended) {
    if (string_chars_ < string.min_length) return false;
    end_value();
    return true;
  }
  if (starts_character && counted && string_chars_++ == string.max_length) return false;
  return true;
}

bool JsonSchemaGrammar::integer_reachable(const SchemaNode& integer) const {
  const __int128 magnitude = number_magnitude_;
  if (mode_ == Mode::NumberMinus) {  // "-": -0, or k more digits, the first not 0
    if (meets(true, 0, 0, integer.minimum, integer.maximum)) return true;
    __int128 low = 1, high = 9;
    for (int digits = 1; digits <= 19; ++digits, low *= 10, high = high * 10 + 9)
      if (meets(true, low, high, integer.minimum, integer.maximum)) return true;
    return false;
  }
  if (meets(number_negative_, magnitude, magnitude, integer.minimum, integer.maximum)) return true;
  if (mode_ != Mode::NumberInteger) return false;  // "0" and "-0" take no more digits
  __int128 low = magnitude, high = magnitude;
  for (int digits = 1; digits <= 19 && low < kMagnitudeCap; ++digits) {
    low *= 10, high = high * 10 + 9;
    if (meets(number_negative_, low, high, integer.minimum, integer.maximum)) return true;
  }
  return false;
}

bool JsonSchemaGrammar::number_byte(uint8_t byte) {
  const json_scalar::Step step = json_scalar::number_byte(mode_, number_is_integer_, byte);
  const SchemaNode& number = node(scalar_node_);
  const bool bounded = number_is_integer_ && has_value_bounds(number);
  if (step == json_scalar::Step::Accepted) {
    if (!bounded) return true;
    // A digit (an integer has no other byte after its first): saturating at the cap.
    const __int128 grown = static_cast<__int128>(number_magnitude_) * 10 + (byte - '0');
    number_magnitude_ = grown < kMagnitudeCap ? static_cast<uint64_t>(grown) : kMagnitudeCap;
    return integer_reachable(number);
  }
  if (step == json_scalar::Step::Rejected) return false;
  // A whole number followed by a byte that cannot extend it: that byte follows the value.
  if (bounded && !meets(number_negative_, number_magnitude_, number_magnitude_, number.minimum, number.maximum))
    return false;
  end_value();
  return after_value(byte);
}

}  // namespace rackserve
