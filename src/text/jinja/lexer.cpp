// The lexer follows jinja2's regex rules (lexer.py) by hand: a root state that finds the
// next tag and applies whitespace control to the text before it, and a tag state that reads
// names, literals and operators until the closing delimiter (only when brackets balance).
#include "text/jinja/lexer.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "text/jinja/error.h"
#include "text/jinja/unicode.h"
#include "text/jinja/value_format.h"

namespace rackserve::jinja {

const char* describe_token_type(TokenType type) {
  switch (type) {
    case TokenType::Data: return "template data / text";
    case TokenType::VariableBegin: return "begin of print statement";
    case TokenType::VariableEnd: return "end of print statement";
    case TokenType::BlockBegin: return "begin of statement block";
    case TokenType::BlockEnd: return "end of statement block";
    case TokenType::Name: return "name";
    case TokenType::String: return "string";
    case TokenType::Integer: return "integer";
    case TokenType::Float: return "float";
    case TokenType::Add: return "+";
    case TokenType::Sub: return "-";
    case TokenType::Div: return "/";
    case TokenType::FloorDiv: return "//";
    case TokenType::Mul: return "*";
    case TokenType::Pow: return "**";
    case TokenType::Mod: return "%";
    case TokenType::Tilde: return "~";
    case TokenType::LBracket: return "[";
    case TokenType::RBracket: return "]";
    case TokenType::LParen: return "(";
    case TokenType::RParen: return ")";
    case TokenType::LBrace: return "{";
    case TokenType::RBrace: return "}";
    case TokenType::Eq: return "==";
    case TokenType::Ne: return "!=";
    case TokenType::Gt: return ">";
    case TokenType::Ge: return ">=";
    case TokenType::Lt: return "<";
    case TokenType::Le: return "<=";
    case TokenType::Assign: return "=";
    case TokenType::Dot: return ".";
    case TokenType::Colon: return ":";
    case TokenType::Pipe: return "|";
    case TokenType::Comma: return ",";
    case TokenType::Semicolon: return ";";
    case TokenType::Eof: return "end of template";
  }
  return "token";
}

std::string normalize_newlines(std::string_view source, bool keep_trailing_newline) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    const char c = source[i];
    if (c == '\r') {
      out += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out += c;
    }
  }
  if (!keep_trailing_newline && !out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

SourceMap::SourceMap(std::string_view source) : source_(source) {
  line_starts_.push_back(0);
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\n') line_starts_.push_back(static_cast<uint32_t>(i + 1));
  }
}

std::pair<int, int> SourceMap::locate(uint32_t offset) const {
  offset = std::min<uint32_t>(offset, static_cast<uint32_t>(source_.size()));
  const auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
  const size_t line_index = static_cast<size_t>(it - line_starts_.begin()) - 1;
  const uint32_t start = line_starts_[line_index];
  const size_t column = unicode::count_code_points(source_.substr(start, offset - start)) + 1;
  return {static_cast<int>(line_index + 1), static_cast<int>(column)};
}

namespace {

struct Operator {
  std::string_view spelling;
  TokenType type;
};

// Longest first, as jinja2's operator regex is sorted.
constexpr Operator kOperators[] = {
    {"//", TokenType::FloorDiv}, {"**", TokenType::Pow},    {"==", TokenType::Eq},       {"!=", TokenType::Ne},
    {">=", TokenType::Ge},       {"<=", TokenType::Le},     {"+", TokenType::Add},       {"-", TokenType::Sub},
    {"/", TokenType::Div},       {"*", TokenType::Mul},     {"%", TokenType::Mod},       {"~", TokenType::Tilde},
    {"[", TokenType::LBracket},  {"]", TokenType::RBracket}, {"(", TokenType::LParen},   {")", TokenType::RParen},
    {"{", TokenType::LBrace},    {"}", TokenType::RBrace},  {">", TokenType::Gt},        {"<", TokenType::Lt},
    {"=", TokenType::Assign},    {".", TokenType::Dot},     {":", TokenType::Colon},     {"|", TokenType::Pipe},
    {",", TokenType::Comma},     {";", TokenType::Semicolon},
};

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

class Lexer {
 public:
  Lexer(std::string_view source, const LexerOptions& options) : s_(source), options_(options) {}

  std::vector<Token> run() {
    while (pos_ < s_.size()) lex_root();
    push(TokenType::Eof, static_cast<uint32_t>(s_.size()));
    return std::move(tokens_);
  }

 private:
  [[noreturn]] void fail(std::string message, size_t offset) const {
    throw Error(ErrorKind::Syntax, std::move(message), static_cast<uint32_t>(offset));
  }

  Token& push(TokenType type, size_t offset, std::string text = {}) {
    Token& token = tokens_.emplace_back();
    token.type = type;
    token.offset = static_cast<uint32_t>(offset);
    token.text = std::move(text);
    return token;
  }

  bool starts_with(size_t at, std::string_view what) const { return s_.substr(std::min(at, s_.size()), what.size()) == what; }

  // Python's \s* from `at`.
  size_t skip_space(size_t at) const {
    while (at < s_.size()) {
      size_t next = at;
      if (!unicode::is_space(unicode::decode(s_, next))) break;
      at = next;
    }
    return at;
  }

  // Byte length of `text` after Python's str.rstrip().
  static size_t rstrip_length(std::string_view text) {
    size_t keep = 0;
    for (size_t pos = 0; pos < text.size();) {
      if (!unicode::is_space(unicode::decode(text, pos))) keep = pos;
    }
    return keep;
  }

  static bool all_space(std::string_view text) {
    if (text.empty()) return false;
    for (size_t pos = 0; pos < text.size();) {
      if (!unicode::is_space(unicode::decode(text, pos))) return false;
    }
    return true;
  }

  // Text before a tag, after `-` (strip all whitespace) or lstrip_blocks (strip the
  // indentation of a line that holds only the tag).
  void emit_text(size_t start, size_t end, char sign, bool is_variable) {
    std::string_view text = s_.substr(start, end - start);
    if (sign == '-') {
      text = text.substr(0, rstrip_length(text));
    } else if (sign != '+' && options_.lstrip_blocks && !is_variable) {
      const size_t newline = text.rfind('\n');
      const size_t line_start = newline == std::string_view::npos ? 0 : newline + 1;
      if ((line_start > 0 || line_starting_) && all_space(text.substr(line_start))) {
        text = text.substr(0, line_start);
      }
    }
    if (!text.empty()) push(TokenType::Data, start, std::string(text));
  }

  // Position after a closing delimiter with its whitespace control; `at` is where the
  // optional sign would be.
  size_t finish_end(size_t delimiter_end, char sign, bool trims) {
    size_t end = delimiter_end;
    if (sign == '-') {
      end = skip_space(end);
    } else if (sign != '+' && trims && options_.trim_blocks && end < s_.size() && s_[end] == '\n') {
      ++end;
    }
    line_starting_ = end > 0 && s_[end - 1] == '\n';
    return end;
  }

  // `{%[-+]?\s*raw\s*(-%}\s*|%})` at `at`; returns the end of the match or npos.
  size_t match_raw_begin(size_t at, char* sign) const {
    size_t q = at + 2;
    *sign = 0;
    if (q < s_.size() && (s_[q] == '-' || s_[q] == '+')) *sign = s_[q++];
    q = skip_space(q);
    if (!starts_with(q, "raw")) return std::string_view::npos;
    q = skip_space(q + 3);
    if (starts_with(q, "-%}")) return skip_space(q + 3);
    if (starts_with(q, "%}")) return q + 2;
    return std::string_view::npos;
  }

  void lex_root() {
    size_t p = pos_;
    while (true) {
      p = s_.find('{', p);
      if (p == std::string_view::npos || p + 1 >= s_.size()) {
        push(TokenType::Data, pos_, std::string(s_.substr(pos_)));
        pos_ = s_.size();
        return;
      }
      const char kind = s_[p + 1];
      if (kind == '{' || kind == '%' || kind == '#') break;
      ++p;
    }
    const char kind = s_[p + 1];
    if (kind == '%') {
      char sign = 0;
      const size_t raw_end = match_raw_begin(p, &sign);
      if (raw_end != std::string_view::npos) {
        emit_text(pos_, p, sign, false);
        line_starting_ = raw_end > 0 && s_[raw_end - 1] == '\n';
        lex_raw(p, raw_end);
        return;
      }
    }
    const char sign = p + 2 < s_.size() && (s_[p + 2] == '-' || s_[p + 2] == '+') ? s_[p + 2] : 0;
    emit_text(pos_, p, sign, kind == '{');
    line_starting_ = false;
    const size_t inner = p + 2 + (sign ? 1 : 0);
    if (kind == '#') {
      lex_comment(p, inner);
    } else {
      lex_tag(p, inner, kind == '{');
    }
  }

  void lex_comment(size_t begin, size_t inner) {
    const size_t close = s_.find("#}", inner);
    if (close == std::string_view::npos) fail("Missing end of comment tag", begin);
    char sign = 0;
    if (close > inner && (s_[close - 1] == '-' || s_[close - 1] == '+')) sign = s_[close - 1];
    pos_ = finish_end(close + 2, sign, true);
  }

  void lex_raw(size_t begin, size_t content_start) {
    for (size_t p = s_.find("{%", content_start); p != std::string_view::npos; p = s_.find("{%", p + 1)) {
      size_t q = p + 2;
      char sign = 0;
      if (q < s_.size() && (s_[q] == '-' || s_[q] == '+')) sign = s_[q++];
      q = skip_space(q);
      if (!starts_with(q, "endraw")) continue;
      q = skip_space(q + 6);
      char end_sign = 0;
      if (q < s_.size() && (s_[q] == '-' || s_[q] == '+')) end_sign = s_[q++];
      if (!starts_with(q, "%}")) continue;
      emit_text(content_start, p, sign, false);
      pos_ = finish_end(q + 2, end_sign, true);
      return;
    }
    fail("Missing end of raw directive", begin);
  }

  void lex_tag(size_t begin, size_t q, bool is_variable) {
    push(is_variable ? TokenType::VariableBegin : TokenType::BlockBegin, begin);
    std::vector<char> balance;
    while (q < s_.size()) {
      if (balance.empty()) {
        if (is_variable) {
          if (starts_with(q, "-}}")) return close_tag(q, q + 3, '-', false, TokenType::VariableEnd);
          if (starts_with(q, "}}")) return close_tag(q, q + 2, 0, false, TokenType::VariableEnd);
        } else {
          if (starts_with(q, "+%}")) return close_tag(q, q + 3, '+', true, TokenType::BlockEnd);
          if (starts_with(q, "-%}")) return close_tag(q, q + 3, '-', true, TokenType::BlockEnd);
          if (starts_with(q, "%}")) return close_tag(q, q + 2, 0, true, TokenType::BlockEnd);
        }
      }
      const size_t after_space = skip_space(q);
      if (after_space != q) {
        q = after_space;
        continue;
      }
      const char c = s_[q];
      if (is_digit(c)) {
        q = lex_number(q);
      } else if (is_name_start(c)) {
        size_t end = q + 1;
        while (end < s_.size() && is_name_char(s_[end])) ++end;
        push(TokenType::Name, q, std::string(s_.substr(q, end - q)));
        q = end;
      } else if (c == '\'' || c == '"') {
        q = lex_string(q);
      } else {
        q = lex_operator(q, balance);
      }
    }
    // Unterminated tag: the parser reports what it expected.
    pos_ = s_.size();
  }

  void close_tag(size_t at, size_t delimiter_end, char sign, bool trims, TokenType type) {
    push(type, at);
    pos_ = finish_end(delimiter_end, sign, trims);
  }

  // `\d+(_\d+)*` from `at`; returns the end, or `at` when no digit.
  size_t digit_group(size_t at) const {
    size_t q = at;
    if (q >= s_.size() || !is_digit(s_[q])) return at;
    while (q < s_.size() && is_digit(s_[q])) ++q;
    while (q + 1 < s_.size() && s_[q] == '_' && is_digit(s_[q + 1])) {
      ++q;
      while (q < s_.size() && is_digit(s_[q])) ++q;
    }
    return q;
  }

  size_t lex_number(size_t at) {
    // float_re: (?<!\.) digits ( (\.digits)? e[+-]?digits | \.digits )
    if (at == 0 || s_[at - 1] != '.') {
      const size_t int_end = digit_group(at);
      size_t frac_end = int_end;
      if (int_end < s_.size() && s_[int_end] == '.') {
        const size_t f = digit_group(int_end + 1);
        if (f != int_end + 1) frac_end = f;
      }
      size_t exp_end = frac_end;
      if (frac_end < s_.size() && (s_[frac_end] == 'e' || s_[frac_end] == 'E')) {
        size_t e = frac_end + 1;
        if (e < s_.size() && (s_[e] == '+' || s_[e] == '-')) ++e;
        const size_t d = digit_group(e);
        if (d != e) exp_end = d;
      }
      if (exp_end != frac_end || frac_end != int_end) {
        std::string digits;
        for (size_t i = at; i < exp_end; ++i) {
          if (s_[i] != '_') digits += s_[i];
        }
        double value = 0;
        const auto parsed = std::from_chars(digits.data(), digits.data() + digits.size(), value);
        if (parsed.ec == std::errc::result_out_of_range) {
          // Python: 1e999 is inf, 1e-999 is 0.0.
          const size_t e = digits.find_first_of("eE");
          value = e != std::string::npos && e + 1 < digits.size() && digits[e + 1] == '-' ? 0.0 : HUGE_VAL;
        }
        Token& token = push(TokenType::Float, at, std::string(s_.substr(at, exp_end - at)));
        token.float_value = value;
        return exp_end;
      }
    }
    return lex_integer(at);
  }

  size_t lex_integer(size_t at) {
    int base = 10;
    size_t q = at;
    const auto lower = [](char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c); };
    const auto digit_value = [&](char c) -> int {
      c = lower(c);
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return 99;
    };
    std::string digits;
    if (s_[at] == '0' && at + 1 < s_.size() && (lower(s_[at + 1]) == 'b' || lower(s_[at + 1]) == 'o' || lower(s_[at + 1]) == 'x')) {
      const char prefix = lower(s_[at + 1]);
      const int prefix_base = prefix == 'b' ? 2 : prefix == 'o' ? 8 : 16;
      size_t r = at + 2;
      std::string prefixed;
      while (r < s_.size()) {
        size_t d = r;
        if (s_[d] == '_') ++d;
        if (d < s_.size() && digit_value(s_[d]) < prefix_base) {
          prefixed += s_[d];
          r = d + 1;
        } else {
          break;
        }
      }
      if (!prefixed.empty()) {
        base = prefix_base;
        digits = prefixed;
        q = r;
      }
    }
    if (digits.empty()) {
      if (s_[at] == '0') {  // 0(_?0)*
        q = at + 1;
        while (q < s_.size()) {
          size_t d = q;
          if (s_[d] == '_') ++d;
          if (d < s_.size() && s_[d] == '0') {
            q = d + 1;
          } else {
            break;
          }
        }
        digits = "0";
      } else {  // [1-9](_?\d)*
        q = at;
        digits += s_[q++];
        while (q < s_.size()) {
          size_t d = q;
          if (s_[d] == '_') ++d;
          if (d < s_.size() && is_digit(s_[d])) {
            digits += s_[d];
            q = d + 1;
          } else {
            break;
          }
        }
      }
    }
    int64_t value = 0;
    const auto result = std::from_chars(digits.data(), digits.data() + digits.size(), value, base);
    if (result.ec != std::errc()) fail("integer literal out of range: " + std::string(s_.substr(at, q - at)), at);
    Token& token = push(TokenType::Integer, at, std::string(s_.substr(at, q - at)));
    token.int_value = value;
    return q;
  }

  static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  // Python's "unicode-escape" decoding of a string literal body (after jinja2 encodes
  // non-ASCII characters with backslashreplace, so a backslash before one keeps it escaped).
  std::string decode_string(std::string_view body, size_t offset) const {
    std::string out;
    out.reserve(body.size());
    for (size_t i = 0; i < body.size();) {
      if (body[i] != '\\') {
        out += body[i++];
        continue;
      }
      if (i + 1 >= body.size()) fail("\\ at end of string", offset);
      const char e = body[i + 1];
      if (static_cast<unsigned char>(e) >= 0x80) {
        size_t next = i + 1;
        const char32_t c = unicode::decode(body, next);
        char buf[16];
        if (c <= 0xFF) {
          std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned>(c));
        } else if (c <= 0xFFFF) {
          std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
        } else {
          std::snprintf(buf, sizeof(buf), "\\U%08x", static_cast<unsigned>(c));
        }
        out += '\\';
        out += buf;
        i = next;
        continue;
      }
      i += 2;
      switch (e) {
        case '\n': break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'v': out += '\v'; break;
        case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7': {
          char32_t c = static_cast<char32_t>(e - '0');
          for (int k = 0; k < 2 && i < body.size() && body[i] >= '0' && body[i] <= '7'; ++k) c = c * 8 + (body[i++] - '0');
          unicode::append_utf8(out, c);
          break;
        }
        case 'x':
        case 'u':
        case 'U': {
          const int count = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          char32_t c = 0;
          for (int k = 0; k < count; ++k) {
            const int h = i < body.size() ? hex_value(body[i]) : -1;
            if (h < 0) {
              fail(e == 'x' ? "truncated \\xXX escape" : e == 'u' ? "truncated \\uXXXX escape" : "truncated \\UXXXXXXXX escape",
                   offset);
            }
            c = c * 16 + static_cast<char32_t>(h);
            ++i;
          }
          if (c > 0x10FFFF) fail("illegal Unicode character", offset);
          if (c >= 0xD800 && c <= 0xDFFF) fail("surrogate code points cannot be encoded as UTF-8", offset);
          unicode::append_utf8(out, c);
          break;
        }
        case 'N': fail("\\N{...} escapes are not supported", offset);
        default:
          out += '\\';
          out += e;
      }
    }
    return out;
  }

  size_t lex_string(size_t at) {
    const char quote = s_[at];
    size_t q = at + 1;
    while (q < s_.size() && s_[q] != quote) {
      if (s_[q] == '\\') ++q;
      ++q;
    }
    if (q >= s_.size()) fail(std::string("unexpected char ") + repr_string(std::string(1, quote)) + " at " + std::to_string(at), at);
    push(TokenType::String, at, decode_string(s_.substr(at + 1, q - at - 1), at));
    return q + 1;
  }

  size_t lex_operator(size_t at, std::vector<char>& balance) {
    for (const Operator& op : kOperators) {
      if (!starts_with(at, op.spelling)) continue;
      const char c = op.spelling[0];
      if (op.spelling.size() == 1) {
        if (c == '{') balance.push_back('}');
        if (c == '(') balance.push_back(')');
        if (c == '[') balance.push_back(']');
        if (c == '}' || c == ')' || c == ']') {
          if (balance.empty()) fail(std::string("unexpected '") + c + "'", at);
          const char expected = balance.back();
          balance.pop_back();
          if (expected != c) fail(std::string("unexpected '") + c + "', expected '" + expected + "'", at);
        }
      }
      push(op.type, at, std::string(op.spelling));
      return at + op.spelling.size();
    }
    size_t next = at;
    const char32_t c = unicode::decode(s_, next);
    std::string text;
    unicode::append_utf8(text, c);
    fail("unexpected char " + repr_string(text) + " at " + std::to_string(at), at);
  }

  std::string_view s_;
  const LexerOptions& options_;
  size_t pos_ = 0;
  bool line_starting_ = true;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> tokenize(std::string_view source, const LexerOptions& options) {
  return Lexer(source, options).run();
}

}  // namespace rackserve::jinja
