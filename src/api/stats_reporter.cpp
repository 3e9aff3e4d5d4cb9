#include "api/stats_reporter.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "engine/engine.h"

namespace rackserve::api {

std::string format_stats_line(const EngineStats& previous, const EngineStats& current) {
  const double seconds = std::chrono::duration<double>(current.taken_at - previous.taken_at).count();
  auto rate = [&](int64_t before, int64_t after) { return seconds > 0 ? static_cast<double>(after - before) / seconds : 0.0; };
  const double usage = current.kv_pages_total > 0 ? 100.0 * current.kv_pages_used / current.kv_pages_total : 0.0;
  const int64_t prompt_delta = current.prompt_tokens - previous.prompt_tokens;
  const double hit_rate = prompt_delta > 0
      ? 100.0 * static_cast<double>(current.prefix_cache_hit_tokens - previous.prefix_cache_hit_tokens) / prompt_delta
      : 0.0;
  return fmt::format(
      "running: {} reqs, waiting: {} reqs, prompt throughput: {:.1f} tokens/s, generation throughput: {:.1f} tokens/s, "
      "KV usage: {:.1f}% ({}/{} pages), prefix cache hit rate: {:.1f}%, preemptions: {}",
      current.running_requests, current.waiting_requests, rate(previous.prompt_tokens_computed, current.prompt_tokens_computed),
      rate(previous.generation_tokens, current.generation_tokens), usage, current.kv_pages_used, current.kv_pages_total,
      hit_rate, current.preemptions);
}

StatsReporter::StatsReporter(const Engine& engine, std::chrono::seconds interval) : engine_(engine), interval_(interval) {
  if (interval_.count() > 0) thread_ = std::thread([this] { run(); });
}

StatsReporter::~StatsReporter() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void StatsReporter::run() {
  EngineStats previous = engine_.stats();
  std::unique_lock lock(mutex_);
  while (!wake_.wait_for(lock, interval_, [this] { return stopping_; })) {
    EngineStats current = engine_.stats();
    // A quiet server does not fill the log with identical zero lines.
    const bool idle = current.steps == previous.steps && current.running_requests == 0 && current.waiting_requests == 0;
    if (!idle) spdlog::info("{}", format_stats_line(previous, current));
    previous = current;
  }
}

}  // namespace rackserve::api
