// SequenceOutput: turns one sequence's sampled tokens into its stream deltas and decides
// when it finishes: EOS / stop token ids, stop strings on the detokenized text (across
// token boundaries, never emitted), max_tokens and max_model_len. Engine-thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "engine/detokenizer.h"
#include "engine/request.h"
#include "engine/sampling_params.h"
#include "engine/stop_strings.h"

namespace rackserve {

// Contract:
// - `params` is resolved (max_tokens set); `eos_token_ids` come from generation_config.json
//   and are ignored under params.ignore_eos; stop_token_ids always apply.
// - No stop condition other than length applies before params.min_tokens tokens (the
//   sampler masks stop tokens until then, as vLLM does).
// - The text of an EOS / stop token is never detokenized; a stop string and whatever
//   follows it in the text are never emitted (unless include_stop_str_in_output).
class SequenceOutput {
 public:
  SequenceOutput(int32_t index, const SamplingParams& params, std::span<const int32_t> eos_token_ids,
                 int32_t prompt_length, int32_t max_model_len, std::unique_ptr<IncrementalDetokenizer> detokenizer);

  // Records the next sampled token (and its logprobs when asked for). Returns true when
  // the sequence finished with it.
  bool add_token(int32_t token, std::optional<LogprobEntry> logprobs);
  // Ends the sequence early (abort, error); releases held text only for Length/Stop.
  void finish(FinishReason reason);

  bool finished() const { return reason_.has_value(); }
  std::optional<FinishReason> finish_reason() const { return reason_; }
  bool has_news() const { return has_news_; }
  int32_t num_generated() const { return static_cast<int32_t>(generated_.size()); }
  const std::vector<int32_t>& generated() const { return generated_; }
  // The delta since the last take (empty tokens/text when nothing new).
  SequenceDelta take_delta();
  // Tokens the sampler must not pick now (stop and EOS ids under min_tokens).
  std::span<const int32_t> banned_tokens() const;

 private:
  void flush_text();
  void finish_with(FinishReason reason);

  const SamplingParams& params_;
  std::vector<int32_t> stop_ids_;  // stop_token_ids plus EOS ids unless ignore_eos
  int32_t prompt_length_, max_model_len_;
  std::unique_ptr<IncrementalDetokenizer> detokenizer_;
  StopStringMatcher matcher_;
  std::vector<int32_t> generated_;
  SequenceDelta delta_;
  bool has_news_ = false;
  std::optional<FinishReason> reason_;
};

}  // namespace rackserve
