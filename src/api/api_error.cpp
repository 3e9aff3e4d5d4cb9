#include "api/api_error.h"

#include <nlohmann/json.hpp>

namespace rackserve::api {

const char* ApiError::type() const {
  switch (status_) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 422: return "unprocessable_entity_error";
    case 429: return "rate_limit_error";
    case 503: return "service_unavailable_error";
    default: return status_ >= 500 ? "internal_server_error" : "invalid_request_error";
  }
}

const char* ApiError::anthropic_type() const {
  switch (status_) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 503:
    case 529: return "overloaded_error";
    default: return status_ >= 500 ? "api_error" : "invalid_request_error";
  }
}

int ApiError::status_in(ErrorShape shape) const {
  return shape == ErrorShape::Anthropic && status_ == 422 ? 400 : status_;
}

std::string ApiError::body(ErrorShape shape) const {
  constexpr auto kReplace = nlohmann::json::error_handler_t::replace;
  if (shape == ErrorShape::Anthropic) {
    nlohmann::json error = {{"type", anthropic_type()}, {"message", what()}};
    return nlohmann::json{{"type", "error"}, {"error", error}}.dump(-1, ' ', false, kReplace);
  }
  nlohmann::json error = {{"message", what()},
                          {"type", type()},
                          {"param", param_.empty() ? nlohmann::json(nullptr) : nlohmann::json(param_)},
                          {"code", code_.empty() ? nlohmann::json(nullptr) : nlohmann::json(code_)}};
  return nlohmann::json{{"error", error}}.dump(-1, ' ', false, kReplace);
}

}  // namespace rackserve::api
