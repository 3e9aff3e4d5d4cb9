// Engine: public methods (any thread) talk to the engine thread through the inbox;
// everything else here runs on the engine thread.
#include "engine/engine.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>

#include "core/error.h"
#include "engine/deferred_constraint.h"
#include "engine/grammar_constraint.h"
#include "engine/request_checks.h"
#include "engine/sampling_row.h"
#include "engine/scheduler.h"
#include "engine/sequence_output.h"

namespace rackserve {

namespace {

SchedulerConfig resolve_scheduler(SchedulerConfig scheduler, int32_t max_model_len) {
  if (scheduler.num_pages == 0) {
    const int32_t pages_per_sequence = (max_model_len + scheduler.page_size - 1) / scheduler.page_size;
    scheduler.num_pages = scheduler.max_running_requests * pages_per_sequence;
  }
  return scheduler;
}

EngineConfig resolve_config(EngineConfig config, const ModelConfig& model) {
  if (config.max_model_len == 0) config.max_model_len = static_cast<int32_t>(model.max_position_embeddings);
  RS_CHECK(config.max_model_len > 0, "max_model_len must be positive");
  RS_CHECK(config.scheduler.page_size > 0, "the KV page size must be positive");
  config.scheduler = resolve_scheduler(config.scheduler, config.max_model_len);
  return config;
}

uint64_t sequence_seed(uint64_t request_seed, int32_t index) {
  return request_seed + 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(index);
}

}  // namespace

class Engine::Impl {
 public:
  Impl(CausalLM& model, const EngineConfig& config, GenerationConfig generation, DetokenizerFactory detokenizer)
      : model_(model),
        config_(resolve_config(config, model.config())),
        generation_(std::move(generation)),
        detokenizer_(std::move(detokenizer)),
        scheduler_(config_.scheduler),
        cache_(model.allocate_kv_cache(config_.scheduler.num_pages, config_.scheduler.page_size,
                                       config_.kv_cache_dtype)) {
    publish_stats();
  }

  void start() {
    std::lock_guard lock(inbox_mutex_);
    RS_CHECK(!thread_.joinable() && !stopping_, "the engine was already started");
    accepting_ = true;
    thread_ = std::thread([this] { run(); });
  }

  void stop() {
    {
      std::lock_guard lock(inbox_mutex_);
      accepting_ = false;
      stopping_ = true;
    }
    inbox_ready_.notify_all();
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
  }

  bool running() const {
    std::lock_guard lock(inbox_mutex_);
    return accepting_;
  }

  SubmitResult submit(Request request) {
    SubmitResult result;
    const int32_t prompt_length = static_cast<int32_t>(request.prompt.size());
    request.params = resolve_params(std::move(request.params), generation_, prompt_length, config_.max_model_len);
    RequestLimits limits{model_.config().vocab_size, config_.max_model_len, config_.max_n,
                         config_.max_logprobs,       config_.scheduler.page_size, config_.scheduler.num_pages};
    if (std::string problem = check_request(request, limits); !problem.empty()) {
      result.message = std::move(problem);
      return result;
    }
    if (request.constrain_after_token && std::ranges::count(generation_.eos_token_ids, *request.constrain_after_token)) {
      result.message = fmt::format("the constraint's start token id {} is an EOS id", *request.constrain_after_token);
      return result;
    }
    if (!request.params.seed) request.params.seed = (uint64_t(std::random_device{}()) << 32) | std::random_device{}();
    std::lock_guard lock(inbox_mutex_);
    if (!accepting_) {
      result.status = SubmitResult::Status::Stopped;
      result.message = "the engine is not running";
      return result;
    }
    if (unfinished_requests_ >= config_.max_queued_requests) {
      result.status = SubmitResult::Status::QueueFull;
      result.message = fmt::format("the server is busy ({} requests in flight)", unfinished_requests_);
      return result;
    }
    ++unfinished_requests_;
    result.status = SubmitResult::Status::Accepted;
    result.stream = std::make_shared<RequestStream>(next_request_id_++);
    inbox_.push_back({std::move(request), result.stream});
    inbox_ready_.notify_one();
    return result;
  }

  void cancel(RequestId id) {
    {
      std::lock_guard lock(inbox_mutex_);
      cancels_.push_back(id);
    }
    inbox_ready_.notify_one();
  }

  EngineStats stats() const {
    std::lock_guard lock(stats_mutex_);
    return stats_;
  }

  std::string model_failure() const {
    std::lock_guard lock(inbox_mutex_);
    return failure_message_;
  }

  const EngineConfig& config() const { return config_; }
  const GenerationConfig& generation_config() const { return generation_; }
  SamplingParams resolve(SamplingParams params, int32_t prompt_length) const {
    return resolve_params(std::move(params), generation_, prompt_length, config_.max_model_len);
  }

 private:
  struct Incoming {
    Request request;
    std::shared_ptr<RequestStream> stream;
  };
  struct SequenceState {
    SequenceId id = 0;
    uint64_t seed = 0;
    SequenceOutput output;
    PenaltyTally penalties;  // engine thread only; used when the request has penalties on
    // response_format json_object or json_schema, or choices (deferred under constrain_after_token):
    // advanced with every recorded token, so it always matches output.generated(),
    // preempted or not. Null: unconstrained.
    std::unique_ptr<OutputConstraint> constraint;
  };
  struct RequestState {
    RequestId id = 0;
    std::shared_ptr<RequestStream> stream;
    std::vector<int32_t> prompt;
    SamplingParams params;
    std::vector<std::unique_ptr<SequenceState>> sequences;
    Usage usage;
    std::string error;
  };
  struct SequenceOwner {
    RequestState* request;
    SequenceState* sequence;
  };

  // Engine thread.
  void run() {
    for (;;) {
      std::deque<Incoming> incoming;
      std::vector<RequestId> cancels;
      bool stopping;
      {
        std::unique_lock lock(inbox_mutex_);
        inbox_ready_.wait(lock, [&] { return stopping_ || !inbox_.empty() || !cancels_.empty() || scheduler_.has_work(); });
        incoming.swap(inbox_);
        cancels.swap(cancels_);
        stopping = stopping_;
      }
      for (Incoming& request : incoming) admit(std::move(request));
      if (stopping) {
        for (auto& [id, request] : requests_) finish_all(*request, FinishReason::Abort, {});
        push_outputs();
        return;
      }
      for (RequestId id : cancels) abort(id);
      // A stream nobody but the engine holds has lost its reader.
      for (auto& [id, request] : requests_)
        if (request->stream.use_count() == 1) finish_all(*request, FinishReason::Abort, {});
      if (scheduler_.has_work()) step();
      push_outputs();
      if (!failure_message_.empty()) {
        fail_remaining_requests();
        if (config_.on_model_failure) config_.on_model_failure(failure_message_);
        return;
      }
    }
  }

  // After a ModelFailure (accepting_ is false by then): requests queued meanwhile get their
  // final output too.
  void fail_remaining_requests() {
    std::deque<Incoming> incoming;
    {
      std::lock_guard lock(inbox_mutex_);
      incoming.swap(inbox_);
    }
    for (Incoming& request : incoming) admit(std::move(request));
    for (auto& [id, request] : requests_) finish_all(*request, FinishReason::Error, failure_message_);
    push_outputs();
  }

  void admit(Incoming incoming) {
    auto request = std::make_unique<RequestState>();
    request->id = incoming.stream->id();
    request->stream = std::move(incoming.stream);
    request->prompt = std::move(incoming.request.prompt);
    request->params = std::move(incoming.request.params);
    request->usage.prompt_tokens = static_cast<int32_t>(request->prompt.size());
    const int32_t prompt_length = static_cast<int32_t>(request->prompt.size());
    for (int32_t index = 0; index < request->params.n; ++index) {
      auto detokenizer = detokenizer_ ? detokenizer_(request->prompt, request->params.skip_special_tokens) : nullptr;
      auto sequence = std::make_unique<SequenceState>(SequenceState{
          next_sequence_id_++, sequence_seed(*request->params.seed, index),
          SequenceOutput(index, request->params, generation_.eos_token_ids, prompt_length, config_.max_model_len,
                         std::move(detokenizer)),
          PenaltyTally{}, nullptr});
      sequence->constraint = make_constraint(incoming.request, request->params);
      // Siblings wait for the first sequence's prefill so they find its pages cached.
      std::optional<SequenceId> leader;
      if (index > 0 && config_.scheduler.enable_prefix_cache) leader = request->sequences.front()->id;
      scheduler_.add(sequence->id, request->prompt, leader);
      owners_[sequence->id] = {request.get(), sequence.get()};
      request->sequences.push_back(std::move(sequence));
    }
    counters_.requests_accepted += 1;
    counters_.prompt_tokens += prompt_length;
    requests_.emplace(request->id, std::move(request));
  }

  void abort(RequestId id) {
    auto found = requests_.find(id);
    if (found != requests_.end()) finish_all(*found->second, FinishReason::Abort, {});
  }

  // Finishes every unfinished sequence of `request` with `reason` and frees its pages.
  void finish_all(RequestState& request, FinishReason reason, const std::string& error) {
    if (!error.empty() && request.error.empty()) request.error = error;
    for (auto& sequence : request.sequences) {
      if (sequence->output.finished()) continue;
      sequence->output.finish(reason);
      scheduler_.remove(sequence->id);
    }
  }

  void step() {
    StepPlan plan = scheduler_.schedule();
    if (plan.empty()) {
      // Only possible when the head of the queue can never be admitted; fail it rather
      // than spin (submit's checks should make this unreachable).
      for (auto& [id, request] : requests_)
        finish_all(*request, FinishReason::Error, "the engine could not schedule this request");
      return;
    }
    std::vector<SampledRow> sampled;
    std::vector<SequenceId> masked_out;
    try {
      Tensor logits = model_.forward(to_forward_batch(plan), cache_);  // one row per planned sequence
      std::vector<SamplingRow> rows(plan.sequences.size());
      for (size_t row = 0; row < plan.sequences.size(); ++row) {
        rows[row].temperature = 0.0f;  // rows nobody samples (prompt chunks): a cheap argmax
        if (plan.sequences[row].needs_logits) rows[row] = sampling_row(plan.sequences[row].sequence_id);
      }
      masked_out = every_token_banned(plan, rows);
      sampled = model_.backend().sample(logits, rows);
    } catch (const ModelFailure& error) {
      // The model cannot run another step: fail everything and stop accepting.
      {
        std::lock_guard lock(inbox_mutex_);
        accepting_ = false;
        failure_message_ = error.what();
      }
      for (auto& [id, request] : requests_) finish_all(*request, FinishReason::Error, error.what());
      return;
    } catch (const std::exception& error) {
      for (const PlannedSequence& planned : plan.sequences)
        if (auto owner = owners_.find(planned.sequence_id); owner != owners_.end())
          finish_all(*owner->second.request, FinishReason::Error, error.what());
      return;
    }
    scheduler_.commit(plan);
    ++counters_.steps;
    for (size_t row = 0; row < plan.sequences.size(); ++row) {
      const SequenceId id = plan.sequences[row].sequence_id;
      if (!plan.sequences[row].needs_logits) continue;
      if (std::find(masked_out.begin(), masked_out.end(), id) == masked_out.end()) {
        record(id, sampled[row]);
      } else if (auto owner = owners_.find(id); owner != owners_.end()) {
        finish_all(*owner->second.request, FinishReason::Error, "every token of the vocabulary is banned");
      }
    }
  }

  // The constraint of one sequence of `request` (resolved `params`); null when unconstrained.
  std::unique_ptr<OutputConstraint> make_constraint(const Request& request, const SamplingParams& params) const {
    std::unique_ptr<OutputConstraint> grammar;
    if (request.json_schema)
      grammar = std::make_unique<JsonSchemaConstraint>(request.json_mask, request.json_schema);
    else if (request.choices)
      grammar = std::make_unique<ChoiceConstraint>(request.json_mask, request.choices);
    else if (request.json_mask)
      grammar = std::make_unique<JsonObjectConstraint>(request.json_mask);
    if (!grammar || !request.constrain_after_token) return grammar;
    // Before the start token only what would end the sequence is banned (the document must follow).
    std::vector<int32_t> ending = generation_.eos_token_ids;
    ending.insert(ending.end(), params.stop_token_ids.begin(), params.stop_token_ids.end());
    return std::make_unique<DeferredConstraint>(std::move(grammar), *request.constrain_after_token,
                                                request.json_mask->vocab_size(), std::move(ending));
  }

  // Rows whose banned list covers the whole vocabulary have nothing to sample: they become
  // argmax rows (so the batch still samples) and their sequences are returned to be failed.
  std::vector<SequenceId> every_token_banned(const StepPlan& plan, std::vector<SamplingRow>& rows) const {
    std::vector<SequenceId> masked_out;
    const size_t vocab = static_cast<size_t>(model_.config().vocab_size);
    for (size_t row = 0; row < rows.size(); ++row) {
      if (rows[row].banned.size() < vocab) continue;  // distinct ids, so fewer cannot cover it
      masked_out.push_back(plan.sequences[row].sequence_id);
      rows[row] = SamplingRow{};
      rows[row].temperature = 0.0f;
    }
    return masked_out;
  }

  SamplingRow sampling_row(SequenceId id) {
    const SequenceOwner& owner = owners_.at(id);
    const std::vector<int32_t>& tokens = scheduler_.tokens(id);
    const size_t prompt_length = owner.request->prompt.size();
    SamplingHistory history{std::span(tokens).first(prompt_length), std::span(tokens).subspan(prompt_length),
                            owner.sequence->output.banned_tokens(), owner.sequence->seed};
    // The grammar's mask is computed here, on the engine thread, once per constrained
    // sequence and step (JsonTokenMask::allowed's cost).
    std::vector<int32_t> constrained_banned;
    if (owner.sequence->constraint) {
      constrained_banned = owner.sequence->constraint->banned_tokens(history.banned);
      history.banned = constrained_banned;
    }
    return make_sampling_row(owner.request->params, history, &owner.sequence->penalties);
  }

  void record(SequenceId id, const SampledRow& sampled) {
    SequenceOwner owner = owners_.at(id);
    RequestState& request = *owner.request;
    SequenceState& sequence = *owner.sequence;
    if (sequence.output.num_generated() == 0 && &sequence == request.sequences.front().get())
      request.usage.cached_prompt_tokens = scheduler_.cached_prompt_tokens(id);
    std::optional<LogprobEntry> logprobs;
    if (request.params.logprobs) {
      LogprobEntry entry{{sampled.token, sampled.logprob}, {}};
      for (const TokenLogprobValue& top : sampled.top_logprobs) entry.top.push_back({top.token, top.logprob});
      logprobs = std::move(entry);
    }
    if (sequence.constraint && !sequence.constraint->advance(sampled.token)) {
      finish_all(request, FinishReason::Error, "the sampler picked a token the JSON constraint bans");
      return;
    }
    ++request.usage.completion_tokens;
    ++counters_.generation_tokens;
    if (sequence.output.add_token(sampled.token, std::move(logprobs)))
      scheduler_.remove(id);
    else
      scheduler_.append_token(id, sampled.token);
  }

  // One output per request with news; finished requests are dropped. The stats are
  // published before the outputs are pushed, so a reader of a final output sees stats
  // that already count it.
  void push_outputs() {
    std::vector<std::pair<std::shared_ptr<RequestStream>, RequestOutput>> ready;
    for (auto it = requests_.begin(); it != requests_.end();) {
      RequestState& request = *it->second;
      RequestOutput output;
      output.id = request.id;
      bool all_finished = true, aborted = false;
      for (auto& sequence : request.sequences) {
        if (sequence->output.has_news()) output.sequences.push_back(sequence->output.take_delta());
        all_finished = all_finished && sequence->output.finished();
        aborted = aborted || sequence->output.finish_reason() == FinishReason::Abort;
      }
      if (output.sequences.empty()) {
        ++it;
        continue;
      }
      output.usage = request.usage;
      output.finished = all_finished;
      output.error = request.error;
      ready.emplace_back(request.stream, std::move(output));
      if (!all_finished) {
        ++it;
        continue;
      }
      ++counters_.requests_finished;
      if (aborted) ++counters_.requests_aborted;
      for (auto& sequence : request.sequences) owners_.erase(sequence->id);
      it = requests_.erase(it);
      std::lock_guard lock(inbox_mutex_);
      --unfinished_requests_;
    }
    publish_stats();
    for (auto& [stream, output] : ready) stream->push(std::move(output));
  }

  void publish_stats() {
    EngineStats stats = counters_;
    stats.taken_at = std::chrono::steady_clock::now();
    for (const auto& [id, request] : requests_) {
      bool any_running = false;
      for (const auto& sequence : request->sequences) {
        if (sequence->output.finished()) continue;
        const bool running = scheduler_.is_running(sequence->id);
        any_running = any_running || running;
        ++(running ? stats.running_sequences : stats.waiting_sequences);
      }
      ++(any_running ? stats.running_requests : stats.waiting_requests);
    }
    const BlockPool& pool = scheduler_.pool();
    stats.page_size = pool.page_size();
    stats.kv_pages_total = pool.num_pages();
    stats.kv_pages_used = pool.num_in_use();
    stats.kv_pages_free = pool.num_available();
    stats.kv_pages_cached = pool.num_evictable();
    const SchedulerStats& scheduler = scheduler_.stats();
    stats.prompt_tokens_computed = scheduler.prompt_tokens_computed;
    stats.prefix_cache_hit_tokens = scheduler.prefix_hit_tokens;
    stats.preemptions = scheduler.preemptions;
    std::lock_guard lock(stats_mutex_);
    stats_ = stats;
  }

  CausalLM& model_;
  const EngineConfig config_;
  const GenerationConfig generation_;
  const DetokenizerFactory detokenizer_;

  // Shared with other threads (inbox_mutex_).
  mutable std::mutex inbox_mutex_;
  std::condition_variable inbox_ready_;
  std::deque<Incoming> inbox_;
  std::vector<RequestId> cancels_;
  bool accepting_ = false, stopping_ = false;
  // The ModelFailure that stopped the engine. Written once by the engine thread under
  // inbox_mutex_; the engine thread reads it without the lock, other threads with it.
  std::string failure_message_;
  int32_t unfinished_requests_ = 0;
  RequestId next_request_id_ = 1;
  std::thread thread_;

  // Shared with other threads (stats_mutex_).
  mutable std::mutex stats_mutex_;
  EngineStats stats_;

  // Engine thread only.
  Scheduler scheduler_;
  PagedKvCache cache_;
  std::map<RequestId, std::unique_ptr<RequestState>> requests_;
  std::unordered_map<SequenceId, SequenceOwner> owners_;
  SequenceId next_sequence_id_ = 0;
  EngineStats counters_;
};

Engine::Engine(CausalLM& model, const EngineConfig& config, GenerationConfig generation,
               DetokenizerFactory detokenizer)
    : impl_(std::make_unique<Impl>(model, config, std::move(generation), std::move(detokenizer))) {}
Engine::~Engine() { impl_->stop(); }
void Engine::start() { impl_->start(); }
void Engine::stop() { impl_->stop(); }
bool Engine::running() const { return impl_->running(); }
SubmitResult Engine::submit(Request request) { return impl_->submit(std::move(request)); }
void Engine::cancel(RequestId id) { impl_->cancel(id); }
EngineStats Engine::stats() const { return impl_->stats(); }
std::string Engine::model_failure() const { return impl_->model_failure(); }
const EngineConfig& Engine::config() const { return impl_->config(); }
const GenerationConfig& Engine::generation_config() const { return impl_->generation_config(); }
SamplingParams Engine::resolve(SamplingParams params, int32_t prompt_length) const {
  return impl_->resolve(std::move(params), prompt_length);
}

}  // namespace rackserve
