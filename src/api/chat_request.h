// POST /v1/chat/completions request body, validated. Messages are normalized for the
// chat template: content given as an array of {"type": "text"} parts becomes one string
// (parts joined with "\n", as vLLM does); every other message field (name, tool_calls,
// tool_call_id, reasoning_content) passes through untouched.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "api/sampling_request.h"
#include "engine/sampling_params.h"

namespace rackserve::api {

struct ChatRequest {
  std::optional<std::string> model;  // absent: the served model
  nlohmann::json messages;           // array of normalized message objects, non-empty
  nlohmann::json tools;              // null or the client's array, passed to the template
  nlohmann::json chat_template_kwargs = nlohmann::json::object();  // extra template variables
  bool add_generation_prompt = true;
  bool continue_final_message = false;  // render the last (assistant) message open-ended
  StreamOptions stream;
  SamplingParams sampling;
};

// Throws a 400/422 ApiError naming the field at fault.
ChatRequest parse_chat_request(const nlohmann::json& body, const FieldLimits& limits);

}  // namespace rackserve::api
