// The GPT-2 byte-level alphabet: every byte maps to one printable code point, so a
// byte-level vocabulary spells raw bytes as text ("Ġ" is the space byte 0x20).
// We encode on raw bytes and convert vocabularies once at load time.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace rackserve::text::byte_level {

// The code point that spells `byte`.
char32_t char_for_byte(unsigned char byte);

// The byte that `c` spells, if `c` is in the alphabet.
std::optional<unsigned char> byte_for_char(char32_t c);

// Raw bytes of a byte-level token if every character of `token` is in the alphabet.
std::optional<std::string> to_bytes(std::string_view token);

// Byte-level spelling of raw bytes.
std::string to_chars(std::string_view bytes);

}  // namespace rackserve::text::byte_level
