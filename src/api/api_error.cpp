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

std::string ApiError::body() const {
  nlohmann::json error = {{"message", what()},
                          {"type", type()},
                          {"param", param_.empty() ? nlohmann::json(nullptr) : nlohmann::json(param_)},
                          {"code", code_.empty() ? nlohmann::json(nullptr) : nlohmann::json(code_)}};
  return nlohmann::json{{"error", error}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace rackserve::api
