// Sampler: picks one token from one sequence's float32 logits on the host, with vLLM's
// semantics and order: penalties (repetition over prompt + output, then frequency and
// presence over the output) -> min_tokens mask -> greedy argmax, or temperature ->
// min_p -> top_k -> top_p -> draw. Randomness is counter-based: the draw for output
// token i uses uniform(seed, i) only, so a request's tokens do not depend on the batch
// it runs in, nor on preemption.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "engine/request.h"
#include "engine/sampling_params.h"

namespace rackserve {

struct SampledToken {
  int32_t token = 0;
  std::optional<float> logprob;            // of `token` under the raw logits, when asked for
  std::vector<TokenLogprob> top_logprobs;  // the `logprobs` most likely tokens, most likely first
};

// What the sampler needs to know about the sequence besides its logits.
struct SamplingHistory {
  std::span<const int32_t> prompt;  // for the repetition penalty
  std::span<const int32_t> output;  // generated so far: penalties and the draw counter
  std::span<const int32_t> banned;  // logits forced to -inf (stop and EOS ids under min_tokens)
  uint64_t seed = 0;                // resolved seed of this sequence
};

// A uniform double in [0, 1) that depends only on (seed, counter).
double counter_uniform(uint64_t seed, uint64_t counter);

// Adds the penalties of `params` to `logits` in place (vLLM / OpenAI / HF semantics).
void apply_penalties(std::span<float> logits, const SamplingParams& params, std::span<const int32_t> prompt,
                     std::span<const int32_t> output);

// log_softmax of `logits`.
std::vector<float> log_softmax(std::span<const float> logits);

class Sampler {
 public:
  // `params` must be resolved (GenerationConfig::apply). Ties in greedy go to the lowest id.
  SampledToken sample(std::span<const float> logits, const SamplingParams& params, const SamplingHistory& history);

  // The distribution sample() draws from, as probabilities over the vocabulary (one-hot
  // for greedy). Exposed for tests.
  std::vector<float> distribution(std::span<const float> logits, const SamplingParams& params,
                                  const SamplingHistory& history);

 private:
  struct Candidate {
    int32_t token;
    float weight;  // unnormalised probability
  };
  // Fills candidates_ (most likely first) with the tokens the filters keep; returns the
  // greedy token instead when the params are greedy.
  std::optional<int32_t> prepare(std::span<const float> logits, const SamplingParams& params,
                                 const SamplingHistory& history);

  std::vector<float> work_;
  std::vector<Candidate> candidates_;
};

}  // namespace rackserve
