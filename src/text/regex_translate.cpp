// translate_regex (declared in regex.h): a small recursive-descent rewriter. Outside
// character classes it copies the pattern, rewriting only the escapes PCRE2 reads
// differently; a class is parsed into unions of atoms joined by set operators and
// re-emitted as one PCRE2 class when that is possible, else as a lookahead chain.
#include <string>
#include <vector>

#include <unicode/uchar.h>

#include "core/error.h"
#include "text/utf8.h"
#include "text/regex.h"

namespace rackserve::text {
namespace {

constexpr std::string_view kWhiteSpace = "\\p{White_Space}";
constexpr std::string_view kNotWhiteSpace = "\\P{White_Space}";
// Rust's and Oniguruma's Unicode \w.
constexpr std::string_view kWordAtoms = "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}";
constexpr std::string_view kAnyChar = "(?s:.)";

// True when `name` (as in \p{name}) means a script: not a binary property or general
// category, which Oniguruma and Rust try first. PCRE2 reads a bare script name as
// Script_Extensions (\p{Han} would match "、" and "「"); the others read Script, so
// scripts are spelled \p{sc:name} for PCRE2.
bool is_script_name(std::string_view name) {
  if (name.find_first_of(":=") != std::string_view::npos) return false;
  const std::string key(name.starts_with('^') ? name.substr(1) : name);
  return u_getPropertyValueEnum(UCHAR_SCRIPT, key.c_str()) != UCHAR_INVALID_CODE &&
         u_getPropertyValueEnum(UCHAR_GENERAL_CATEGORY_MASK, key.c_str()) == UCHAR_INVALID_CODE &&
         u_getPropertyEnum(key.c_str()) == UCHAR_INVALID_CODE;
}

// One operand of a class: atoms that fit in a PCRE2 class, plus alternatives that do
// not (negated or composite nested classes).
struct Union {
  std::string atoms;
  std::vector<std::string> alternatives;

  std::string expression() const {
    if (alternatives.empty()) return atoms.empty() ? "(?!)" : "[" + atoms + "]";
    std::string out = "(?:";
    bool first = true;
    if (!atoms.empty()) {
      out += "[" + atoms + "]";
      first = false;
    }
    for (const auto& alternative : alternatives) {
      if (!first) out += "|";
      out += alternative;
      first = false;
    }
    return out + ")";
  }
};

struct ParsedClass {
  std::string expression;  // matches exactly one character
  bool simple = false;     // one union of atoms, no operators: `atoms` can be merged
  bool negated = false;
  std::string atoms;
};

class Translator {
 public:
  explicit Translator(std::string_view pattern) : pattern_(pattern) {}

  std::string run() {
    std::string out;
    while (pos_ < pattern_.size()) {
      const char c = pattern_[pos_];
      if (c == '\\') {
        out += escape(/*in_class=*/false);
      } else if (c == '[') {
        out += parse_class().expression;
      } else {
        out.push_back(c);
        ++pos_;
      }
    }
    return out;
  }

 private:
  [[noreturn]] void fail(std::string_view what) const {
    RS_FAIL("regex {}: {} at offset {}", utf8::quoted(pattern_), what, pos_);
  }

  // Reads the escape at pos_ (a backslash) and returns its PCRE2 spelling.
  std::string escape(bool in_class) {
    if (pos_ + 1 >= pattern_.size()) fail("trailing backslash");
    const char c = pattern_[pos_ + 1];
    pos_ += 2;
    switch (c) {
      case 's': return std::string(kWhiteSpace);
      case 'S': return std::string(kNotWhiteSpace);
      case 'w': return in_class ? std::string(kWordAtoms) : "[" + std::string(kWordAtoms) + "]";
      case 'W':
        if (in_class) fail("\\W inside a character class is not supported");
        return "[^" + std::string(kWordAtoms) + "]";
      case 'u':
      case 'U': {
        const size_t digits = c == 'u' ? 4 : 8;
        if (pos_ + digits > pattern_.size()) fail("truncated \\u escape");
        std::string out = "\\x{" + std::string(pattern_.substr(pos_, digits)) + "}";
        pos_ += digits;
        return out;
      }
      case 'p':
      case 'P':
      case 'x': {
        std::string out = {'\\', c};
        if (pos_ < pattern_.size() && pattern_[pos_] == '{') {
          const size_t close = pattern_.find('}', pos_);
          if (close == std::string_view::npos) fail("unterminated \\p{ or \\x{");
          const std::string_view name = pattern_.substr(pos_ + 1, close - pos_ - 1);
          if (c != 'x' && is_script_name(name)) {
            out += name.starts_with('^') ? "{^sc:" + std::string(name.substr(1)) + "}" : "{sc:" + std::string(name) + "}";
          } else {
            out += pattern_.substr(pos_, close + 1 - pos_);
          }
          pos_ = close + 1;
        } else if (c == 'x') {
          const size_t digits = std::min<size_t>(2, pattern_.size() - pos_);
          out += pattern_.substr(pos_, digits);
          pos_ += digits;
        } else if (pos_ < pattern_.size()) {
          out.push_back(pattern_[pos_++]);  // \pL
        }
        return out;
      }
      default: {
        std::string out = {'\\'};
        // Copy the whole code point after the backslash (an escaped non-ASCII char).
        out.push_back(c);
        while (pos_ < pattern_.size() && (static_cast<unsigned char>(pattern_[pos_]) & 0xC0) == 0x80) {
          out.push_back(pattern_[pos_++]);
        }
        return out;
      }
    }
  }

  bool at_operator() const {
    if (pos_ + 1 >= pattern_.size()) return false;
    const char a = pattern_[pos_];
    const char b = pattern_[pos_ + 1];
    if (a == '&' && b == '&') return true;
    // `--` and `~~` only before a nested class, so that ranges such as `+--` stay ranges.
    if ((a == '-' && b == '-') || (a == '~' && b == '~')) return pos_ + 2 < pattern_.size() && pattern_[pos_ + 2] == '[';
    return false;
  }

  // Parses the class at pos_ ('[') up to its closing ']'.
  ParsedClass parse_class() {
    const size_t open = pos_;
    ++pos_;
    ParsedClass result;
    if (pos_ < pattern_.size() && pattern_[pos_] == '^') {
      result.negated = true;
      ++pos_;
    }
    std::vector<Union> operands(1);
    std::vector<char> operators;
    bool first = true;
    while (true) {
      if (pos_ >= pattern_.size()) {
        pos_ = open;
        fail("unterminated character class");
      }
      const char c = pattern_[pos_];
      if (c == ']' && !first) {
        ++pos_;
        break;
      }
      first = false;
      if (c == '\\') {
        operands.back().atoms += escape(/*in_class=*/true);
      } else if (c == '[' && pattern_.compare(pos_, 2, "[:") == 0 && pattern_.find(":]", pos_ + 2) != std::string_view::npos) {
        const size_t close = pattern_.find(":]", pos_ + 2) + 2;  // POSIX class, kept as is
        operands.back().atoms += pattern_.substr(pos_, close - pos_);
        pos_ = close;
      } else if (c == '[') {
        ParsedClass nested = parse_class();
        if (nested.simple && !nested.negated) {
          operands.back().atoms += nested.atoms;
        } else {
          operands.back().alternatives.push_back(nested.expression);
        }
      } else if (at_operator()) {
        operators.push_back(c);
        pos_ += 2;
        operands.emplace_back();
      } else {
        operands.back().atoms.push_back(c);
        ++pos_;
      }
    }
    if (operators.empty() && operands[0].alternatives.empty()) {
      result.simple = true;
      result.atoms = operands[0].atoms;
      result.expression = (result.negated ? "[^" : "[") + result.atoms + "]";
      if (result.atoms.empty()) result.expression = result.negated ? std::string(kAnyChar) : "(?!)";
      return result;
    }
    std::string expression = operands[0].expression();
    for (size_t i = 0; i < operators.size(); ++i) {
      const std::string right = operands[i + 1].expression();
      switch (operators[i]) {
        case '&': expression = "(?:(?=" + right + ")" + expression + ")"; break;
        case '-': expression = "(?:(?!" + right + ")" + expression + ")"; break;
        default: expression = "(?:(?!" + right + ")" + expression + "|(?!" + expression + ")" + right + ")"; break;
      }
    }
    result.expression = result.negated ? "(?:(?!" + expression + ")" + std::string(kAnyChar) + ")" : expression;
    return result;
  }

  std::string_view pattern_;
  size_t pos_ = 0;
};

}  // namespace

std::string translate_regex(std::string_view pattern) { return Translator(pattern).run(); }

}  // namespace rackserve::text
