// API-key check for "Authorization: Bearer KEY" (OpenAI clients) and "x-api-key: KEY"
// (Anthropic clients). The comparison takes the same time whatever prefix of the key
// matches, so response timing does not leak the key.
#pragma once

#include <string>
#include <string_view>

namespace rackserve::api {

// a == b in time that depends only on the lengths.
bool constant_time_equals(std::string_view a, std::string_view b);

class ApiKeyCheck {
 public:
  // An empty key disables the check.
  explicit ApiKeyCheck(std::string key) : key_(std::move(key)) {}
  bool enabled() const { return !key_.empty(); }
  // True when the check is disabled or `authorization_header` is "Bearer <the key>"
  // (scheme case-insensitive, as RFC 7235 says).
  bool allows(std::string_view authorization_header) const;
  // True when the check is disabled or `x_api_key_header` is the key (blanks around it
  // ignored), as Anthropic clients send it.
  bool allows_x_api_key(std::string_view x_api_key_header) const;
  // Either header carries the key (every authenticated route takes both).
  bool allows(std::string_view authorization_header, std::string_view x_api_key_header) const {
    return allows(authorization_header) || allows_x_api_key(x_api_key_header);
  }

 private:
  std::string key_;
};

}  // namespace rackserve::api
