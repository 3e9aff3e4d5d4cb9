// AssistantOutputParser: splits one generated answer, as it streams, into what the chat
// APIs report separately: reasoning ("<think>…</think>"), plain content, and tool calls in
// the model family's format. One instance per sequence; the OpenAI and Anthropic
// formatters both use it, so both APIs read a model's output the same way. Under a forced
// call (tool_choice naming a function) the whole answer, after the reasoning where that is
// split off, is that call's arguments; under forced calls of any tool it is a list of calls
// (tool_call_list.h).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/reasoning_splitter.h"
#include "api/served_model.h"
#include "api/tool_call_list.h"
#include "engine/sampling_params.h"
#include "text/parsers/tool_call_parser.h"

namespace rackserve::api {

struct AssistantOutputOptions {
  bool split_reasoning = false;      // the reasoning parser is on
  bool starts_in_reasoning = false;  // the prompt already opened <think>
  // Set when the request offered tools and the answer may call them: the family's format.
  std::optional<text::ToolCallFormat> tool_call_format;
  nlohmann::json tools;  // the request's tools (OpenAI shape), for argument types
  bool first_tool_call_only = false;  // OpenAI's parallel_tool_calls: false
  // Set when tool_choice names a function: the answer (decoded under its parameters schema) is
  // all the arguments of tool call 0 of that name. Only reasoning may be split off first (a
  // model that thinks before its constrained answer); tool_call_format is then left unset.
  std::optional<std::string> forced_tool_call_name = std::nullopt;
  // Set when the answer is a list of calls of any of the tools (tool_call_list.h: OpenAI
  // tool_choice "required", Anthropic "any" / "tool"), read as those calls. These count as
  // the model's calls (finish_reason "tool_calls", stop_reason "tool_use").
  bool forced_tool_call_list = false;
};

struct AssistantDelta {
  std::string reasoning;
  std::string content;
  std::vector<text::ToolCallDelta> tool_calls;

  bool empty() const { return reasoning.empty() && content.empty() && tool_calls.empty(); }
};

// The options for `model`'s answer to `prompt`. `tools` is what the request lets the
// model call (null: none); calls are parsed when the model's format is known.
AssistantOutputOptions assistant_output_options(const ServedModel& model, std::string_view prompt,
                                                const nlohmann::ordered_json& tools);

// Special tokens stay in the answer's text when its tool calls are parsed and the model
// writes their markup with special tokens (ServedModel::tool_call_markup_is_special).
void keep_tool_call_markup(const ServedModel& model, const AssistantOutputOptions& options, SamplingParams& params);

class AssistantOutputParser {
 public:
  explicit AssistantOutputParser(const AssistantOutputOptions& options);

  AssistantDelta append(std::string_view text);
  // The end of the answer: releases whatever was held back.
  AssistantDelta finish();
  // Whether the model chose to call a tool so far (finish_reason "tool_calls" / stop_reason
  // "tool_use"). A forced call of a named function does not count: OpenAI finishes it with
  // "stop"; a forced list of calls does.
  bool called_tools() const { return called_tools_; }

 private:
  // Passes the answer part of a reasoning split on to the forced call or the tool-call
  // parser, if any.
  AssistantDelta route(ReasoningDelta split, bool last);
  // The forced call's next arguments (none for empty `text` once started); its first delta
  // (made at the latest by finish()) names it.
  std::vector<text::ToolCallDelta> forced_call_arguments(std::string_view text);

  std::optional<ReasoningSplitter> reasoning_;      // set when reasoning is split off
  std::unique_ptr<text::ToolCallParser> tool_calls_;  // set when tools may be called
  bool first_tool_call_only_ = false;
  bool called_tools_ = false;
  std::optional<std::string> forced_call_name_;  // set under a forced call
  bool forced_call_started_ = false;
  std::optional<ToolCallListReader> call_list_;  // set under forced calls of any tool
};

}  // namespace rackserve::api
