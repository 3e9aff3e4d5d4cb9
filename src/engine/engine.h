// Engine: the serving core. One engine thread owns the scheduler, the KV cache, the
// sampler and every request's state; other threads talk to it only through this class:
// submit() queues a request and returns its RequestStream, cancel() queues a cancel,
// stats() reads the last snapshot. Per step the thread drains its inbox, asks the
// scheduler for a StepPlan (running decodes + prefill chunks), runs the model, samples,
// detokenizes, checks stop conditions and pushes one output per request with news.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "engine/detokenizer.h"
#include "engine/engine_stats.h"
#include "engine/request.h"
#include "engine/request_stream.h"
#include "engine/sampling_params.h"
#include "engine/scheduler_config.h"
#include "models/model.h"

namespace rackserve {

struct EngineConfig {
  // scheduler.num_pages 0: enough pages for max_running_requests sequences of
  // max_model_len tokens.
  SchedulerConfig scheduler;
  int32_t max_model_len = 0;          // prompt + generated tokens; 0: the model's max_position_embeddings
  int32_t max_queued_requests = 1024; // accepted but unfinished requests; submit answers QueueFull beyond
  int32_t max_n = 16;                 // largest accepted SamplingParams::n
  int32_t max_logprobs = 20;          // largest accepted SamplingParams::logprobs
  std::optional<KvCacheDtype> kv_cache_dtype;  // nullopt: the backend's native cache (kv_cache.h)
  // Called once, on the engine thread, when the model throws ModelFailure (a tensor-parallel
  // rank failed): every request has then been failed and the engine has stopped (submits
  // answer Stopped). The server uses it to shut down and exit non-zero.
  std::function<void(const std::string& message)> on_model_failure;
};

struct SubmitResult {
  enum class Status {
    Accepted,   // `stream` is set
    Invalid,    // the request breaks a limit (message says which): HTTP 400
    QueueFull,  // max_queued_requests reached: HTTP 503 with Retry-After
    Stopped,    // the engine is not running: HTTP 503
  };
  Status status = Status::Invalid;
  std::string message;
  std::shared_ptr<RequestStream> stream;
};

// Contract:
// - Every public method is thread-safe. `model` must outlive the engine and is used only
//   by the engine thread once start() has been called.
// - Every accepted request gets exactly one final output (finished == true), whatever
//   happens: finish, cancel, stream dropped, stop(), or an exception in a step (a
//   ModelFailure also stops the engine: see EngineConfig::on_model_failure).
// - Greedy requests give the same tokens whatever else is batched or preempted; seeded
//   requests too (counter-based sampling per sequence).
class Engine {
 public:
  Engine(CausalLM& model, const EngineConfig& config, GenerationConfig generation,
         DetokenizerFactory detokenizer = {});
  ~Engine();  // stop()s
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Starts the engine thread (once).
  void start();
  // Aborts every unfinished request (FinishReason::Abort) and joins the thread.
  // Idempotent; later submits answer Stopped.
  void stop();
  bool running() const;

  // Validates and resolves the request (generation_config defaults, max_tokens), then
  // queues it for the engine thread. Never blocks on the engine's step.
  SubmitResult submit(Request request);
  // Finishes the request with FinishReason::Abort and frees its pages within one step.
  // Unknown or finished ids are ignored.
  void cancel(RequestId id);

  EngineStats stats() const;
  // The ModelFailure message that stopped the engine; empty while it has not.
  std::string model_failure() const;

  // Immutable after construction.
  const EngineConfig& config() const;  // with num_pages and max_model_len resolved
  const GenerationConfig& generation_config() const;
  // `params` with every defaultable field resolved as submit() would for `prompt_length`.
  SamplingParams resolve(SamplingParams params, int32_t prompt_length) const;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace rackserve
