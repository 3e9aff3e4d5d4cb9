// Added tokens (tokenizer.json "added_tokens", tiktoken special tokens): strings matched
// in the input before the model sees it, leftmost-longest, each becoming one id.
// Tokens with normalized=false are matched in the raw text; tokens with normalized=true
// are matched, in their normalized spelling, in the normalized text between the first
// kind. lstrip/rstrip let a token swallow the whitespace beside it; single_word drops a
// match that touches a word character. Same rules as tokenizers' AddedVocabulary.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "text/token_id.h"
#include "text/word_cache.h"

namespace rackserve::text {

class Normalizer;

struct AddedToken {
  TokenId id = 0;
  std::string content;
  bool special = false;  // skipped by decode(skip_special_tokens)
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = false;
};

// A piece of input after splitting on added tokens: either a token or text.
struct TextSegment {
  std::string_view text;
  std::optional<TokenId> id;
};

class AddedVocabulary {
 public:
  AddedVocabulary() = default;
  // `normalizer` (may be null) spells the normalized tokens' patterns.
  AddedVocabulary(std::vector<AddedToken> tokens, const Normalizer* normalizer);

  // Splits `text` on the tokens of one kind (normalized or not) and appends the pieces.
  // With `include_special` false, special tokens are not matched (their text stays text).
  void split(std::string_view text, bool normalized_kind, bool include_special, std::vector<TextSegment>& out) const;

  const std::vector<AddedToken>& tokens() const { return tokens_; }
  const AddedToken* find(std::string_view content) const;
  const AddedToken* by_id(TokenId id) const;
  bool has_normalized_tokens() const { return !tries_[1].nodes.empty(); }

 private:
  // Byte trie for leftmost-longest matching.
  struct Trie {
    struct Node {
      std::vector<std::pair<unsigned char, int32_t>> children;
      int32_t token = -1;  // index into tokens_
    };
    std::vector<Node> nodes;
    bool first_byte[256] = {};
    void insert(std::string_view pattern, int32_t token);
    // Longest pattern starting at `pos`: (end, token) or token -1.
    std::pair<size_t, int32_t> longest(std::string_view text, size_t pos) const;
  };

  std::vector<AddedToken> tokens_;
  Trie tries_[2];  // [0] raw-text tokens, [1] normalized tokens
  std::unordered_map<std::string, size_t, StringHash, std::equal_to<>> by_content_;
  std::unordered_map<TokenId, size_t> by_id_;
};

}  // namespace rackserve::text
