#include "engine/request_stream.h"

#include <utility>

namespace rackserve {

const char* to_string(FinishReason reason) {
  switch (reason) {
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Abort: return "abort";
    case FinishReason::Error: return "error";
  }
  return "error";
}

std::optional<RequestOutput> RequestStream::next(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  if (!ready_.wait_for(lock, timeout, [&] { return !queue_.empty(); })) return std::nullopt;
  RequestOutput output = std::move(queue_.front());
  queue_.pop_front();
  return output;
}

std::optional<RequestOutput> RequestStream::try_next() { return next(std::chrono::milliseconds(0)); }

RequestOutput RequestStream::wait_all() {
  std::unique_lock lock(mutex_);
  ready_.wait(lock, [&] { return finished_; });
  RequestOutput merged;
  merged.id = id_;
  while (!queue_.empty()) {
    merge_output(merged, std::move(queue_.front()));
    queue_.pop_front();
  }
  merged.finished = true;  // also when an earlier call already took the final output
  return merged;
}

bool RequestStream::finished() const {
  std::lock_guard lock(mutex_);
  return finished_;
}

void RequestStream::push(RequestOutput output) {
  {
    std::lock_guard lock(mutex_);
    if (finished_) return;  // nothing follows the final output
    finished_ = output.finished;
    queue_.push_back(std::move(output));
  }
  ready_.notify_all();
}

void merge_output(RequestOutput& into, RequestOutput next) {
  for (SequenceDelta& delta : next.sequences) {
    SequenceDelta* target = nullptr;
    for (SequenceDelta& existing : into.sequences)
      if (existing.index == delta.index) target = &existing;
    if (!target) {
      auto at = into.sequences.begin();
      while (at != into.sequences.end() && at->index < delta.index) ++at;
      into.sequences.insert(at, std::move(delta));
      continue;
    }
    target->token_ids.insert(target->token_ids.end(), delta.token_ids.begin(), delta.token_ids.end());
    target->text += delta.text;
    for (LogprobEntry& entry : delta.logprobs) target->logprobs.push_back(std::move(entry));
    if (delta.finish_reason) {
      target->finish_reason = delta.finish_reason;
      target->stop_reason = std::move(delta.stop_reason);
    }
  }
  into.id = next.id;
  into.usage = next.usage;
  into.finished = next.finished;
  if (!next.error.empty()) into.error = std::move(next.error);
}

}  // namespace rackserve
