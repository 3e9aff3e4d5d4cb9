// Parser: tokens -> syntax tree, following jinja2's grammar and operator precedence
// (including its quirks: `**` is left-associative, `-x|f` filters the negation, a test
// argument may follow without parentheses). Nesting is bounded so hostile templates fail
// with an error instead of exhausting the stack.
#pragma once

#include <vector>

#include "text/jinja/ast.h"
#include "text/jinja/lexer.h"

namespace rackserve::jinja {

// Maximum nesting of blocks and expressions (the tree depth), far above real templates.
constexpr int kMaxParseDepth = 128;

// Throws jinja::Error (Syntax) carrying the offset of the offending token.
Body parse(std::vector<Token> tokens);

}  // namespace rackserve::jinja
