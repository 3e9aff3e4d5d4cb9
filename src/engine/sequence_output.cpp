#include "engine/sequence_output.h"

#include <algorithm>
#include <utility>

namespace rackserve {

SequenceOutput::SequenceOutput(int32_t index, const SamplingParams& params, std::span<const int32_t> eos_token_ids,
                               int32_t prompt_length, int32_t max_model_len,
                               std::unique_ptr<IncrementalDetokenizer> detokenizer)
    : params_(params),
      stop_ids_(params.stop_token_ids),
      prompt_length_(prompt_length),
      max_model_len_(max_model_len),
      detokenizer_(std::move(detokenizer)),
      matcher_(params.stop, params.include_stop_str_in_output) {
  delta_.index = index;
  if (!params.ignore_eos) stop_ids_.insert(stop_ids_.end(), eos_token_ids.begin(), eos_token_ids.end());
  std::sort(stop_ids_.begin(), stop_ids_.end());
  stop_ids_.erase(std::unique(stop_ids_.begin(), stop_ids_.end()), stop_ids_.end());
}

std::span<const int32_t> SequenceOutput::banned_tokens() const {
  if (num_generated() >= params_.min_tokens) return {};
  return stop_ids_;
}

bool SequenceOutput::add_token(int32_t token, std::optional<LogprobEntry> logprobs) {
  if (finished()) return true;
  generated_.push_back(token);
  delta_.token_ids.push_back(token);
  if (logprobs) delta_.logprobs.push_back(std::move(*logprobs));
  has_news_ = true;
  const bool may_stop = num_generated() >= params_.min_tokens;  // vLLM: output length incl. this token
  if (may_stop && std::binary_search(stop_ids_.begin(), stop_ids_.end(), token)) {
    delta_.stop_reason = token;
    finish_with(FinishReason::Stop);
    return true;
  }
  std::string text = detokenizer_ ? detokenizer_->append(token) : std::string();
  if (may_stop) {
    StopStringMatcher::Result result = matcher_.append(text);
    delta_.text += result.emit;
    if (result.stop) {
      delta_.stop_reason = *result.stop;
      delta_.finish_reason = reason_ = FinishReason::Stop;  // no flush: nothing after a stop string is sent
      return true;
    }
  } else {
    // Before min_tokens no stop string may end the sequence; the text still goes through
    // the matcher's hold-back once stops apply, so feed it as already-safe text here.
    delta_.text += text;
  }
  const bool length = num_generated() >= params_.max_tokens.value_or(INT32_MAX) ||
                      prompt_length_ + num_generated() >= max_model_len_;
  if (length) {
    finish_with(FinishReason::Length);
    return true;
  }
  return false;
}

void SequenceOutput::finish(FinishReason reason) {
  if (finished()) return;
  has_news_ = true;
  if (reason == FinishReason::Stop || reason == FinishReason::Length)
    finish_with(reason);
  else
    delta_.finish_reason = reason_ = reason;
}

void SequenceOutput::finish_with(FinishReason reason) {
  flush_text();
  delta_.finish_reason = reason_ = reason;
}

void SequenceOutput::flush_text() {
  // Text still buffered in the detokenizer (a partial character) and held back by the
  // matcher (a possible stop-string start) is released at the end, unless it completes
  // a stop string.
  std::string tail = detokenizer_ ? detokenizer_->finish() : std::string();
  StopStringMatcher::Result result = matcher_.append(tail);
  delta_.text += result.emit;
  if (result.stop) {
    delta_.stop_reason = *result.stop;
    return;
  }
  delta_.text += matcher_.finish();
}

SequenceDelta SequenceOutput::take_delta() {
  SequenceDelta taken = std::move(delta_);
  delta_ = SequenceDelta{};
  delta_.index = taken.index;
  has_news_ = false;
  return taken;
}

}  // namespace rackserve
