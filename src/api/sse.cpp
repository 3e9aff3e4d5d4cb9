#include "api/sse.h"

namespace rackserve::api {

std::string to_json_text(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string sse_event(const nlohmann::json& payload) { return "data: " + to_json_text(payload) + "\n\n"; }

std::string sse_named_event(const std::string& name, const nlohmann::json& payload) {
  return "event: " + name + "\n" + sse_event(payload);
}

}  // namespace rackserve::api
