// Text normalizers of Hugging Face tokenizer.json, applied to each piece of input text
// between added tokens: Unicode forms (NFC, NFD, NFKC, NFKD through ICU, used only
// when a tokenizer asks for them), Replace, Prepend, Lowercase, Strip, StripAccents,
// chained in order (a Sequence is flattened into the chain at load time).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "text/regex.h"

namespace rackserve::text {

struct UnicodeForm {
  enum Kind { kNFC, kNFD, kNFKC, kNFKD } kind;
};
// Replaces every non-overlapping occurrence of a literal or a regex with `content`.
struct ReplaceNormalizer {
  std::string literal;             // used when regex is null
  std::shared_ptr<const Regex> regex;
  std::string content;
};
struct PrependNormalizer {
  std::string prefix;  // added in front of non-empty text only
};
struct LowercaseNormalizer {};
struct StripNormalizer {
  bool left = true;
  bool right = true;
};
struct StripAccentsNormalizer {};  // removes nonspacing marks (Mn)

using NormalizerStep = std::variant<UnicodeForm, ReplaceNormalizer, PrependNormalizer, LowercaseNormalizer,
                                    StripNormalizer, StripAccentsNormalizer>;

class Normalizer {
 public:
  void add(NormalizerStep step) { steps_.push_back(std::move(step)); }
  bool empty() const { return steps_.empty(); }
  // `text` must be valid UTF-8; so is the result.
  std::string apply(std::string_view text) const;

 private:
  std::vector<NormalizerStep> steps_;
};

// Replaces every occurrence of `literal` (non-empty) in `text`.
std::string replace_all(std::string_view text, std::string_view literal, std::string_view content);

// Rust's char::is_whitespace (the White_Space property).
bool is_white_space(char32_t c);

}  // namespace rackserve::text
