// Prometheus text exposition (format 0.0.4) of an EngineStats snapshot, for GET /metrics:
// gauges for requests running/waiting and KV pages used/free/cached/total, counters for
// tokens, requests, aborts and preemptions. Pure formatting; unit-tested.
#pragma once

#include <string>

#include "engine/engine_stats.h"

namespace rackserve::api {

std::string format_prometheus_metrics(const EngineStats& stats, const std::string& model_name);

}  // namespace rackserve::api
