// The sampling fields shared by /v1/chat/completions and /v1/completions, read into the
// engine's SamplingParams. Only ranges are checked here; what depends on the prompt
// (prompt + max_tokens against the context) is checked once the prompt is tokenized.
#pragma once

#include <cstdint>
#include <optional>

#include "api/json_fields.h"
#include "engine/sampling_params.h"

namespace rackserve::api {

// Server-wide bounds a request is validated against (from ServerConfig and the model).
struct FieldLimits {
  int32_t max_n = 16;
  int32_t max_logprobs = 20;
  int32_t vocab_size = 0;        // stop_token_ids must be below it
  int32_t max_model_len = 0;     // max_tokens above it is rejected before tokenizing
  size_t max_stop_strings = 16;
};

// Which endpoint's flavour of the shared fields to read.
enum class Endpoint { Chat, Completions };

// Reads temperature, top_p, top_k, min_p, penalties, seed, stop, stop_token_ids,
// max_tokens / max_completion_tokens, n, min_tokens, ignore_eos,
// include_stop_str_in_output and the endpoint's logprobs fields. Throws a 400 ApiError
// naming the field at fault.
SamplingParams read_sampling_params(const JsonFields& fields, Endpoint endpoint, const FieldLimits& limits);

// "stream" and "stream_options.include_usage"; stream_options without stream is a 400,
// as in OpenAI.
struct StreamOptions {
  bool stream = false;
  bool include_usage = false;
  // vLLM extension "return_token_ids": each choice also carries its generated "token_ids".
  bool return_token_ids = false;
};
StreamOptions read_stream_options(const JsonFields& fields);

}  // namespace rackserve::api
