#include "api/anthropic_request.h"

#include <limits>

#include <fmt/format.h>

#include "api/anthropic_messages.h"
#include "api/api_error.h"
#include "api/json_fields.h"
#include "api/tool_call_list.h"
#include "engine/json_schema_compile.h"

namespace rackserve::api {
namespace {

// One entry of "tools": a client tool {name, description?, input_schema, type?: "custom"}.
// Anthropic's server tools (bash_…, web_search_…, text_editor_…) name a versioned type.
nlohmann::ordered_json function_tool(const nlohmann::ordered_json& tool, size_t index) {
  const std::string where = fmt::format("tools[{}].", index);
  JsonFields fields(tool, where);
  if (auto type = fields.string("type"); type && *type != "custom")
    throw ApiError(422,
                   fmt::format("'{}type' \"{}\": server tools are not supported by this server; define the tool "
                               "with name, description and input_schema",
                               where, *type),
                   where + "type", "unsupported_parameter");
  auto name = fields.string("name");
  if (!name || name->empty()) throw bad_request(where + "name", "'{}name' is required", where);
  auto schema = fields.object("input_schema");
  if (!schema) throw bad_request(where + "input_schema", "'{}input_schema' is required", where);
  nlohmann::ordered_json function = {{"name", *name}};
  if (auto description = fields.string("description")) function["description"] = *description;
  function["parameters"] = std::move(*schema);
  return {{"type", "function"}, {"function", std::move(function)}};
}

nlohmann::ordered_json read_tools(const JsonFields& fields) {
  const nlohmann::ordered_json* tools = fields.find("tools");
  if (tools == nullptr) return nullptr;
  if (!tools->is_array()) throw bad_request("tools", "'tools' must be an array, got {}", json_type_name(*tools));
  if (tools->empty()) return nullptr;
  nlohmann::ordered_json functions = nlohmann::ordered_json::array();
  for (size_t index = 0; index < tools->size(); ++index) functions.push_back(function_tool(tools->at(index), index));
  return functions;
}

// {"type": "auto" | "any" | "tool" | "none", "disable_parallel_tool_use"?, "name"?}. Leaves
// request.tools null for "none".
void read_tool_choice(const JsonFields& fields, AnthropicRequest& request) {
  auto choice = fields.object("tool_choice");
  if (!choice) return;
  JsonFields choice_fields(*choice, "tool_choice.");
  auto type = choice_fields.string("type");
  if (!type) throw bad_request("tool_choice.type", "'tool_choice.type' is required");
  const bool has_tools = !request.tools.is_null();
  if (*type == "none") {
    request.tools = nullptr;
  } else if (*type == "auto") {
    request.first_tool_call_only = choice_fields.boolean("disable_parallel_tool_use").value_or(false);
  } else if (*type == "any" || *type == "tool") {
    if (!has_tools) throw bad_request("tool_choice", "'tool_choice' is \"{}\" but no 'tools' were given", *type);
    const bool one_call = choice_fields.boolean("disable_parallel_tool_use").value_or(false);
    request.first_tool_call_only = one_call;
    nlohmann::ordered_json callable = request.tools;
    if (*type == "tool") {
      auto name = choice_fields.string("name");
      if (!name || name->empty()) throw bad_request("tool_choice.name", "'tool_choice.name' is required for type \"tool\"");
      callable = nlohmann::ordered_json::array();
      for (const auto& tool : request.tools)
        if (tool["function"]["name"] == *name) callable.push_back(tool);
      if (callable.empty()) throw bad_request("tool_choice.name", "'tool_choice.name' \"{}\" is not in 'tools'", *name);
    }
    request.answer_schema = compile_tool_call_list(callable, one_call);
    request.answer_is_call_list = true;
  } else {
    throw bad_request("tool_choice.type", "'tool_choice.type' must be \"auto\", \"any\", \"tool\" or \"none\", got \"{}\"",
                      *type);
  }
}

// output_config.format {"type": "json_schema", "schema": {...}}: the answer's text is a
// document under the schema (json_schema_compile.h's subset).
void read_output_format(const JsonFields& output, AnthropicRequest& request) {
  auto format = output.object("format");
  if (!format) return;
  JsonFields format_fields(*format, "output_config.format.");
  const auto type = format_fields.string("type");
  if (type != "json_schema")
    throw bad_request("output_config.format.type", "'output_config.format.type' must be \"json_schema\"");
  auto schema = format_fields.object("schema");
  if (!schema) throw bad_request("output_config.format.schema", "'output_config.format.schema' is required");
  if (request.answer_schema)
    throw bad_request("output_config.format", "'output_config.format' and a 'tool_choice' of \"any\" or \"tool\" exclude each other");
  try {
    request.answer_schema = compile_json_schema(*schema);
  } catch (const JsonSchemaError& error) {
    throw bad_request("output_config.format.schema", "'output_config.format.schema': {}", error.what());
  }
}

// "thinking" -> the template switches. Absent: the template's own default.
void read_thinking(const JsonFields& fields, nlohmann::ordered_json& kwargs) {
  auto thinking = fields.object("thinking");
  if (!thinking) return;
  JsonFields thinking_fields(*thinking, "thinking.");
  auto type = thinking_fields.string("type");
  if (!type) throw bad_request("thinking.type", "'thinking.type' is required");
  bool enabled = false;
  if (*type == "enabled") {
    if (!thinking_fields.integer("budget_tokens", 1, std::numeric_limits<int32_t>::max()))
      throw bad_request("thinking.budget_tokens", "'thinking.budget_tokens' is required when thinking is enabled");
    enabled = true;
  } else if (*type == "adaptive") {
    enabled = true;  // the model decides how long to think, which is what open models do anyway
  } else if (*type != "disabled") {
    throw bad_request("thinking.type", "'thinking.type' must be \"enabled\", \"adaptive\" or \"disabled\", got \"{}\"",
                      *type);
  }
  kwargs["thinking"] = enabled;
  kwargs["enable_thinking"] = enabled;
}

SamplingParams read_sampling(const JsonFields& fields, const FieldLimits& limits) {
  SamplingParams params;
  // Not bounded by the context here: the route cuts it to the room the prompt leaves.
  auto max_tokens = fields.integer("max_tokens", 1, std::numeric_limits<int32_t>::max());
  if (!max_tokens) throw bad_request("max_tokens", "'max_tokens' is required");
  params.max_tokens = static_cast<int32_t>(*max_tokens);
  if (auto value = fields.number("temperature", 0.0, 1.0)) params.temperature = static_cast<float>(*value);
  if (auto value = fields.number("top_p", 0.0, 1.0)) {
    if (*value <= 0.0) throw bad_request("top_p", "'top_p' must be in (0, 1], got {}", *value);
    params.top_p = static_cast<float>(*value);
  }
  if (auto value = fields.integer("top_k", 0, std::numeric_limits<int32_t>::max()))
    params.top_k = static_cast<int32_t>(*value);
  if (const auto* stops = fields.find("stop_sequences")) {
    if (!stops->is_array())
      throw bad_request("stop_sequences", "'stop_sequences' must be an array of strings, got {}", json_type_name(*stops));
    params.stop = fields.string_or_strings("stop_sequences", limits.max_stop_strings);
    for (const auto& stop : params.stop)
      if (stop.empty()) throw bad_request("stop_sequences", "'stop_sequences' strings must not be empty");
  }
  return params;
}

// A final assistant message is a prefill the answer continues (Anthropic's rule); an
// empty one asks for nothing and is dropped.
void read_prefill(AnthropicRequest& request) {
  const nlohmann::ordered_json& last = request.messages.back();
  if (last["role"] != "assistant") return;
  if (last.contains("tool_calls"))
    throw bad_request("messages", "The final assistant message (a prefill the answer continues) must not hold tool_use "
                                  "blocks; send their tool_result blocks in a user message");
  if (last["content"] == "" && !last.contains("reasoning_content") && request.messages.size() > 1) {
    request.messages.erase(request.messages.size() - 1);
    return;
  }
  request.continue_final_message = true;
}

}  // namespace

AnthropicRequest parse_anthropic_request(const nlohmann::ordered_json& body, const FieldLimits& limits,
                                         AnthropicEndpoint endpoint) {
  JsonFields fields(body);
  AnthropicRequest request;
  auto model = fields.string("model");
  if (!model) throw bad_request("model", "'model' is required");
  request.model = std::move(*model);
  request.messages = chat_messages_from_anthropic(fields.find("system"), fields.find("messages"));
  read_prefill(request);

  request.tools = read_tools(fields);
  read_tool_choice(fields, request);
  read_thinking(fields, request.chat_template_kwargs);
  fields.object("metadata");  // validates the type; nothing in it changes the answer
  if (auto output = fields.object("output_config")) read_output_format(JsonFields(*output, "output_config."), request);
  if (endpoint == AnthropicEndpoint::CountTokens) return request;
  request.sampling = read_sampling(fields, limits);
  request.stream = fields.boolean("stream").value_or(false);
  return request;
}

}  // namespace rackserve::api
