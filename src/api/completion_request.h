// POST /v1/completions request body, validated. The prompt is a string or an array of
// token ids (a one-element array of either also works, as OpenAI allows); batches of
// several prompts are not supported (422).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/sampling_request.h"
#include "api/structured_outputs.h"
#include "engine/sampling_params.h"

namespace rackserve::api {

struct CompletionRequest {
  std::optional<std::string> model;
  std::optional<std::string> prompt_text;   // exactly one of prompt_text / prompt_tokens is set
  std::optional<std::vector<int32_t>> prompt_tokens;
  StreamOptions stream;
  SamplingParams sampling;
  StructuredOutput structured;  // vLLM's structured_outputs / guided_* (kind None: free text)
};

// Throws a 400/422 ApiError naming the field at fault.
CompletionRequest parse_completion_request(const nlohmann::ordered_json& body, const FieldLimits& limits);

}  // namespace rackserve::api
