// DeepSeek's tool-call formats, as their chat templates render an assistant's tool_calls
// (calls after the first are preceded by "\n" in V3 / R1):
//
//   V3 / R1:   <｜tool▁calls▁begin｜>
//                <｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\n{…}\n```<｜tool▁call▁end｜> …
//              <｜tool▁calls▁end｜>
//   V3.1/V3.2: <｜tool▁calls▁begin｜>
//                <｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{…}<｜tool▁call▁end｜> …
//              <｜tool▁calls▁end｜>
// (written on one line; the line breaks here are for reading)
//
// In V3 the name is the line after the separator (the text before it is the call type);
// the code fence around the arguments is dropped as markup.
#include "text/parsers/json_call_parser.h"
#include "text/parsers/markup_name.h"
#include "text/parsers/tool_call_formats.h"

namespace rackserve::text {
namespace {

constexpr std::string_view kSectionBegin = "<｜tool▁calls▁begin｜>";
constexpr std::string_view kSectionEnd = "<｜tool▁calls▁end｜>";
constexpr std::string_view kCallBegin = "<｜tool▁call▁begin｜>";
constexpr std::string_view kCallEnd = "<｜tool▁call▁end｜>";
constexpr std::string_view kSeparator = "<｜tool▁sep｜>";

// "function<｜tool▁sep｜>NAME" (the head ends at the newline after the name; a fence
// written without that newline is not part of the name).
CallHead read_v3_head(std::string_view head) {
  const size_t separator = head.find(kSeparator);
  if (separator != std::string_view::npos) head.remove_prefix(separator + kSeparator.size());
  head = trim_whitespace(head);
  return {.id = {}, .name = std::string(head.substr(0, head.find('`')))};
}

// "NAME" (the head ends at the separator).
CallHead read_v31_head(std::string_view head) { return {.id = {}, .name = std::string(trim_whitespace(head))}; }

constexpr JsonCallSyntax kDeepSeekV3{
    .section_begin = kSectionBegin,
    .section_end = kSectionEnd,
    .call_begin = kCallBegin,
    .head_end = "\n",
    .call_end = kCallEnd,
    .read_head = read_v3_head,
};

constexpr JsonCallSyntax kDeepSeekV31{
    .section_begin = kSectionBegin,
    .section_end = kSectionEnd,
    .call_begin = kCallBegin,
    .head_end = kSeparator,
    .call_end = kCallEnd,
    .read_head = read_v31_head,
};

}  // namespace

std::unique_ptr<ToolCallParser> make_deepseek_v3_tool_call_parser() {
  return std::make_unique<JsonCallParser>(kDeepSeekV3);
}

std::unique_ptr<ToolCallParser> make_deepseek_v31_tool_call_parser() {
  return std::make_unique<JsonCallParser>(kDeepSeekV31);
}

}  // namespace rackserve::text
