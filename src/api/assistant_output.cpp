#include "api/assistant_output.h"

namespace rackserve::api {

AssistantOutputOptions assistant_output_options(const ServedModel& model, std::string_view prompt,
                                                const nlohmann::ordered_json& tools) {
  AssistantOutputOptions options;
  options.split_reasoning = model.split_reasoning;
  options.starts_in_reasoning = model.split_reasoning && prompt_opens_reasoning(prompt);
  if (!tools.is_null() && model.tool_call_format) {
    options.tool_call_format = model.tool_call_format;
    options.tools = nlohmann::json(tools);  // looked up by name: the order does not matter
  }
  return options;
}

void keep_tool_call_markup(const ServedModel& model, const AssistantOutputOptions& options, SamplingParams& params) {
  if (options.tool_call_format && model.tool_call_markup_is_special) params.skip_special_tokens = false;
}

AssistantOutputParser::AssistantOutputParser(const AssistantOutputOptions& options) {
  if (options.split_reasoning) reasoning_.emplace(options.starts_in_reasoning);
  if (options.tool_call_format) tool_calls_ = text::make_tool_call_parser(*options.tool_call_format, options.tools);
  first_tool_call_only_ = options.first_tool_call_only;
  forced_call_name_ = options.forced_tool_call_name;
  if (options.forced_tool_call_list) call_list_.emplace();
}

std::vector<text::ToolCallDelta> AssistantOutputParser::forced_call_arguments(std::string_view text) {
  if (text.empty() && forced_call_started_) return {};
  text::ToolCallDelta call{.index = 0, .id = {}, .name = {}, .arguments = std::string(text)};
  if (!forced_call_started_) call.name = *forced_call_name_;  // the id is the formatter's to give
  forced_call_started_ = true;
  std::vector<text::ToolCallDelta> calls;
  calls.push_back(std::move(call));
  return calls;
}

AssistantDelta AssistantOutputParser::append(std::string_view text) {
  if (!reasoning_) return route({.reasoning = {}, .content = std::string(text)}, false);
  return route(reasoning_->append(text), false);
}

AssistantDelta AssistantOutputParser::finish() {
  return route(reasoning_ ? reasoning_->finish() : ReasoningDelta{}, true);
}

AssistantDelta AssistantOutputParser::route(ReasoningDelta split, bool last) {
  AssistantDelta delta{.reasoning = std::move(split.reasoning), .content = {}, .tool_calls = {}};
  if (forced_call_name_) {
    // An empty answer still names the call, at the latest in finish().
    if (!split.content.empty() || last) delta.tool_calls = forced_call_arguments(split.content);
    return delta;
  }
  if (call_list_) {
    delta.tool_calls = call_list_->append(split.content);
    if (last)
      for (text::ToolCallDelta& rest : call_list_->finish()) {
        if (!delta.tool_calls.empty() && delta.tool_calls.back().index == rest.index)
          delta.tool_calls.back().arguments += rest.arguments;  // one delta per call and result
        else
          delta.tool_calls.push_back(std::move(rest));
      }
    called_tools_ = called_tools_ || !delta.tool_calls.empty();
    return delta;
  }
  if (!tool_calls_) {
    delta.content = std::move(split.content);
    return delta;
  }
  text::ToolCallParse parsed = tool_calls_->append(split.content);
  if (last) {
    text::ToolCallParse rest = tool_calls_->finish();
    parsed.content += rest.content;
    for (auto& call : rest.calls) parsed.calls.push_back(std::move(call));
  }
  delta.content = std::move(parsed.content);
  delta.tool_calls = std::move(parsed.calls);
  if (first_tool_call_only_)
    std::erase_if(delta.tool_calls, [](const text::ToolCallDelta& call) { return call.index > 0; });
  called_tools_ = called_tools_ || !delta.tool_calls.empty();
  return delta;
}

}  // namespace rackserve::api
