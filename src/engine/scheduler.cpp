#include "engine/scheduler.h"

#include <algorithm>

#include "core/error.h"

namespace rackserve {

Scheduler::Scheduler(const SchedulerConfig& config)
    : config_(config), pool_(config.num_pages, config.page_size), cache_(pool_) {
  RS_CHECK(config.max_num_batched_tokens > 0 && config.max_running_requests > 0,
           "max_num_batched_tokens ({}) and max_running_requests ({}) must be positive", config.max_num_batched_tokens,
           config.max_running_requests);
}

void Scheduler::add(SequenceId id, std::vector<int32_t> prompt, std::optional<SequenceId> after_prefill_of) {
  RS_CHECK(!prompt.empty(), "sequence {} has an empty prompt", id);
  RS_CHECK(!sequences_.count(id), "sequence {} already exists", id);
  Sequence sequence;
  sequence.id = id;
  sequence.arrival = next_arrival_++;
  sequence.prompt_length = static_cast<int32_t>(prompt.size());
  sequence.tokens = std::move(prompt);
  sequence.after_prefill_of = after_prefill_of;
  sequences_.emplace(id, std::move(sequence));
  waiting_.push_back(id);
}

StepPlan Scheduler::schedule() {
  std::vector<Decision> decisions;
  int32_t budget = config_.max_num_batched_tokens;
  const int64_t preemptions_before = stats_.preemptions;

  // Running sequences in arrival order: decodes first, then prefill chunks.
  for (bool decodes : {true, false}) {
    for (size_t i = 0; i < running_.size() && budget > 0;) {
      Sequence& sequence = sequences_.at(running_[i]);
      const int32_t remaining = static_cast<int32_t>(sequence.tokens.size()) - sequence.num_computed;
      if ((remaining == 1) != decodes) {
        ++i;
        continue;
      }
      const int32_t tokens = std::min(remaining, budget);
      if (!reserve(sequence, tokens, decisions, budget)) continue;  // it preempted itself: running_[i] is gone
      decisions.push_back({sequence.id, tokens});
      budget -= tokens;
      ++i;
    }
  }

  // Waiting sequences, first come first served; the head blocks the rest.
  while (stats_.preemptions == preemptions_before && !waiting_.empty() && budget > 0 &&
         num_running() < config_.max_running_requests) {
    Sequence& sequence = sequences_.at(waiting_.front());
    int32_t tokens = 0;
    if (!try_admit(sequence, budget, tokens)) break;
    waiting_.pop_front();
    insert_running(sequence.id);
    decisions.push_back({sequence.id, tokens});
    budget -= tokens;
  }

  StepPlan plan;
  for (const Decision& decision : decisions) {
    const Sequence& sequence = sequences_.at(decision.id);
    PlannedSequence planned;
    planned.sequence_id = sequence.id;
    planned.start_position = sequence.num_computed;
    planned.token_ids.assign(sequence.tokens.begin() + sequence.num_computed,
                             sequence.tokens.begin() + sequence.num_computed + decision.tokens);
    planned.pages.assign(sequence.pages.begin(), sequence.pages.begin() + pages_for(sequence.num_computed + decision.tokens));
    planned.needs_logits = sequence.num_computed + decision.tokens == static_cast<int32_t>(sequence.tokens.size());
    stats_.tokens_computed += decision.tokens;
    stats_.prompt_tokens_computed +=
        std::max(0, std::min(sequence.prompt_length, sequence.num_computed + decision.tokens) - sequence.num_computed);
    plan.sequences.push_back(std::move(planned));
  }
  return plan;
}

bool Scheduler::try_admit(Sequence& sequence, int32_t budget, int32_t& tokens) {
  if (sequence.after_prefill_of) {
    auto leader = sequences_.find(*sequence.after_prefill_of);
    if (leader != sequences_.end() && leader->second.num_computed < leader->second.prompt_length) return false;
  }
  const int32_t length = static_cast<int32_t>(sequence.tokens.size());
  if (config_.enable_prefix_cache) {
    // At least the last token is recomputed: its logits give the next token.
    extend_page_hashes(sequence.tokens, config_.page_size, sequence.hashes);
    sequence.pages = cache_.match(sequence.tokens, sequence.hashes, (length - 1) / config_.page_size);
    sequence.num_computed = static_cast<int32_t>(sequence.pages.size()) * config_.page_size;
    sequence.num_registered = static_cast<int32_t>(sequence.pages.size());
  }
  tokens = std::min(length - sequence.num_computed, budget);
  const int32_t needed = pages_for(sequence.num_computed + tokens) - static_cast<int32_t>(sequence.pages.size());
  if (!pool_.allocate(needed, sequence.pages)) {
    release_pages(sequence);
    return false;
  }
  if (!sequence.admitted_before) {
    sequence.admitted_before = true;
    sequence.cached_prompt_tokens = std::min(sequence.num_computed, sequence.prompt_length);
    stats_.prefix_hit_tokens += sequence.cached_prompt_tokens;
  }
  sequence.running = true;
  return true;
}

bool Scheduler::reserve(Sequence& sequence, int32_t tokens, std::vector<Decision>& decisions, int32_t& budget) {
  const int32_t needed = pages_for(sequence.num_computed + tokens) - static_cast<int32_t>(sequence.pages.size());
  while (!pool_.allocate(std::max(needed, 0), sequence.pages)) {
    Sequence& victim = sequences_.at(running_.back());
    preempt(victim, decisions, budget);
    if (&victim == &sequence) return false;
  }
  return true;
}

void Scheduler::preempt(Sequence& sequence, std::vector<Decision>& decisions, int32_t& budget) {
  auto planned = std::find_if(decisions.begin(), decisions.end(), [&](const Decision& d) { return d.id == sequence.id; });
  if (planned != decisions.end()) {
    budget += planned->tokens;
    decisions.erase(planned);
  }
  release_pages(sequence);
  sequence.running = false;
  running_.erase(std::find(running_.begin(), running_.end(), sequence.id));
  waiting_.push_front(sequence.id);
  ++stats_.preemptions;
}

void Scheduler::release_pages(Sequence& sequence) {
  // Deepest page first, so that LRU eviction takes a prefix's tail before its head.
  for (auto page = sequence.pages.rbegin(); page != sequence.pages.rend(); ++page) pool_.release(*page);
  sequence.pages.clear();
  sequence.num_computed = 0;
  sequence.num_registered = 0;
}

void Scheduler::insert_running(SequenceId id) {
  const int64_t arrival = sequences_.at(id).arrival;
  auto at = std::find_if(running_.begin(), running_.end(),
                         [&](SequenceId other) { return sequences_.at(other).arrival > arrival; });
  running_.insert(at, id);
}

void Scheduler::commit(const StepPlan& plan) {
  for (const PlannedSequence& planned : plan.sequences) {
    Sequence& sequence = sequences_.at(planned.sequence_id);
    RS_CHECK(sequence.running && planned.start_position == sequence.num_computed,
             "plan for sequence {} does not match its state", planned.sequence_id);
    sequence.num_computed += static_cast<int32_t>(planned.token_ids.size());
    if (!config_.enable_prefix_cache) continue;
    std::span<const int32_t> computed(sequence.tokens.data(), sequence.num_computed);
    extend_page_hashes(computed, config_.page_size, sequence.hashes);
    const int32_t full_pages = sequence.num_computed / config_.page_size;
    for (; sequence.num_registered < full_pages; ++sequence.num_registered)
      cache_.insert(sequence.pages[sequence.num_registered], sequence.num_registered, computed, sequence.hashes);
  }
}

void Scheduler::append_token(SequenceId id, int32_t token) {
  Sequence& sequence = sequences_.at(id);
  RS_CHECK(sequence.running && sequence.num_computed == static_cast<int32_t>(sequence.tokens.size()),
           "sequence {} has uncomputed tokens; it cannot take a sampled one", id);
  sequence.tokens.push_back(token);
}

void Scheduler::remove(SequenceId id) {
  auto found = sequences_.find(id);
  if (found == sequences_.end()) return;
  Sequence& sequence = found->second;
  release_pages(sequence);
  if (sequence.running)
    running_.erase(std::find(running_.begin(), running_.end(), id));
  else
    waiting_.erase(std::find(waiting_.begin(), waiting_.end(), id));
  sequences_.erase(found);
}

void Scheduler::check_invariants() const {
  pool_.check_invariants();
  cache_.check_invariants();
  std::vector<int32_t> references(pool_.num_pages(), 0);
  for (const auto& [id, sequence] : sequences_) {
    RS_CHECK(sequence.num_computed <= static_cast<int32_t>(sequence.tokens.size()), "sequence {} computed too much", id);
    if (!sequence.running) {
      RS_CHECK(sequence.pages.empty() && sequence.num_computed == 0, "waiting sequence {} holds pages", id);
      RS_CHECK(std::count(waiting_.begin(), waiting_.end(), id) == 1, "sequence {} is not queued once", id);
      continue;
    }
    RS_CHECK(std::count(running_.begin(), running_.end(), id) == 1, "sequence {} is not running once", id);
    RS_CHECK(static_cast<int32_t>(sequence.pages.size()) >= pages_for(sequence.num_computed),
             "sequence {} has {} pages for {} computed tokens", id, sequence.pages.size(), sequence.num_computed);
    for (int32_t page : sequence.pages) ++references[page];
  }
  for (int32_t page = 0; page < pool_.num_pages(); ++page)
    RS_CHECK(pool_.refcount(page) == references[page], "page {} has refcount {} but {} holders", page,
             pool_.refcount(page), references[page]);
  RS_CHECK(waiting_.size() + running_.size() == sequences_.size(), "queues hold {} + {} of {} sequences",
           waiting_.size(), running_.size(), sequences_.size());
  RS_CHECK(num_running() <= config_.max_running_requests, "{} running sequences over the limit", num_running());
  for (size_t i = 1; i < running_.size(); ++i)
    RS_CHECK(sequences_.at(running_[i - 1]).arrival < sequences_.at(running_[i]).arrival, "running list out of order");
}

}  // namespace rackserve
