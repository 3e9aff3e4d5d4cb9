// Scheduler: continuous batching over paged KV. Each step it plans the running decodes,
// then the running prefills (chunked to the token budget), then admits waiting
// sequences first-come first-served while pages and the running limit allow. It knows
// tokens and pages, never tensors: the engine runs the StepPlan and reports back.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <unordered_map>
#include <vector>

#include "engine/block_pool.h"
#include "engine/prefix_cache.h"
#include "engine/scheduler_config.h"
#include "engine/step_plan.h"

namespace rackserve {

struct SchedulerStats {
  int64_t tokens_computed = 0;         // every planned token, recomputation included
  int64_t prompt_tokens_computed = 0;  // planned tokens at prompt positions
  int64_t prefix_hit_tokens = 0;       // prompt tokens served by the prefix cache at first admission
  int64_t preemptions = 0;
};

// Use per step: plan = schedule(); run it; commit(plan); append_token() for every
// planned sequence with needs_logits; remove() the finished ones.
//
// Contract:
// - A planned sequence owns one reference to every page of its table; pages holding
//   cached full pages may be shared, but a sequence writes only positions >= its
//   start_position, which lie in pages it alone holds.
// - Preemption (when a running sequence needs a page and none is left) takes the latest
//   arrival, releases all its pages and puts it back at the front of the waiting queue;
//   it later recomputes prompt + generated tokens (mostly from the prefix cache).
// - No waiting sequence is admitted in a step that preempted.
class Scheduler {
 public:
  explicit Scheduler(const SchedulerConfig& config);

  // Queues a sequence. With `after_prefill_of` (n > 1 siblings), it is not admitted
  // before that sequence has computed its prompt, so it can reuse the cached pages.
  void add(SequenceId id, std::vector<int32_t> prompt, std::optional<SequenceId> after_prefill_of = {});
  StepPlan schedule();
  // The plan's KV is written: advances the sequences and caches their new full pages.
  void commit(const StepPlan& plan);
  // Appends the token sampled for a sequence that reached its end (needs_logits).
  void append_token(SequenceId id, int32_t token);
  // Drops a sequence (finished or cancelled), waiting or running, releasing its pages.
  // Unknown ids are ignored.
  void remove(SequenceId id);

  bool has_work() const { return !waiting_.empty() || !running_.empty(); }
  bool contains(SequenceId id) const { return sequences_.count(id) != 0; }
  // Holds pages now (admitted and not preempted since).
  bool is_running(SequenceId id) const { return sequences_.at(id).running; }
  int32_t num_waiting() const { return static_cast<int32_t>(waiting_.size()); }
  int32_t num_running() const { return static_cast<int32_t>(running_.size()); }
  const std::vector<int32_t>& tokens(SequenceId id) const { return sequences_.at(id).tokens; }
  // Prompt tokens the prefix cache served when the sequence was first admitted (0 before).
  int32_t cached_prompt_tokens(SequenceId id) const { return sequences_.at(id).cached_prompt_tokens; }
  const BlockPool& pool() const { return pool_; }
  const PrefixCache& cache() const { return cache_; }
  const SchedulerStats& stats() const { return stats_; }
  const SchedulerConfig& config() const { return config_; }

  // Throws rackserve::Error when page ownership, refcounts, lists or queues disagree.
  void check_invariants() const;

 private:
  struct Sequence {
    SequenceId id = 0;
    int64_t arrival = 0;
    std::vector<int32_t> tokens;  // prompt, then generated
    int32_t prompt_length = 0;
    int32_t num_computed = 0;     // leading tokens whose KV is in `pages`
    std::vector<int32_t> pages;
    std::vector<uint64_t> hashes;  // chained hashes of the full pages of `tokens`
    int32_t num_registered = 0;    // leading full pages already offered to the prefix cache
    std::optional<SequenceId> after_prefill_of;
    int32_t cached_prompt_tokens = 0;
    bool admitted_before = false;
    bool running = false;
  };
  struct Decision {
    SequenceId id;
    int32_t tokens;
  };

  int32_t pages_for(int32_t tokens) const { return (tokens + config_.page_size - 1) / config_.page_size; }
  // Gives `sequence` pages for `tokens` more tokens, preempting later arrivals when the
  // pool is dry. False when `sequence` itself had to be preempted.
  bool reserve(Sequence& sequence, int32_t tokens, std::vector<Decision>& decisions, int32_t& budget);
  void preempt(Sequence& sequence, std::vector<Decision>& decisions, int32_t& budget);
  void release_pages(Sequence& sequence);
  bool try_admit(Sequence& sequence, int32_t budget, int32_t& tokens);
  void insert_running(SequenceId id);

  SchedulerConfig config_;
  BlockPool pool_;
  PrefixCache cache_;
  std::unordered_map<SequenceId, Sequence> sequences_;
  std::deque<SequenceId> waiting_;
  std::vector<SequenceId> running_;  // by arrival, earliest first
  int64_t next_arrival_ = 0;
  SchedulerStats stats_;
};

}  // namespace rackserve
