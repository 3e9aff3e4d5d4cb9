// Python string methods. Byte searches are safe on UTF-8 (a valid needle cannot match in
// the middle of a code point); indexes returned to templates are converted to code points.
#include "text/jinja/py_string.h"

#include <algorithm>

#include "text/jinja/error.h"
#include "text/jinja/operators.h"
#include "text/jinja/unicode.h"

namespace rackserve::jinja::py {

std::string strip(std::string_view text, const std::optional<std::string>& chars, StripSide side) {
  const std::u32string s = unicode::to_u32(text);
  const std::u32string set = chars ? unicode::to_u32(*chars) : std::u32string();
  const auto strippable = [&](char32_t c) {
    return chars ? set.find(c) != std::u32string::npos : unicode::is_space(c);
  };
  size_t begin = 0;
  size_t end = s.size();
  if (side != StripSide::Right) {
    while (begin < end && strippable(s[begin])) ++begin;
  }
  if (side != StripSide::Left) {
    while (end > begin && strippable(s[end - 1])) --end;
  }
  return unicode::to_utf8(std::u32string_view(s).substr(begin, end - begin));
}

namespace {

void check_separator(const std::optional<std::string>& sep) {
  if (sep && sep->empty()) throw Error(ErrorKind::Value, "empty separator");
}

}  // namespace

std::vector<std::string> split(std::string_view text, const std::optional<std::string>& sep, int64_t maxsplit) {
  check_separator(sep);
  std::vector<std::string> out;
  if (sep) {
    size_t start = 0;
    while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
      const size_t at = text.find(*sep, start);
      if (at == std::string_view::npos) break;
      out.emplace_back(text.substr(start, at - start));
      start = at + sep->size();
    }
    out.emplace_back(text.substr(start));
    return out;
  }
  const std::u32string s = unicode::to_u32(text);
  size_t i = 0;
  while (true) {
    while (i < s.size() && unicode::is_space(s[i])) ++i;
    if (i >= s.size()) break;
    if (maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit) {
      size_t end = s.size();
      while (end > i && unicode::is_space(s[end - 1])) --end;
      out.push_back(unicode::to_utf8(std::u32string_view(s).substr(i, end - i)));
      break;
    }
    const size_t start = i;
    while (i < s.size() && !unicode::is_space(s[i])) ++i;
    out.push_back(unicode::to_utf8(std::u32string_view(s).substr(start, i - start)));
  }
  return out;
}

std::vector<std::string> rsplit(std::string_view text, const std::optional<std::string>& sep, int64_t maxsplit) {
  check_separator(sep);
  if (maxsplit < 0) return split(text, sep, maxsplit);
  std::vector<std::string> out;
  if (sep) {
    size_t end = text.size();
    while (static_cast<int64_t>(out.size()) < maxsplit) {
      if (end < sep->size()) break;
      const size_t at = text.rfind(*sep, end - sep->size());
      if (at == std::string_view::npos) break;
      out.emplace_back(text.substr(at + sep->size(), end - at - sep->size()));
      end = at;
    }
    out.emplace_back(text.substr(0, end));
    std::reverse(out.begin(), out.end());
    return out;
  }
  const std::u32string s = unicode::to_u32(text);
  size_t i = s.size();
  while (true) {
    while (i > 0 && unicode::is_space(s[i - 1])) --i;
    if (i == 0) break;
    if (static_cast<int64_t>(out.size()) >= maxsplit) {
      size_t begin = 0;
      while (begin < i && unicode::is_space(s[begin])) ++begin;
      out.push_back(unicode::to_utf8(std::u32string_view(s).substr(begin, i - begin)));
      break;
    }
    const size_t end = i;
    while (i > 0 && !unicode::is_space(s[i - 1])) --i;
    out.push_back(unicode::to_utf8(std::u32string_view(s).substr(i, end - i)));
  }
  std::reverse(out.begin(), out.end());
  return out;
}

std::vector<std::string> splitlines(std::string_view text, bool keepends) {
  const std::u32string s = unicode::to_u32(text);
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (!unicode::is_line_break(s[i])) continue;
    size_t end = i + 1;
    if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') end = i + 2;
    out.push_back(unicode::to_utf8(std::u32string_view(s).substr(start, (keepends ? end : i) - start)));
    start = end;
    i = end - 1;
  }
  if (start < s.size()) out.push_back(unicode::to_utf8(std::u32string_view(s).substr(start)));
  return out;
}

std::string replace(std::string_view text, std::string_view old, std::string_view replacement, int64_t count,
                    size_t max_size) {
  std::string out;
  if (old.empty()) {
    // Python inserts the replacement before every code point and at the end.
    int64_t done = 0;
    size_t pos = 0;
    while (pos <= text.size()) {
      if (count >= 0 && done >= count) {
        out.append(text.substr(pos));
        break;
      }
      out.append(replacement);
      ++done;
      check_size(out.size(), max_size);
      if (pos == text.size()) break;
      const size_t start = pos;
      unicode::decode(text, pos);
      out.append(text.substr(start, pos - start));
    }
    return out;
  }
  size_t start = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    const size_t at = text.find(old, start);
    if (at == std::string_view::npos) break;
    out.append(text.substr(start, at - start));
    out.append(replacement);
    check_size(out.size(), max_size);
    start = at + old.size();
    ++done;
  }
  out.append(text.substr(start));
  check_size(out.size(), max_size);
  return out;
}

std::string capitalize(std::string_view text) {
  const std::u32string s = unicode::to_u32(text);
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i == 0) {
      out += unicode::upper(unicode::to_utf8(std::u32string(1, s[0])));
    } else {
      unicode::append_lower_at(out, s, i);
    }
  }
  return out;
}

std::string title(std::string_view text) {
  const std::u32string s = unicode::to_u32(text);
  std::string out;
  bool previous_cased = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char32_t c = s[i];
    if (previous_cased) {
      unicode::append_lower_at(out, s, i);
    } else {
      out += unicode::upper(unicode::to_utf8(std::u32string(1, c)));
    }
    previous_cased = unicode::is_upper(c) || unicode::is_lower(c);
  }
  return out;
}

std::string swapcase(std::string_view text) {
  std::string out;
  for (size_t pos = 0; pos < text.size();) {
    const char32_t c = unicode::decode(text, pos);
    const std::string one = unicode::to_utf8(std::u32string(1, c));
    out += unicode::is_upper(c) ? unicode::lower(one) : unicode::is_lower(c) ? unicode::upper(one) : one;
  }
  return out;
}

int64_t find(std::string_view text, std::string_view needle, bool from_right) {
  const size_t at = from_right ? text.rfind(needle) : text.find(needle);
  if (at == std::string_view::npos) return -1;
  return static_cast<int64_t>(unicode::count_code_points(text.substr(0, at)));
}

int64_t count(std::string_view text, std::string_view needle) {
  if (needle.empty()) return static_cast<int64_t>(unicode::count_code_points(text)) + 1;
  int64_t n = 0;
  for (size_t at = text.find(needle); at != std::string_view::npos; at = text.find(needle, at + needle.size())) ++n;
  return n;
}

std::string center(std::string_view text, int64_t width) {
  const int64_t length = static_cast<int64_t>(unicode::count_code_points(text));
  if (width <= length) return std::string(text);
  const int64_t margin = width - length;
  // CPython: left = margin / 2 + (margin & width & 1).
  const int64_t left = margin / 2 + (margin & width & 1);
  return std::string(static_cast<size_t>(left), ' ') + std::string(text) +
         std::string(static_cast<size_t>(margin - left), ' ');
}

}  // namespace rackserve::jinja::py
