// API-key check for "Authorization: Bearer KEY". The comparison takes the same time
// whatever prefix of the key matches, so response timing does not leak the key.
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

 private:
  std::string key_;
};

}  // namespace rackserve::api
