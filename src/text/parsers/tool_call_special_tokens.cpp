#include "text/parsers/tool_call_special_tokens.h"

namespace rackserve::text {

bool tool_call_markup_is_special(const Tokenizer& tokenizer, ToolCallFormat format) {
  for (const AddedToken& token : tokenizer.added_tokens()) {
    if (!token.special) continue;
    std::unique_ptr<ToolCallParser> parser = make_tool_call_parser(format, nullptr);
    ToolCallParse parsed = parser->append(token.content);
    const ToolCallParse rest = parser->finish();
    if (parsed.content + rest.content != token.content || !parsed.calls.empty() || !rest.calls.empty()) return true;
  }
  return false;
}

}  // namespace rackserve::text
