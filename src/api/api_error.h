// ApiError: a failure the client caused or must be told about, carrying the HTTP status
// and the OpenAI error object ({"error": {"message", "type", "param", "code"}}).
// Handlers throw it; the HTTP layer turns it into the response. Anything else thrown
// inside a handler becomes a 500 with a generic message (details go to the log only).
//
// Status policy: 400 malformed or out-of-range input, 401 missing/wrong API key,
// 404 unknown model or route, 413 body over the size limit, 422 well-formed requests
// asking for something this server does not support, 503 queue full or engine stopped
// (with Retry-After), 500 internal failures.
#pragma once

#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace rackserve::api {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string message, std::string param = {}, std::string code = {})
      : std::runtime_error(message), status_(status), param_(std::move(param)), code_(std::move(code)) {}

  int status() const { return status_; }
  const std::string& param() const { return param_; }  // the offending request field, may be empty
  const std::string& code() const { return code_; }    // machine-readable code, may be empty
  // OpenAI's "type" for this status: invalid_request_error, authentication_error, ...
  const char* type() const;
  // {"error": {...}} serialized; never throws (invalid UTF-8 in the message is replaced).
  std::string body() const;

 private:
  int status_;
  std::string param_;
  std::string code_;
};

// 400 with a formatted message naming `param`.
template <typename... Args>
ApiError bad_request(std::string param, fmt::format_string<Args...> format, Args&&... args) {
  return ApiError(400, fmt::format(format, std::forward<Args>(args)...), std::move(param));
}

// 422: the request is valid but asks for a feature this server does not offer.
inline ApiError unsupported(std::string param, const std::string& what) {
  return ApiError(422, what + " is not supported by this server", std::move(param), "unsupported_parameter");
}

}  // namespace rackserve::api
