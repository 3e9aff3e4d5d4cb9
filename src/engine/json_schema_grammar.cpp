#include "engine/json_schema_grammar.h"

#include <algorithm>

#include "engine/json_bytes.h"
#include "engine/json_scalar_reader.h"

namespace rackserve {
namespace {

using json_bytes::is_digit;
using json_bytes::is_whitespace;

bool unbounded(uint32_t max_items) { return max_items >= JsonSchema::kUnboundedItems; }

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
      return true;
    case SchemaKind::Number:
    case SchemaKind::Integer:
      number_is_integer_ = value.kind == SchemaKind::Integer;
      if (byte == '-') mode_ = Mode::NumberMinus;
      else if (byte == '0') mode_ = Mode::NumberZero;
      else if (is_digit(byte)) mode_ = Mode::NumberInteger;
      else return false;
      return true;
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

bool JsonSchemaGrammar::string_byte(uint8_t byte) {
  const json_scalar::Step step = json_scalar::string_byte(mode_, string_, byte);
  if (step == json_scalar::Step::Ended) end_value();
  return step != json_scalar::Step::Rejected;
}

bool JsonSchemaGrammar::number_byte(uint8_t byte) {
  const json_scalar::Step step = json_scalar::number_byte(mode_, number_is_integer_, byte);
  if (step != json_scalar::Step::Ended) return step == json_scalar::Step::Accepted;
  // A whole number followed by a byte that cannot extend it: that byte follows the value.
  end_value();
  return after_value(byte);
}

}  // namespace rackserve
