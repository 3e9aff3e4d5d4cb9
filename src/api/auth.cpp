#include "api/auth.h"

#include <algorithm>
#include <cctype>

namespace rackserve::api {

bool constant_time_equals(std::string_view a, std::string_view b) {
  // Walk the longer length so a short guess costs as long as a full one; the length
  // difference itself is folded into the result.
  const size_t length = std::max(a.size(), b.size());
  volatile unsigned char difference = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < length; ++i) {
    unsigned char left = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char right = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    difference = difference | static_cast<unsigned char>(left ^ right);
  }
  return difference == 0;
}

namespace {

std::string_view trim_blanks(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

}  // namespace

bool ApiKeyCheck::allows(std::string_view header) const {
  if (key_.empty()) return true;
  constexpr std::string_view kScheme = "bearer ";
  if (header.size() < kScheme.size()) return false;
  for (size_t i = 0; i < kScheme.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(header[i])) != kScheme[i]) return false;
  return constant_time_equals(trim_blanks(header.substr(kScheme.size())), key_);
}

bool ApiKeyCheck::allows_x_api_key(std::string_view header) const {
  if (key_.empty()) return true;
  std::string_view token = trim_blanks(header);
  return !token.empty() && constant_time_equals(token, key_);
}

}  // namespace rackserve::api
