// The byte-pair-encoding model: turns one pre-tokenized piece into token ids.
//
// Two ways to decide merges, one merge loop:
//  - merge rules (Hugging Face tokenizer.json): the pair (left id, right id) has a rank
//    and a result id;
//  - ranks (tiktoken): two neighbours merge when their concatenated bytes are a token,
//    the token's rank being its priority and its id.
// The lowest rank merges first, the leftmost on ties, through a heap: O(n log n) on a
// piece of n symbols.
//
// Symbols start as single bytes for byte-level and tiktoken vocabularies (converted from
// the GPT-2 alphabet at load), and as single characters otherwise, where an unknown
// character becomes <0xXX> byte tokens (byte_fallback) or the unknown token.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "text/token_id.h"
#include "text/word_cache.h"

namespace rackserve::text {

struct BpeOptions {
  bool byte_level = false;     // vocabulary spelled in the GPT-2 byte alphabet
  bool byte_fallback = false;  // unknown characters become <0xXX> tokens
  bool ignore_merges = false;  // a piece that is a token is emitted whole
  bool fuse_unk = false;       // consecutive unknown characters give one unknown token
  std::optional<std::string> unk_token;
  std::string continuing_subword_prefix;
  std::string end_of_word_suffix;
  size_t cache_capacity = 1 << 16;  // words; 0 disables the cache
};

class BpeModel {
 public:
  // Hugging Face BPE. `vocab` maps token strings to ids; `merges` are pairs of token
  // strings in priority order. Throws rackserve::Error naming the first merge whose
  // parts or result are not in the vocabulary.
  BpeModel(const std::vector<std::pair<std::string, TokenId>>& vocab,
           const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions options);

  // tiktoken: raw byte strings and their ranks (the ids). Every single byte must be a
  // token, so any input can be encoded.
  explicit BpeModel(const std::vector<std::pair<std::string, TokenId>>& ranks);

  // Appends the ids of `piece` (valid UTF-8 unless the model is byte-level) to `out`.
  void encode(std::string_view piece, std::vector<TokenId>& out) const;

  // The token string as the vocabulary spells it (GPT-2 alphabet for byte-level models,
  // base64-free raw bytes for tiktoken); null when `id` is not in the vocabulary.
  const std::string* token(TokenId id) const;
  // The id of the vocabulary entry spelled `token` (as tokenizer.json spells it).
  std::optional<TokenId> find(std::string_view token) const;
  // One past the largest id.
  size_t id_limit() const { return tokens_.size(); }
  bool byte_level() const { return options_.byte_level; }
  bool uses_ranks() const { return ranks_mode_; }

 private:
  struct Merge {
    uint32_t rank;
    TokenId result;
  };
  struct Symbol {
    TokenId id;
    uint32_t begin;  // byte span inside the piece, for rank lookups
    uint32_t end;
    int32_t prev;
    int32_t next;
  };

  void add_token(std::string spelling, std::string key, TokenId id);
  void initial_symbols(std::string_view piece, std::vector<Symbol>& symbols) const;
  void merge(std::string_view piece, std::vector<Symbol>& symbols) const;
  std::optional<Merge> merge_of(std::string_view piece, const Symbol& left, const Symbol& right) const;

  BpeOptions options_;
  bool ranks_mode_ = false;
  std::vector<std::string> tokens_;  // by id; the vocabulary's spelling
  std::vector<bool> present_;
  // Keys are what encoding looks up: raw bytes for byte-level and tiktoken models.
  std::unordered_map<std::string, TokenId, StringHash, std::equal_to<>> encoder_;
  // Byte-level vocabularies only: entries whose spelling is outside the byte alphabet
  // (they can be decoded and looked up, never produced by merging).
  std::unordered_map<std::string, TokenId, StringHash, std::equal_to<>> other_spellings_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::vector<int64_t> byte_ids_;  // by byte value: the single-byte token, or -1
  std::vector<int64_t> fallback_ids_;  // by byte value: the <0xXX> token, or -1
  std::optional<TokenId> unk_id_;
  WordCache cache_;
};

}  // namespace rackserve::text
