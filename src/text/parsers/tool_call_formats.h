// The parser of each tool-call format, for make_tool_call_parser() (one file per format:
// deepseek_tool_calls.cpp, kimi_k2_tool_calls.cpp, glm_tool_calls.cpp,
// minimax_m2_tool_calls.cpp).
#pragma once

#include <memory>

#include "text/parsers/argument_types.h"
#include "text/parsers/tool_call_parser.h"

namespace rackserve::text {

std::unique_ptr<ToolCallParser> make_deepseek_v3_tool_call_parser();
std::unique_ptr<ToolCallParser> make_deepseek_v31_tool_call_parser();
std::unique_ptr<ToolCallParser> make_kimi_k2_tool_call_parser();
std::unique_ptr<ToolCallParser> make_glm45_tool_call_parser(ArgumentTypes types);
std::unique_ptr<ToolCallParser> make_minimax_m2_tool_call_parser(ArgumentTypes types);

}  // namespace rackserve::text
