// JsonSchemaGrammar: a byte-at-a-time recognizer of the prefixes of the JSON documents a
// compiled JsonSchema (json_schema.h) accepts: the state constrained decoding for
// response_format {"type": "json_schema"} advances with every sampled token's bytes. Same
// contract as JsonGrammar (json_grammar.h), so JsonTokenMask and GrammarConstraint drive both.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "engine/json_schema.h"
#include "engine/json_scalar_reader.h"

namespace rackserve {

// The language: JSON (RFC 8259, UTF-8; strings, escapes and numbers exactly as JsonGrammar
// reads them) restricted by the schema, and stricter than JSON Schema validation in a few
// deliberate ways, so that every prefix it accepts can still be completed:
//   - objects hold only their declared properties, in declaration order, each at most once;
//     required ones cannot be skipped, optional ones can;
//   - keys and enum/const values must be written as nlohmann::json dumps them (no escapes a
//     dump would not use; 1.0 stays 1.0);
//   - whitespace between tokens is allowed, but at most the schema's max_whitespace_run()
//     bytes in a row (8 by default; after the document too), so a model cannot loop on
//     whitespace forever; none before
//     the document's first byte ('{', or '[' for an array at the top);
//   - alternatives that are objects (a Union) are told apart by their first property's value,
//     so that property comes first;
//   - a string with minLength / maxLength writes no \u escape of a surrogate (an astral
//     character is written as its UTF-8 bytes), so that every escape is one character;
//   - at most kMaxDepth open containers (the top-level object counts as 1): a byte that would
//     open one more is refused, so a recursive schema whose documents must nest deeper has
//     no complete document here.
// The state is trivially copyable and holds no heap: a pointer to the schema (which must
// outlive it) and a fixed stack of container frames. Copy it to explore.
class JsonSchemaGrammar {
 public:
  static constexpr int kMaxDepth = 16;

  explicit JsonSchemaGrammar(const JsonSchema& schema) : schema_(&schema) {}

  // Advances by one byte and returns true when the text so far is still a prefix of some
  // document of the language. On false the state is unchanged.
  bool accept(uint8_t byte);
  // All or nothing: advances over every byte, or returns false and leaves the state unchanged.
  bool accept(std::string_view bytes);
  // The text so far is a whole document: the top-level object (or array) is closed (trailing
  // whitespace allowed, up to the bound). A complete state accepts whitespace only.
  bool complete() const { return mode_ == Mode::Done; }
  // As JsonGrammar::plain_string_room: inside a string value with no escape or multi-byte
  // character pending, the characters its maxLength leaves (UINT32_MAX: none); else 0.
  uint32_t plain_string_room() const;
  // Containers open at this point.
  int depth() const { return depth_; }

  // Compares the representation (fields the current mode does not use may differ between
  // states that accept the same continuations).
  bool operator==(const JsonSchemaGrammar&) const = default;

 private:
  enum class Mode : uint8_t {
    Start,          // nothing read: only the root's '{' or '['
    Container,      // inside the top frame, between tokens: see Phase
    Literal,        // matching one of a literal set (a key or an enum value): candidate_, literal_pos_
    String,         // inside a string value
    StringEscape,   // after '\'
    StringUnicode,  // inside \uXXXX: string_.pending hex digits left
    StringUtf8,     // inside a multi-byte character: string_.pending continuation bytes left
    NumberMinus, NumberZero, NumberInteger, NumberDot, NumberFraction, NumberExponentMark, NumberExponentSign,
    NumberExponent,
    Done,  // the top-level object is closed: whitespace only
  };
  enum class Phase : uint8_t {
    Open,        // after '{' or '[': a key/value or the close
    Next,        // after ',': a key (object) or a value (array)
    Colon,       // object: after a key; index is the property
    Value,       // object: after ':'; index is the property
    AfterValue,  // ',' or the close
  };
  // An open container. Object: `index` is the next property that may be written (Open, Next,
  // AfterValue) or the one being written (Colon, Value). Array: the items written so far,
  // saturating at JsonSchema::kUnboundedItems.
  struct Frame {
    SchemaNodeId node = kNoSchemaNode;
    uint16_t index = 0;
    Phase phase = Phase::Open;
    bool operator==(const Frame&) const = default;
  };

  // The transition; may leave the state half-changed when it returns false (callers work on
  // a copy).
  bool step(uint8_t byte);
  bool whitespace();
  bool container_byte(uint8_t byte);
  bool value_start(SchemaNodeId node, uint8_t byte);
  bool after_value(uint8_t byte);
  void end_value();
  bool open(SchemaNodeId node);
  void close();
  bool literal_byte(uint8_t byte);
  bool start_literal(SchemaNodeId node, bool is_key, uint16_t first, uint16_t last, uint8_t byte);
  bool string_byte(uint8_t byte);
  bool number_byte(uint8_t byte);
  // Integer with bounds: whether the number read so far (mode_, number_negative_,
  // number_magnitude_) can still end inside [minimum, maximum].
  bool integer_reachable(const SchemaNode& integer) const;
  std::string_view literal_text(uint16_t index) const;
  Frame& top() { return frames_[depth_ - 1]; }
  const SchemaNode& node(SchemaNodeId id) const { return schema_->node(id); }

  const JsonSchema* schema_;
  std::array<Frame, kMaxDepth> frames_{};
  uint8_t depth_ = 0;
  Mode mode_ = Mode::Start;
  uint8_t whitespace_run_ = 0;  // whitespace bytes since the last other byte (outside strings)
  bool number_is_integer_ = false;
  // Literal mode: the set (an Object's keys when literal_is_key_, else a Literals node's
  // values), the range of it still allowed, the candidate matched so far and how far.
  bool literal_is_key_ = false;
  SchemaNodeId literal_node_ = kNoSchemaNode;
  uint16_t literal_last_ = 0;
  uint16_t candidate_ = 0;
  uint16_t literal_pos_ = 0;
  json_scalar::StringState string_;  // the string modes' escape and UTF-8 bookkeeping
  // The string or number value being read: its node, the string's characters so far, the
  // number's sign and digits (saturating above int64's range).
  SchemaNodeId scalar_node_ = kNoSchemaNode;
  uint32_t string_chars_ = 0;
  bool surrogate_escape_ = false;  // a \u escape's first hex digit was d / D
  bool number_negative_ = false;
  uint64_t number_magnitude_ = 0;
};

static_assert(std::is_trivially_copyable_v<JsonSchemaGrammar>);

}  // namespace rackserve
