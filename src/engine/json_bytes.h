// The byte classes JSON text is read with (RFC 8259 over RFC 3629 UTF-8), shared by the
// grammars (json_grammar.h, json_schema_grammar.h) and the token mask (token_mask.h), so
// all three agree on what a byte may be.
#pragma once

#include <cstdint>

namespace rackserve::json_bytes {

constexpr bool is_whitespace(uint8_t byte) { return byte == ' ' || byte == '\t' || byte == '\n' || byte == '\r'; }
constexpr bool is_digit(uint8_t byte) { return byte >= '0' && byte <= '9'; }
constexpr bool is_hex_digit(uint8_t byte) {
  return is_digit(byte) || (byte >= 'a' && byte <= 'f') || (byte >= 'A' && byte <= 'F');
}

// A UTF-8 lead byte: how many continuation bytes follow and the range of the first one
// (RFC 3629's table: the narrowed ranges exclude overlongs, surrogates and > U+10FFFF).
struct Utf8Lead {
  uint8_t continuations = 0;  // 0: not a valid lead byte
  uint8_t low = 0x80, high = 0xBF;
};

constexpr Utf8Lead utf8_lead(uint8_t byte) {
  if (byte >= 0xC2 && byte <= 0xDF) return {1};
  if (byte == 0xE0) return {2, 0xA0, 0xBF};
  if (byte == 0xED) return {2, 0x80, 0x9F};
  if (byte >= 0xE1 && byte <= 0xEF) return {2};
  if (byte == 0xF0) return {3, 0x90, 0xBF};
  if (byte >= 0xF1 && byte <= 0xF3) return {3};
  if (byte == 0xF4) return {3, 0x80, 0x8F};
  return {};  // ASCII (read by the caller), a stray continuation, C0, C1, F5..FF
}

// A raw byte a string may hold as itself outside any escape: not a control byte, '"' or '\'.
// (Bytes >= 0x80 must also form well-formed UTF-8: utf8_lead.)
constexpr bool is_plain_string_ascii(uint8_t byte) { return byte >= 0x20 && byte < 0x80 && byte != '"' && byte != '\\'; }

}  // namespace rackserve::json_bytes
