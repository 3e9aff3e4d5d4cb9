// GLM-4.5 … 5's tool-call format, as their chat templates render an assistant's
// tool_calls; GLM-4.6 puts a newline between the pieces, GLM-4.7 writes them together:
//
//   <tool_call>NAME\n<arg_key>KEY</arg_key>\n<arg_value>VALUE</arg_value>\n…</tool_call>
//   <tool_call>NAME<arg_key>KEY</arg_key><arg_value>VALUE</arg_value>…</tool_call>
//
// Calls stand in the content without a section around them. A string value is written
// verbatim, any other value as JSON (tojson).
#include "text/parsers/key_value_call_parser.h"
#include "text/parsers/tool_call_formats.h"

namespace rackserve::text {
namespace {

constexpr KeyValueCallSyntax kGlm45{
    .section_begin = {},
    .section_end = {},
    .call_begin = "<tool_call>",
    .name_end_bytes = "< \t\r\n",
    .key_begin = "<arg_key>",
    .key_end = "</arg_key>",
    .value_begin = "<arg_value>",
    .value_end = "</arg_value>",
    .call_end = "</tool_call>",
};

}  // namespace

std::unique_ptr<ToolCallParser> make_glm45_tool_call_parser(ArgumentTypes types) {
  return std::make_unique<KeyValueCallParser>(kGlm45, std::move(types));
}

}  // namespace rackserve::text
