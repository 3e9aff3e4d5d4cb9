// POST /v1/messages (and /v1/messages/count_tokens) request body, validated and translated
// into what the chat template and the engine take: OpenAI-shaped messages and tools
// (anthropic_messages.h), template kwargs, sampling params. Objects the client wrote
// (input_schema, tool_use input) keep its key order, as the template should see them.
//
//   tools [{name, description?, input_schema}]  -> [{"type": "function", "function":
//                                                  {name, description?, parameters}}]
//   tool_choice {type: auto | none}             -> tools shown / not shown
//   tool_choice {type: any | tool}              -> the answer is a list of calls of the tools
//                                                  (of the named one for "tool"), decoded
//                                                  under a grammar (tool_call_list.h)
//   output_config.format {type: json_schema}    -> the answer's text, decoded under the schema
//   thinking {type: enabled | adaptive | disabled} -> chat_template_kwargs "thinking" and
//                                                  "enable_thinking", both (DeepSeek-V3.1's
//                                                  template reads the first, GLM's the
//                                                  second); budget_tokens is validated but
//                                                  not enforced: max_tokens bounds the answer
//   max_tokens, temperature, top_p, top_k, stop_sequences -> SamplingParams (max_tokens is
//                                                  not bounded here: the route cuts it to
//                                                  the room the prompt leaves)
// Absent sampling fields take the model's generation_config.json defaults (not Anthropic's
// temperature 1.0), as on the OpenAI routes. metadata and unknown fields are accepted and
// ignored.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "api/sampling_request.h"
#include "engine/json_schema.h"
#include "engine/sampling_params.h"

namespace rackserve::api {

// The two routes read the same body; count_tokens has no max_tokens, sampling or stream.
enum class AnthropicEndpoint { Messages, CountTokens };

struct AnthropicRequest {
  std::string model;       // required by Anthropic's API, checked against the served model
  nlohmann::ordered_json messages;  // OpenAI-shaped chat messages, non-empty
  nlohmann::ordered_json tools;     // null, or OpenAI-shaped function tools (null when tool_choice is none)
  bool first_tool_call_only = false;  // tool_choice.disable_parallel_tool_use
  // Set when the answer is decoded under a grammar: tool_choice any / tool (a list of calls,
  // answer_is_call_list) or output_config.format (the text).
  std::shared_ptr<const JsonSchema> answer_schema;
  bool answer_is_call_list = false;
  nlohmann::ordered_json chat_template_kwargs = nlohmann::ordered_json::object();
  // A final assistant message is a prefill: the answer continues it (no generation prompt).
  bool continue_final_message = false;
  SamplingParams sampling;  // max_tokens always set for Messages
  bool stream = false;
};

// Throws a 400 ApiError naming the field at fault, 422 for what this server does not
// support (image and document blocks, server tools), which the Anthropic routes answer as
// 400 (see api_error.h).
AnthropicRequest parse_anthropic_request(const nlohmann::ordered_json& body, const FieldLimits& limits,
                                         AnthropicEndpoint endpoint);

}  // namespace rackserve::api
