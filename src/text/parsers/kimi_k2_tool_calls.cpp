// Kimi-K2's tool-call format, as its chat templates render an assistant's tool_calls:
//
//   <|tool_calls_section_begin|>
//     <|tool_call_begin|>functions.NAME:INDEX<|tool_call_argument_begin|>{…}<|tool_call_end|> …
//   <|tool_calls_section_end|>
// (written on one line; the line breaks here are for reading)
//
// The model writes the call id "functions.NAME:INDEX"; it is the call's id, and the name
// is read out of it (an id of another shape is taken as the name whole).
#include "text/parsers/json_call_parser.h"
#include "text/parsers/markup_name.h"
#include "text/parsers/tool_call_formats.h"

namespace rackserve::text {
namespace {

constexpr std::string_view kFunctionsPrefix = "functions.";

CallHead read_kimi_head(std::string_view head) {
  const std::string_view id = trim_whitespace(head);
  std::string_view name = id;
  if (name.starts_with(kFunctionsPrefix)) name.remove_prefix(kFunctionsPrefix.size());
  const size_t colon = name.rfind(':');
  if (colon != std::string_view::npos && colon + 1 < name.size() &&
      name.find_first_not_of("0123456789", colon + 1) == std::string_view::npos) {
    name = name.substr(0, colon);
  }
  return {.id = std::string(id), .name = std::string(name)};
}

constexpr JsonCallSyntax kKimiK2{
    .section_begin = "<|tool_calls_section_begin|>",
    .section_end = "<|tool_calls_section_end|>",
    .call_begin = "<|tool_call_begin|>",
    .head_end = "<|tool_call_argument_begin|>",
    .call_end = "<|tool_call_end|>",
    .read_head = read_kimi_head,
};

}  // namespace

std::unique_ptr<ToolCallParser> make_kimi_k2_tool_call_parser() { return std::make_unique<JsonCallParser>(kKimiK2); }

}  // namespace rackserve::text
