// The sampling oracle: SamplingRow's contract (backend/ops.h) on one row of host logits,
// written the plain way (sort for top_p, f64 sums). The CPU backend's sample op runs it;
// the CUDA sampling kernel is tested against it.
#pragma once

#include <span>
#include <vector>

#include "backend/ops.h"

namespace rackserve::cpu {

// Adds the row's penalties to `logits` in place (repetition, then frequency and presence).
void apply_penalties(std::span<float> logits, const SamplingRow& row);

// log_softmax of `logits` (f64 normaliser).
std::vector<float> log_softmax(std::span<const float> logits);

// The token the row picks (and its raw logprobs when asked). Throws when every token is masked.
SampledRow sample_row(std::span<const float> logits, const SamplingRow& row);

// The distribution sample_row draws from, as probabilities over the vocabulary (one-hot
// for greedy). Exposed for tests.
std::vector<float> sampling_distribution(std::span<const float> logits, const SamplingRow& row);

}  // namespace rackserve::cpu
