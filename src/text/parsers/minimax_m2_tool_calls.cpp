// MiniMax-M2's tool-call format, as its chat template renders an assistant's tool_calls:
//
//   <minimax:tool_call>\n
//   <invoke name="NAME">\n<parameter name="KEY">VALUE</parameter>\n…</invoke>\n …
//   </minimax:tool_call>
// (the template writes exactly the \n shown; other whitespace between the tags is dropped too)
//
// A string value is written verbatim, any other value as JSON (tojson).
#include "text/parsers/key_value_call_parser.h"
#include "text/parsers/tool_call_formats.h"

namespace rackserve::text {
namespace {

constexpr KeyValueCallSyntax kMiniMaxM2{
    .section_begin = "<minimax:tool_call>",
    .section_end = "</minimax:tool_call>",
    .call_begin = "<invoke name=",
    .name_end_bytes = ">",
    .key_begin = "<parameter name=",
    .key_end = ">",
    .value_begin = {},
    .value_end = "</parameter>",
    .call_end = "</invoke>",
};

}  // namespace

std::unique_ptr<ToolCallParser> make_minimax_m2_tool_call_parser(ArgumentTypes types) {
  return std::make_unique<KeyValueCallParser>(kMiniMaxM2, std::move(types));
}

}  // namespace rackserve::text
