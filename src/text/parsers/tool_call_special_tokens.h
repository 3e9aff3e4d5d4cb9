// Whether a model writes its tool-call markup with special tokens. GLM's and MiniMax's
// tokenizers may mark "<tool_call>" / "<minimax:tool_call>" special, and a detokenizer that
// skips special tokens (the default) would hand the parser calls without their markup.
#pragma once

#include "text/parsers/tool_call_parser.h"
#include "text/tokenizer.h"

namespace rackserve::text {

// True when some special added token of `tokenizer` is markup to `format`'s parser: fed
// alone, the parser does not give it back as content. The parser is the only place that
// knows a format's markers, so it is asked rather than a second list kept here.
bool tool_call_markup_is_special(const Tokenizer& tokenizer, ToolCallFormat format);

}  // namespace rackserve::text
