// The engine side of sampling: a sequence's resolved SamplingParams and history become
// the plain SamplingRow (backend/ops.h) that Backend::sample runs on the device holding
// the logits. vLLM's semantics and order are spelled out there. Randomness is
// counter-based: the draw for output token i uses sampling_uniform(seed, i) only, so a
// request's tokens do not depend on the batch it runs in, nor on preemption.
#pragma once

#include <cstdint>
#include <span>

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

// `params` must be resolved (GenerationConfig::apply). Penalty tokens are listed only for
// the penalties that are on (the repetition set is prompt + output, the others the output).
SamplingRow make_sampling_row(const SamplingParams& params, const SamplingHistory& history);

}  // namespace rackserve
