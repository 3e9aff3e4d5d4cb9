// Regular expressions for pre-tokenizers: patterns written for Oniguruma (Hugging Face
// tokenizers), Rust `regex` (tiktoken) or Python `regex` are translated to PCRE2 (see
// translate_regex) and run with Unicode properties (UTF + UCP) and the JIT.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace rackserve::text {

// Rewrites `pattern` into PCRE2 syntax with the same meaning:
//  - character-class set operations `[A&&B]` (intersection), `[A--B]`, `[A~~B]`
//    (difference, symmetric difference) and nested classes `[a[^b]]` become lookahead
//    constructions that match one character, e.g. `[\p{L}&&[^\p{Han}]]` becomes
//    `(?:(?=[^\p{Han}])[\p{L}])`;
//  - `\s`/`\S` become `\p{White_Space}`/`\P{White_Space}` (Oniguruma and Rust use the
//    White_Space property; PCRE2's `\s` misses U+0085), `\w` becomes Rust's word class;
//  - `\uXXXX` and `\UXXXXXXXX` become `\x{...}`.
// Throws rackserve::Error for a construct it cannot translate (an unterminated class).
std::string translate_regex(std::string_view pattern);

class Regex {
 public:
  // Compiles translate_regex(pattern); throws rackserve::Error with PCRE2's message and
  // the offending offset in the translated pattern.
  explicit Regex(std::string_view pattern);

  // Calls on_match(start, end) for every match, left to right, without overlap, as an
  // iterator over matches does in Oniguruma or Rust: after an empty match the search
  // resumes one character later. `text` must be valid UTF-8 (checked at the boundary).
  template <typename OnMatch>
  void for_each_match(std::string_view text, OnMatch&& on_match) const {
    size_t start = 0;
    size_t end = 0;
    size_t from = 0;
    while (from <= text.size() && find(text, from, start, end)) {
      on_match(start, end);
      if (end > start) {
        from = end;
      } else {
        from = end + 1;
        while (from < text.size() && (static_cast<unsigned char>(text[from]) & 0xC0) == 0x80) ++from;
      }
    }
  }

  const std::string& source() const { return source_; }

 private:
  // Finds the first match at or after `from`; false when there is none.
  bool find(std::string_view text, size_t from, size_t& start, size_t& end) const;

  std::string source_;
  std::shared_ptr<void> code_;  // pcre2_code_8, freed with pcre2_code_free_8
};

}  // namespace rackserve::text
