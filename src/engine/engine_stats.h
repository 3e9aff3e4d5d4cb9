// EngineStats: a consistent snapshot of the engine, taken after each step. Counters are
// cumulative since start; rates are for the caller to compute from two snapshots
// (the periodic stats line, /metrics).
#pragma once

#include <chrono>
#include <cstdint>

namespace rackserve {

struct EngineStats {
  std::chrono::steady_clock::time_point taken_at{};

  // Requests (a request with n > 1 counts once) and sequences.
  int32_t running_requests = 0;   // with at least one sequence holding KV pages
  int32_t waiting_requests = 0;   // accepted, no sequence holding pages yet
  int32_t running_sequences = 0;
  int32_t waiting_sequences = 0;  // preempted ones included

  // KV pages: total = used + free; cached pages (kept by the prefix cache, nobody
  // holding them) count as free because allocation reclaims them.
  int32_t page_size = 0;
  int32_t kv_pages_total = 0;
  int32_t kv_pages_used = 0;
  int32_t kv_pages_free = 0;
  int32_t kv_pages_cached = 0;

  int64_t steps = 0;
  int64_t requests_accepted = 0;
  int64_t requests_finished = 0;      // every reason, aborts included
  int64_t requests_aborted = 0;
  int64_t prompt_tokens = 0;          // of accepted requests
  int64_t prompt_tokens_computed = 0; // prefilled by the model, recomputation included
  int64_t prefix_cache_hit_tokens = 0;
  int64_t generation_tokens = 0;      // sampled tokens
  int64_t preemptions = 0;
};

}  // namespace rackserve
