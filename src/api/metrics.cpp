#include "api/metrics.h"

#include <fmt/format.h>

namespace rackserve::api {
namespace {

// Label values escape backslash, quote and newline.
std::string escape_label(const std::string& value) {
  std::string escaped;
  for (char c : value) {
    if (c == '\\' || c == '"') escaped += '\\';
    if (c == '\n') {
      escaped += "\\n";
      continue;
    }
    escaped += c;
  }
  return escaped;
}

}  // namespace

std::string format_prometheus_metrics(const EngineStats& stats, const std::string& model_name) {
  const std::string labels = fmt::format("{{model_name=\"{}\"}}", escape_label(model_name));
  std::string text;
  auto metric = [&](const char* name, const char* type, const char* help, auto value) {
    text += fmt::format("# HELP rackserve_{0} {1}\n# TYPE rackserve_{0} {2}\nrackserve_{0}{3} {4}\n", name, help, type,
                        labels, value);
  };
  metric("requests_running", "gauge", "Requests with at least one sequence holding KV pages.", stats.running_requests);
  metric("requests_waiting", "gauge", "Accepted requests not yet holding KV pages.", stats.waiting_requests);
  metric("sequences_running", "gauge", "Sequences holding KV pages.", stats.running_sequences);
  metric("sequences_waiting", "gauge", "Sequences waiting for KV pages, preempted ones included.", stats.waiting_sequences);
  metric("kv_page_size_tokens", "gauge", "Tokens per KV page.", stats.page_size);
  metric("kv_pages_total", "gauge", "KV pages in the pool.", stats.kv_pages_total);
  metric("kv_pages_used", "gauge", "KV pages held by sequences.", stats.kv_pages_used);
  metric("kv_pages_free", "gauge", "KV pages free for allocation (cached ones included).", stats.kv_pages_free);
  metric("kv_pages_cached", "gauge", "Free KV pages still holding a reusable prefix.", stats.kv_pages_cached);
  const double usage = stats.kv_pages_total > 0 ? static_cast<double>(stats.kv_pages_used) / stats.kv_pages_total : 0.0;
  metric("kv_cache_usage_ratio", "gauge", "Fraction of KV pages held by sequences.", usage);
  metric("engine_steps_total", "counter", "Engine steps run.", stats.steps);
  metric("requests_accepted_total", "counter", "Requests accepted by the engine.", stats.requests_accepted);
  metric("requests_finished_total", "counter", "Requests finished for any reason.", stats.requests_finished);
  metric("requests_aborted_total", "counter", "Requests cancelled (client gone, shutdown).", stats.requests_aborted);
  metric("prompt_tokens_total", "counter", "Prompt tokens of accepted requests.", stats.prompt_tokens);
  metric("prompt_tokens_computed_total", "counter", "Prompt tokens prefilled by the model.", stats.prompt_tokens_computed);
  metric("prefix_cache_hit_tokens_total", "counter", "Prompt tokens served by the prefix cache.", stats.prefix_cache_hit_tokens);
  metric("generation_tokens_total", "counter", "Tokens sampled.", stats.generation_tokens);
  metric("preemptions_total", "counter", "Sequences preempted for recomputation.", stats.preemptions);
  return text;
}

}  // namespace rackserve::api
