// ApiContext: everything a route handler may use, by reference. Owned by HttpServer;
// the engine and the served model outlive it. Handlers never touch engine state
// directly: they submit, read streams and cancel (engine.h's thread-safe surface).
#pragma once

#include <functional>
#include <optional>
#include <string>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "api/api_error.h"
#include "api/auth.h"
#include "api/served_model.h"
#include "config/server_config.h"
#include "engine/engine.h"

namespace rackserve::api {

struct ApiContext {
  const ServerConfig& config;
  Engine& engine;
  const ServedModel& model;
  ApiKeyCheck api_key;
};

enum class Auth { Required, Open };

// Runs `handler` for one HTTP request: checks the API key (401) when `auth` is Required
// ("Authorization: Bearer KEY" or "x-api-key: KEY"), turns ApiError into its status and
// error body in `shape`, any other exception into a 500 (logged). Never lets an
// exception escape into httplib.
void run_handler(const ApiContext& context, const httplib::Request& request, httplib::Response& response, Auth auth,
                 const std::function<void()>& handler, ErrorShape shape = ErrorShape::OpenAI);

// The request body as JSON, objects in the client's key order (ordered_json_parser.h);
// 400 when it is not valid JSON.
nlohmann::ordered_json parse_json_body(const httplib::Request& request);

// 404 unless `requested` is absent or names the served model.
void check_model_name(const ApiContext& context, const std::optional<std::string>& requested);

// Writes an ApiError as the response (status, JSON body in `shape`, Retry-After for 503).
void write_error(httplib::Response& response, const ApiError& error, ErrorShape shape = ErrorShape::OpenAI);

// The error shape of the API `path` belongs to: Anthropic's under /v1/messages.
ErrorShape error_shape_for_path(const std::string& path);

}  // namespace rackserve::api
