// Lexer: template source -> tokens, reproducing jinja2's lexer rule for rule: `{{ }}`,
// `{% %}`, `{# #}`, `{% raw %}`, whitespace control (`-`/`+`), trim_blocks, lstrip_blocks,
// newline normalization and the one dropped trailing newline. Every token carries the byte
// offset where it starts so errors can name line and column.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rackserve::jinja {

enum class TokenType : uint8_t {
  Data,  // template text outside tags
  VariableBegin,
  VariableEnd,
  BlockBegin,
  BlockEnd,
  Name,
  String,
  Integer,
  Float,
  Add,
  Sub,
  Div,
  FloorDiv,
  Mul,
  Pow,
  Mod,
  Tilde,
  LBracket,
  RBracket,
  LParen,
  RParen,
  LBrace,
  RBrace,
  Eq,
  Ne,
  Gt,
  Ge,
  Lt,
  Le,
  Assign,
  Dot,
  Colon,
  Pipe,
  Comma,
  Semicolon,
  Eof,
};

// How jinja2 names a token in "expected ..." messages ('end of print statement', ...).
const char* describe_token_type(TokenType type);

struct Token {
  TokenType type = TokenType::Eof;
  uint32_t offset = 0;
  std::string text;  // Data text, Name, decoded String value, operator spelling
  int64_t int_value = 0;
  double float_value = 0.0;
};

struct LexerOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
  bool keep_trailing_newline = false;
};

// \r\n and \r become \n; without keep_trailing_newline one final newline is dropped.
std::string normalize_newlines(std::string_view source, bool keep_trailing_newline);

// Tokenizes normalized source. Throws jinja::Error (Syntax) with the offending offset.
std::vector<Token> tokenize(std::string_view source, const LexerOptions& options);

// Maps byte offsets of the normalized source to 1-based line and column (code points).
class SourceMap {
 public:
  explicit SourceMap(std::string_view source);
  std::pair<int, int> locate(uint32_t offset) const;

 private:
  std::string_view source_;
  std::vector<uint32_t> line_starts_;
};

}  // namespace rackserve::jinja
