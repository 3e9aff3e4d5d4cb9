// POST /v1/chat/completions request body, validated. Messages are normalized for the
// chat template: content given as an array of {"type": "text"} parts becomes one string
// (parts joined with "\n", as vLLM does); every other message field (name, tool_calls,
// tool_call_id, reasoning_content) passes through untouched. Objects keep the client's key
// order (ordered_json): the template renders them as Hugging Face would.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "api/sampling_request.h"
#include "engine/choice_grammar.h"
#include "engine/json_schema.h"
#include "engine/sampling_params.h"

namespace rackserve::api {

// What the client allows the model to do with the tools offered.
enum class ToolChoice {
  None,  // "none": answer in text; the tools are not shown to the model
  Auto,  // "auto" (the default when tools are given): the answer may call tools
  // "required": the answer is a list of calls of the tools (tool_call_list.h), decoded under
  // ChatRequest::json_schema; one call when parallel_tool_calls is false.
  Required,
  // {"type": "function", "function": {"name": …}}: the answer is one call of that function,
  // its arguments decoded under the function's parameters (ChatRequest::json_schema).
  Function,
};

// What the answer must be (response_format.type).
enum class ResponseFormat {
  Text,        // "text" (the default): free text
  JsonObject,  // "json_object": a JSON object, by constrained decoding (Request::json_mask)
  JsonSchema,  // "json_schema": a document valid under ChatRequest::json_schema (Request::json_schema)
  Choice,      // structured_outputs "choice" (vLLM): exactly one of ChatRequest::choices
};

struct ChatRequest {
  std::optional<std::string> model;  // absent: the served model
  nlohmann::ordered_json messages;   // array of normalized message objects, non-empty
  nlohmann::ordered_json tools;      // null or the client's array, passed to the template
  ToolChoice tool_choice = ToolChoice::None;  // Auto when tools are given, unless the client said "none"
  std::string tool_choice_function;          // the function tool_choice names (ToolChoice::Function), one of `tools`
  bool parallel_tool_calls = true;            // false: only the answer's first call is returned
  nlohmann::ordered_json chat_template_kwargs = nlohmann::ordered_json::object();  // extra template variables, at most 64
  bool add_generation_prompt = true;
  bool continue_final_message = false;  // render the last (assistant) message open-ended
  ResponseFormat response_format = ResponseFormat::Text;
  // Set exactly when response_format is JsonSchema (its schema), tool_choice is Function (the
  // function's "parameters"; {"type": "object", "properties": {}} when it has none) or
  // Required (compile_tool_call_list's).
  std::shared_ptr<const JsonSchema> json_schema;
  std::shared_ptr<const TextChoices> choices;  // set exactly when response_format is Choice
  // The request field that asked for the answer's format ("response_format", or vLLM's
  // "structured_outputs.json" ...: structured_outputs.h), for errors.
  std::string format_field = "response_format";
  StreamOptions stream;
  SamplingParams sampling;
};

// Throws a 400/422 ApiError naming the field at fault. response_format "json_schema" and the
// parameters of the function a tool_choice names are compiled here (json_schema_compile.h): a
// schema outside the supported subset answers 400 naming the keyword. A named function must be
// one of `tools` and excludes a response_format other than "text" (400). "tool_choice":
// "required" answers 422: one call of any tool needs a grammar whose alternatives (the tools'
// argument objects) are told apart after their first byte, which the decoder cannot do yet.
// response_format types this server does not know answer 422 too.
ChatRequest parse_chat_request(const nlohmann::ordered_json& body, const FieldLimits& limits);

}  // namespace rackserve::api
