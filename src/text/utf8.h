// UTF-8 helpers for the tokenizer: strict validation at the API boundary, code point
// iteration inside (on text already validated), and the lossy conversion that Hugging
// Face decoders apply to byte sequences (Rust's String::from_utf8_lossy: each maximal
// invalid subpart becomes one U+FFFD).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace rackserve::text::utf8 {

inline constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Byte offset of the first invalid sequence, or npos when `text` is valid UTF-8
// (no overlongs, no surrogates, nothing above U+10FFFF).
size_t find_invalid(std::string_view text);

// Length of the sequence that starts with `lead`; 1 for bytes that cannot start one.
inline size_t sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xF0) return lead < 0xF5 ? 4 : 1;
  if (lead >= 0xE0) return 3;
  if (lead >= 0xC2) return 2;
  return 1;
}

// Decodes the code point at `pos` of valid UTF-8 and advances `pos` past it.
char32_t decode(std::string_view text, size_t& pos);
void append(std::string& out, char32_t code_point);

// Appends `bytes` to `out`, replacing invalid subparts with U+FFFD exactly as
// String::from_utf8_lossy does for the whole of `bytes`.
void append_lossy(std::string& out, std::string_view bytes);

// `bytes` in double quotes for error messages: quotes, backslashes, control characters
// and invalid UTF-8 escaped (\n, \xNN), cut after 200 bytes. Safe for any input, unlike
// fmt's {:?}, which asserts on invalid UTF-8.
std::string quoted(std::string_view bytes);

// Streaming form of append_lossy: push() emits every character that later bytes cannot
// change and keeps at most 3 bytes of an unfinished sequence; finish() flushes them.
// Concatenated output equals append_lossy over the concatenated input.
class LossyDecoder {
 public:
  void push(std::string_view bytes, std::string& out);
  void finish(std::string& out);
  bool empty() const { return pending_.empty(); }

 private:
  std::string pending_;
};

}  // namespace rackserve::text::utf8
