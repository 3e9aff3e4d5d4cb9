#include "api/info_routes.h"

#include "api/api_error.h"
#include "api/metrics.h"
#include "api/sse.h"

namespace rackserve::api {

void add_info_routes(httplib::Server& server, const ApiContext& context) {
  server.Get("/v1/models", [&context](const httplib::Request& request, httplib::Response& response) {
    run_handler(context, request, response, Auth::Required, [&] {
      nlohmann::json model = {{"id", context.model.name},
                              {"object", "model"},
                              {"created", context.model.created},
                              {"owned_by", "rackserve"},
                              {"max_model_len", context.model.max_model_len}};
      response.set_content(to_json_text({{"object", "list"}, {"data", nlohmann::json::array({model})}}),
                           "application/json");
    });
  });
  server.Get("/health", [&context](const httplib::Request& request, httplib::Response& response) {
    run_handler(context, request, response, Auth::Open, [&] {
      if (!context.engine.running()) throw ApiError(503, "The engine is not running", {}, "server_stopped");
      response.set_content("{\"status\":\"ok\"}", "application/json");
    });
  });
  server.Get("/metrics", [&context](const httplib::Request& request, httplib::Response& response) {
    run_handler(context, request, response, Auth::Open, [&] {
      response.set_content(format_prometheus_metrics(context.engine.stats(), context.model.name),
                           "text/plain; version=0.0.4");
    });
  });
}

}  // namespace rackserve::api
