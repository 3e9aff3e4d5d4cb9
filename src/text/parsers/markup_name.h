// Reading a name (function, parameter, call id) out of tool-call markup: the text between
// two markers without the whitespace around it and, as MiniMax-M2 writes
// name="get_weather", without one pair of enclosing quotes.
#pragma once

#include <string>
#include <string_view>

namespace rackserve::text {

inline constexpr std::string_view kMarkupWhitespace = " \t\r\n";

inline std::string_view trim_whitespace(std::string_view text) {
  const size_t first = text.find_first_not_of(kMarkupWhitespace);
  if (first == std::string_view::npos) return {};
  return text.substr(first, text.find_last_not_of(kMarkupWhitespace) - first + 1);
}

inline std::string markup_name(std::string_view text) {
  text = trim_whitespace(text);
  if (text.size() >= 2 && (text.front() == '"' || text.front() == '\'') && text.back() == text.front()) {
    text = trim_whitespace(text.substr(1, text.size() - 2));
  }
  return std::string(text);
}

}  // namespace rackserve::text
