// Tables for the GPT-2 byte-level alphabet (see byte_level.h).
#include "text/byte_level.h"

#include "text/utf8.h"

namespace rackserve::text::byte_level {
namespace {

// Printable Latin-1 bytes spell themselves; the other 68 bytes take U+0100.. in order.
struct Tables {
  std::array<char32_t, 256> chars{};
  std::array<int, 324> bytes{};  // indexed by code point, -1 when not in the alphabet
  Tables() {
    bytes.fill(-1);
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      chars[b] = printable ? static_cast<char32_t>(b) : next++;
      bytes[chars[b]] = b;
    }
  }
};

const Tables& tables() {
  static const Tables instance;
  return instance;
}

}  // namespace

char32_t char_for_byte(unsigned char byte) { return tables().chars[byte]; }

std::optional<unsigned char> byte_for_char(char32_t c) {
  if (c >= tables().bytes.size() || tables().bytes[c] < 0) return std::nullopt;
  return static_cast<unsigned char>(tables().bytes[c]);
}

std::optional<std::string> to_bytes(std::string_view token) {
  std::string out;
  out.reserve(token.size());
  size_t pos = 0;
  while (pos < token.size()) {
    const auto byte = byte_for_char(utf8::decode(token, pos));
    if (!byte) return std::nullopt;
    out.push_back(static_cast<char>(*byte));
  }
  return out;
}

std::string to_chars(std::string_view bytes) {
  std::string out;
  for (char b : bytes) utf8::append(out, char_for_byte(static_cast<unsigned char>(b)));
  return out;
}

}  // namespace rackserve::text::byte_level
