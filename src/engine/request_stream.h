// RequestStream: the one-way queue from the engine thread to the thread serving a
// request (an HTTP handler). The engine pushes; the handler pops, blocking with a
// timeout so it can notice a client disconnect in between.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>

#include "engine/request.h"

namespace rackserve {

// Contract:
// - Thread-safe. Exactly one output has finished == true and it is the last one pushed.
// - Dropping the last shared_ptr to a stream that is not finished cancels its request
//   (the engine notices within one step), so a handler that returns early leaks nothing.
class RequestStream {
 public:
  explicit RequestStream(RequestId id) : id_(id) {}

  RequestId id() const { return id_; }

  // The next output, waiting up to `timeout`; nullopt on timeout or after the final
  // output was taken.
  std::optional<RequestOutput> next(std::chrono::milliseconds timeout);
  // The next output if one is queued.
  std::optional<RequestOutput> try_next();
  // Blocks until the final output arrives and returns everything not yet taken, merged
  // into one output (tokens, text and logprobs concatenated per sequence). For
  // non-streaming responses. Once the final output was taken, returns an empty
  // finished output.
  RequestOutput wait_all();
  // The final output has been pushed (it may not have been taken yet).
  bool finished() const;

  // Engine side only.
  void push(RequestOutput output);

 private:
  const RequestId id_;
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<RequestOutput> queue_;
  bool finished_ = false;
};

// Appends `next` to `into` (same request): per-sequence concatenation, latest usage,
// finish state and error.
void merge_output(RequestOutput& into, RequestOutput next);

}  // namespace rackserve
