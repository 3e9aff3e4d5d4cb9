// Request checks at the engine's boundary: resolving a request's sampling params against
// generation_config.json and the context length, and rejecting what the engine cannot
// serve. Pure functions; called on the submitting thread.
#pragma once

#include <cstdint>
#include <string>

#include "engine/request.h"
#include "engine/sampling_params.h"

namespace rackserve {

struct RequestLimits {
  int64_t vocab_size = 0;
  int32_t max_model_len = 0;
  int32_t max_n = 1;
  int32_t max_logprobs = 0;
  int32_t page_size = 64;
  int32_t num_pages = 0;  // one sequence of prompt + max_tokens must fit the whole pool
};

// Fills every defaultable field from `generation` then the neutral values; max_tokens
// defaults to max_model_len - prompt_length (vLLM), capped by generation's max_new_tokens.
SamplingParams resolve_params(SamplingParams params, const GenerationConfig& generation, int32_t prompt_length,
                              int32_t max_model_len);

// Empty when `request` (with resolved params) can be served, else what is wrong, phrased
// for the client.
std::string check_request(const Request& request, const RequestLimits& limits);

}  // namespace rackserve
