// The engine side of sampling: a sequence's resolved SamplingParams and history become
// the plain SamplingRow (backend/ops.h) that Backend::sample runs on the device holding
// the logits. vLLM's semantics and order are spelled out there. Randomness is
// counter-based: the draw for output token i uses sampling_uniform(seed, i) only, so a
// request's tokens do not depend on the batch it runs in, nor on preemption.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "backend/ops.h"
#include "engine/sampling_params.h"

namespace rackserve {

// What the sampler needs to know about the sequence besides its logits.
struct SamplingHistory {
  std::span<const int32_t> prompt;  // for the repetition penalty
  std::span<const int32_t> output;  // generated so far: penalties and the draw counter
  std::span<const int32_t> banned;  // logits forced to -inf (stop and EOS ids under min_tokens)
  uint64_t seed = 0;                // resolved seed of this sequence
};

// The distinct tokens of one sequence's history with their output counts, kept up to date a
// token at a time: the engine holds one per sequence, so a step costs O(distinct tokens)
// instead of sorting the whole history again.
class PenaltyTally {
 public:
  // Counts what `history` adds to what was counted before: the prompt (when `with_prompt`,
  // once) and the output tokens past the last call. The history must extend the previous
  // one (same prompt, output only appended); a shorter output or a dropped prompt starts
  // the count over.
  void update(const SamplingHistory& history, bool with_prompt);
  // Sorted by token; `repeated` and `output_count` as make_sampling_row's rules give them
  // when both kinds of penalty are on (callers clear what is off).
  const std::vector<PenaltyToken>& tokens() const { return tokens_; }

 private:
  void add(int32_t token, int32_t output_count);
  std::vector<PenaltyToken> tokens_;
  size_t counted_output_ = 0;
  bool prompt_counted_ = false;
};

// `params` must be resolved (GenerationConfig::apply). Penalty tokens are listed only for
// the penalties that are on (the repetition set is prompt + output, the others the output).
// With a `tally`, the list comes from it (updated here) instead of sorting the history.
SamplingRow make_sampling_row(const SamplingParams& params, const SamplingHistory& history,
                              PenaltyTally* tally = nullptr);

}  // namespace rackserve
