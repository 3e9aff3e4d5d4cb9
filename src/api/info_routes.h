// GET /v1/models (auth like the other /v1 routes), GET /health (200 while the engine
// runs, 503 otherwise; no auth, for load balancers), GET /metrics (Prometheus; no auth,
// as in vLLM: it exposes counts only).
#pragma once

#include <httplib.h>

#include "api/api_context.h"

namespace rackserve::api {

void add_info_routes(httplib::Server& server, const ApiContext& context);

}  // namespace rackserve::api
