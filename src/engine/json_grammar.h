// JsonGrammar: a byte-at-a-time recognizer of the prefixes of JSON documents (RFC 8259, UTF-8)
// whose top-level value is an object: the state constrained decoding for
// response_format {"type": "json_object"} advances with every sampled token's bytes.
// JsonTokenMask (token_mask.h) turns a state into the set of tokens that may come next.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "engine/json_scalar_reader.h"

namespace rackserve {

// The language: the first byte must be '{' (no whitespace before it); after that, JSON as
// RFC 8259 writes it, with whitespace (space, \t, \n, \r) wherever JSON allows it, including
// after the top-level object. Details:
//   - strings: raw bytes below 0x20 are refused; escapes \" \\ \/ \b \f \n \r \t and \uXXXX
//     (any four hex digits: a lone surrogate escape is accepted, as Python's json accepts it);
//     raw non-ASCII bytes must be well-formed UTF-8 (no overlongs, no encoded surrogates,
//     nothing above U+10FFFF);
//   - numbers: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? ; a number ends at the first byte
//     that cannot continue it, and that byte is then read as what follows the value;
//   - literals true, false, null;
//   - at most kMaxDepth nested containers (the top-level object counts as 1): the byte that
//     would open one more is refused.
// The state is a small trivially copyable value with no heap: copy it to explore.
class JsonGrammar {
 public:
  static constexpr int kMaxDepth = 128;

  // Advances by one byte and returns true when the text so far is still a prefix of some
  // document of the language. On false the state is unchanged.
  bool accept(uint8_t byte);
  // All or nothing: advances over every byte, or returns false and leaves the state unchanged.
  bool accept(std::string_view bytes);
  // The text so far is a whole document: the top-level object is closed (trailing whitespace
  // allowed). A complete state accepts whitespace only.
  bool complete() const { return mode_ == Mode::Done; }
  // Inside a string with no escape or multi-byte character pending: UINT32_MAX (no bound on
  // the characters that may follow), else 0. From such a state every byte string that is a
  // well-formed UTF-8 prefix without control bytes, '"' or '\\' and has at most that many
  // bytes is accepted and leaves the state inside the string (JsonTokenMask adds such tokens
  // wholesale).
  uint32_t plain_string_room() const { return mode_ == Mode::String ? UINT32_MAX : 0; }
  // Containers open at this point (0 before the first byte and after the document).
  int depth() const { return depth_; }

  // Compares the representation: equal states accept the same continuations (unequal ones
  // may too: fields the current mode does not use keep stale values).
  bool operator==(const JsonGrammar&) const = default;

 private:
  enum class Mode : uint8_t {
    Start,               // nothing read: only '{'
    ObjectOpen,          // after '{': a key or '}'
    ObjectKey,           // after ',' in an object: a key
    Colon,               // after a key
    Value,               // after ':' or after ',' in an array
    ArrayOpen,           // after '[': a value or ']'
    AfterValue,          // ',' or the closing bracket of the innermost container
    String,              // inside a string (a key when in_key_)
    StringEscape,        // after '\'
    StringUnicode,       // inside \uXXXX: string_.pending hex digits left
    StringUtf8,          // inside a multi-byte character: string_.pending continuation bytes left
    NumberMinus,         // "-"
    NumberZero,          // "0" or "-0": no more integer digits
    NumberInteger,       // [1-9][0-9]*
    NumberDot,           // "." waiting for its first digit
    NumberFraction,      // at least one fraction digit
    NumberExponentMark,  // "e" or "E"
    NumberExponentSign,  // "e+" or "e-"
    NumberExponent,      // at least one exponent digit
    Literal,             // inside true/false/null: literal_ and the next position pending_
    Done,                // the top-level object is closed: whitespace only
  };

  // The transition; may leave the state half-changed when it returns false (callers
  // work on a copy).
  bool step(uint8_t byte);
  bool value_start(uint8_t byte);
  bool after_value(uint8_t byte);
  bool string_byte(uint8_t byte);
  bool number_byte(uint8_t byte);
  bool literal_byte(uint8_t byte);
  bool open(bool is_object, Mode next);
  void close();
  bool innermost_is_object() const;

  static constexpr int kWordBits = 64;
  // Bit d is set when the container at nesting level d (0 = top-level) is an object.
  std::array<uint64_t, kMaxDepth / kWordBits> object_levels_{};
  uint8_t depth_ = 0;
  Mode mode_ = Mode::Start;
  bool in_key_ = false;  // the open string is an object key
  uint8_t literal_ = 0;  // which of true/false/null (Mode::Literal)
  uint8_t pending_ = 0;  // Mode::Literal: the next position in the literal
  json_scalar::StringState string_;  // the string modes' escape and UTF-8 bookkeeping
};

static_assert(std::is_trivially_copyable_v<JsonGrammar>);
static_assert(JsonGrammar::kMaxDepth % 64 == 0 && JsonGrammar::kMaxDepth <= 255, "depth_ is a uint8_t");

}  // namespace rackserve
