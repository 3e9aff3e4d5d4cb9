// UTF-8 helpers with Python `str` semantics: templates index, slice, strip and case-map
// strings by code point, as jinja2 does on Python strings. All functions accept invalid
// UTF-8 without crashing (a bad byte decodes as U+FFFD and counts as one code point).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace rackserve::jinja::unicode {

// Decodes the code point at `pos` and advances `pos` past it.
char32_t decode(std::string_view text, size_t& pos);
void append_utf8(std::string& out, char32_t code_point);
std::u32string to_u32(std::string_view text);
std::string to_utf8(std::u32string_view text);

// Byte offset of the first invalid UTF-8 sequence, or npos when the text is valid.
size_t find_invalid_utf8(std::string_view text);
size_t count_code_points(std::string_view text);

// Python's str.isspace(): ASCII whitespace, \x1c-\x1f, \x85 and the Unicode Zs/Zl/Zp spaces.
bool is_space(char32_t c);
// Python's str.isprintable() for one character, approximated from the Unicode blocks
// real chat content uses (controls, format characters, separators, private use).
bool is_printable(char32_t c);
// Cased letters and simple case mappings for ASCII, Latin-1, Latin Extended-A, Greek and
// Cyrillic; other scripts have no case and map to themselves.
bool is_alpha(char32_t c);
bool is_digit(char32_t c);
bool is_upper(char32_t c);
bool is_lower(char32_t c);
char32_t to_upper(char32_t c);
char32_t to_lower(char32_t c);

// Python str.upper()/lower() ("ß".upper() is "SS").
std::string upper(std::string_view text);
std::string lower(std::string_view text);
// Lower case of text[index] in its context (Greek final sigma looks at the neighbours), as
// Python's str.lower() would produce it for that position; appended to `out`.
void append_lower_at(std::string& out, const std::u32string& text, size_t index);
// Python's universal newlines for str.splitlines(): \n \r \r\n \v \f \x1c-\x1e \x85 \u2028 \u2029.
bool is_line_break(char32_t c);

}  // namespace rackserve::jinja::unicode
