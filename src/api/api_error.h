// ApiError: a failure the client caused or must be told about, carrying the HTTP status
// and what the error body says. Handlers throw it; the HTTP layer writes it in the shape
// of the API the route belongs to: OpenAI's {"error": {"message", "type", "param", "code"}}
// or, on /v1/messages, Anthropic's {"type": "error", "error": {"type", "message"}}.
// Anything else thrown inside a handler becomes a 500 with a generic message (details go
// to the log only).
//
// Status policy: 400 malformed or out-of-range input, 401 missing/wrong API key,
// 404 unknown model or route, 413 body over the size limit, 422 well-formed requests
// asking for something this server does not support, 503 queue full or engine stopped
// (with Retry-After), 500 internal failures. Anthropic's API has no 422 (its clients
// treat every rejected request as 400 invalid_request_error), so there "unsupported"
// answers 400, the message still saying what is not supported.
#pragma once

#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace rackserve::api {

// Which API's error body a route writes.
enum class ErrorShape {
  OpenAI,     // {"error": {"message", "type", "param", "code"}}
  Anthropic,  // {"type": "error", "error": {"type", "message"}}
};

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string message, std::string param = {}, std::string code = {})
      : std::runtime_error(message), status_(status), param_(std::move(param)), code_(std::move(code)) {}

  int status() const { return status_; }  // as thrown (the OpenAI status)
  // The HTTP status written in `shape`: status(), except 422 answers 400 for Anthropic.
  int status_in(ErrorShape shape) const;
  const std::string& param() const { return param_; }  // the offending request field, may be empty
  const std::string& code() const { return code_; }    // machine-readable code, may be empty
  // OpenAI's "type" for this status: invalid_request_error, authentication_error, ...
  const char* type() const;
  // Anthropic's "type" for this status: invalid_request_error, authentication_error,
  // not_found_error, request_too_large, rate_limit_error, overloaded_error, api_error.
  const char* anthropic_type() const;
  // The error body in `shape`, serialized; never throws (invalid UTF-8 in the message is
  // replaced).
  std::string body(ErrorShape shape = ErrorShape::OpenAI) const;

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
