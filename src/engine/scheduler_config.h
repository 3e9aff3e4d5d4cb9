// SchedulerConfig: the scheduling and KV-page knobs (--max-num-batched-tokens,
// --max-running-requests, KV capacity). Validated by the Scheduler's constructor.
#pragma once

#include <cstdint>

namespace rackserve {

struct SchedulerConfig {
  int32_t num_pages = 0;                  // KV pages in the pool (the engine may size it, see EngineConfig)
  int32_t page_size = 64;                 // tokens per KV page
  int32_t max_num_batched_tokens = 2048;  // tokens per step, decodes and prefill chunks together
  int32_t max_running_requests = 256;     // sequences holding pages at once
  bool enable_prefix_cache = true;
};

}  // namespace rackserve
