// HttpServer: the OpenAI- and Anthropic-compatible HTTP front of one Engine. Wiring only:
// it configures cpp-httplib (thread pool, body limit, timeouts, error bodies) and
// registers the routes of generation_routes, anthropic_routes, text_routes and info_routes.
//
// Threads: httplib's pool runs the handlers; a streaming response holds its thread until
// the stream ends, so the pool is sized from max_running_requests (see ServerConfig).
#pragma once

#include <memory>

#include "api/served_model.h"
#include "config/server_config.h"
#include "engine/engine.h"

namespace httplib {
class Server;
}

namespace rackserve::api {

struct ApiContext;

class HttpServer {
 public:
  // `config`, `engine` and `model` must outlive the server.
  HttpServer(const ServerConfig& config, Engine& engine, const ServedModel& model);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds config.host:config.port (port 0: a free port) and returns the bound port.
  // Throws rackserve::Error when the address cannot be bound.
  int bind();
  // Serves on the bound socket until stop(); blocks the calling thread.
  void serve();
  // Stops accepting and makes serve() return; safe from any thread, idempotent.
  void stop();

 private:
  const ServerConfig& config_;
  std::unique_ptr<ApiContext> context_;
  std::unique_ptr<httplib::Server> server_;
};

}  // namespace rackserve::api
