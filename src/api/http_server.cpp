#include "api/http_server.h"

#include <algorithm>

#include <httplib.h>
#include <spdlog/spdlog.h>

#include "api/anthropic_routes.h"
#include "api/api_context.h"
#include "api/api_error.h"
#include "api/generation_routes.h"
#include "api/info_routes.h"
#include "api/text_routes.h"
#include "core/error.h"

namespace rackserve::api {
namespace {

// A response httplib produced itself (unknown route, body over the limit) gets an error
// body too, in the shape of the API its path belongs to; responses a handler filled are
// left alone.
httplib::Server::HandlerResponse fill_error_body(const httplib::Request& request, httplib::Response& response) {
  if (!response.body.empty() || response.content_length_ > 0) return httplib::Server::HandlerResponse::Unhandled;
  std::string message;
  switch (response.status) {
    case 404: message = "No route " + request.method + " " + request.path; break;
    case 413: message = "The request body is larger than the server accepts"; break;
    case 405: message = "Method not allowed"; break;
    default: message = "The request failed"; break;
  }
  write_error(response, ApiError(response.status, message), error_shape_for_path(request.path));
  return httplib::Server::HandlerResponse::Handled;
}

}  // namespace

HttpServer::HttpServer(const ServerConfig& config, Engine& engine, const ServedModel& model)
    : config_(config),
      context_(std::make_unique<ApiContext>(ApiContext{config, engine, model, ApiKeyCheck(config.api_key)})),
      server_(std::make_unique<httplib::Server>()) {
  const size_t threads = config.http_threads > 0 ? static_cast<size_t>(config.http_threads)
                                                 : static_cast<size_t>(config.max_running_requests) + 16;
  server_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  const size_t body_limit = static_cast<size_t>(config.max_request_body_bytes);
  server_->set_payload_max_length(body_limit);
  // Refuse an oversized body before the client sends it (curl asks with Expect: 100-continue).
  server_->set_expect_100_continue_handler([body_limit](const httplib::Request& request, httplib::Response& response) {
    const std::string length = request.get_header_value("Content-Length");
    char* end = nullptr;
    unsigned long long value = std::strtoull(length.c_str(), &end, 10);
    if (length.empty() || !end || *end != '\0' || value <= body_limit) return 100;
    response.status = 413;  // httplib answers with `response` (through the error handler) and skips the body
    return 413;
  });
  server_->set_read_timeout(30, 0);
  server_->set_write_timeout(30, 0);
  server_->set_keep_alive_max_count(1000);
  server_->set_error_handler(httplib::Server::HandlerWithResponse(fill_error_body));
  server_->set_exception_handler([](const httplib::Request& request, httplib::Response& response, std::exception_ptr) {
    spdlog::error("{} {}: unhandled exception", request.method, request.path);
    write_error(response, ApiError(500, "Internal server error"), error_shape_for_path(request.path));
  });
  server_->set_logger([](const httplib::Request& request, const httplib::Response& response) {
    spdlog::debug("{} {} {} -> {}", request.remote_addr, request.method, request.path, response.status);
  });
  add_generation_routes(*server_, *context_);
  add_anthropic_routes(*server_, *context_);
  add_text_routes(*server_, *context_);
  add_info_routes(*server_, *context_);
}

HttpServer::~HttpServer() { stop(); }

int HttpServer::bind() {
  int port = config_.port == 0 ? server_->bind_to_any_port(config_.host) : (server_->bind_to_port(config_.host, config_.port) ? config_.port : -1);
  RS_CHECK(port > 0, "cannot listen on {}:{} (address in use, or not an address of this machine)", config_.host, config_.port);
  return port;
}

void HttpServer::serve() { server_->listen_after_bind(); }

void HttpServer::stop() {
  if (server_) server_->stop();
}

}  // namespace rackserve::api
