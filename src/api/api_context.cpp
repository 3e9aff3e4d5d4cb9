#include "api/api_context.h"

#include <string_view>

#include <spdlog/spdlog.h>

#include "api/api_error.h"
#include "api/ordered_json_parser.h"
#include "core/error.h"

namespace rackserve::api {

void write_error(httplib::Response& response, const ApiError& error, ErrorShape shape) {
  response.status = error.status_in(shape);
  if (error.status() == 503) response.set_header("Retry-After", "1");
  if (error.status() == 401) response.set_header("WWW-Authenticate", "Bearer");
  response.set_content(error.body(shape), "application/json");
}

ErrorShape error_shape_for_path(const std::string& path) {
  constexpr std::string_view kAnthropicPrefix = "/v1/messages";
  const bool anthropic = path.compare(0, kAnthropicPrefix.size(), kAnthropicPrefix) == 0 &&
                         (path.size() == kAnthropicPrefix.size() || path[kAnthropicPrefix.size()] == '/');
  return anthropic ? ErrorShape::Anthropic : ErrorShape::OpenAI;
}

void run_handler(const ApiContext& context, const httplib::Request& request, httplib::Response& response, Auth auth,
                 const std::function<void()>& handler, ErrorShape shape) {
  try {
    if (auth == Auth::Required &&
        !context.api_key.allows(request.get_header_value("Authorization"), request.get_header_value("x-api-key")))
      throw ApiError(401, "Invalid or missing API key: send \"Authorization: Bearer <key>\" or \"x-api-key: <key>\"", {},
                     "invalid_api_key");
    handler();
  } catch (const ApiError& error) {
    write_error(response, error, shape);
  } catch (const std::exception& error) {
    spdlog::error("{} {}: internal error: {}", request.method, request.path, error.what());
    write_error(response, ApiError(500, "Internal server error"), shape);
  }
}

nlohmann::ordered_json parse_json_body(const httplib::Request& request) {
  // Depth is bounded by the body size limit; nlohmann's parser is recursive, so cap the
  // nesting too, before a hostile "[[[[…" reaches it.
  constexpr int kMaxDepth = 256;
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : request.body) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxDepth) throw ApiError(400, "JSON nesting too deep", {}, "invalid_json");
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  auto body = parse_ordered_json(request.body, kMaxDepth);
  if (!body) throw ApiError(400, "The request body is not valid JSON", {}, "invalid_json");
  return std::move(*body);
}

void check_model_name(const ApiContext& context, const std::optional<std::string>& requested) {
  if (requested && *requested != context.model.name)
    throw ApiError(404, fmt::format("The model '{}' does not exist; this server serves '{}'", *requested, context.model.name),
                   "model", "model_not_found");
}

}  // namespace rackserve::api
