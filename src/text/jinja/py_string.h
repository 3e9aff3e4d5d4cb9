// Python `str` methods on UTF-8 text, by code point, as templates call them
// (s.strip(), s.split(","), s.replace(a, b), s.title(), ...). Shared by the string methods
// and the filters built on them (trim, replace, capitalize, title, center, indent).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rackserve::jinja::py {

enum class StripSide { Both, Left, Right };
// str.strip/lstrip/rstrip; nullopt chars strips whitespace.
std::string strip(std::string_view text, const std::optional<std::string>& chars, StripSide side);
// str.split(sep, maxsplit) / rsplit; nullopt sep splits on whitespace runs. Throws
// ValueError for an empty separator.
std::vector<std::string> split(std::string_view text, const std::optional<std::string>& sep, int64_t maxsplit);
std::vector<std::string> rsplit(std::string_view text, const std::optional<std::string>& sep, int64_t maxsplit);
std::vector<std::string> splitlines(std::string_view text, bool keepends);
// str.replace(old, new, count); count < 0 replaces all. `max_size` bounds the result.
std::string replace(std::string_view text, std::string_view old, std::string_view replacement, int64_t count,
                    size_t max_size);
std::string capitalize(std::string_view text);
std::string title(std::string_view text);
std::string swapcase(std::string_view text);
// str.find / rfind / count over the whole string; code point index or -1.
int64_t find(std::string_view text, std::string_view needle, bool from_right);
int64_t count(std::string_view text, std::string_view needle);
// str.center(width), str.ljust, str.rjust with a space fill.
std::string center(std::string_view text, int64_t width);

}  // namespace rackserve::jinja::py
