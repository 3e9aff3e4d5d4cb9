// Text to token ids and back, byte-identical to the Hugging Face stack for the models we
// serve: tokenizer.json (BPE, byte-level or sentencepiece-like) and tiktoken rank files
// (Kimi K2). A Tokenizer is immutable after loading and safe to use from many threads;
// copies share the same tables.
//
// Input text must be valid UTF-8: encode() throws rackserve::Error naming the byte
// offset of the first invalid sequence (Python strings, what the reference encodes,
// cannot hold invalid UTF-8, so there is nothing to be compatible with; replacing bytes
// silently would make the prompt differ from what the client sent).
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "text/added_vocabulary.h"
#include "text/decoder.h"
#include "text/token_id.h"

namespace rackserve::text {

struct EncodeOptions {
  bool add_special_tokens = true;    // the post-processor's BOS/EOS template
  bool split_special_tokens = false;  // true: special tokens in the text are plain text
};

// Where a tiktoken vocabulary comes from (tiktoken.cpp reads the rank file format).
struct TiktokenSpec {
  std::string pattern;                   // pat_str, Python `regex` / Rust syntax
  std::vector<AddedToken> special_tokens;  // ids above the ranks
  // Kimi's wrapper cuts input into runs of at most this many whitespace or
  // non-whitespace characters before the regex (25000); 0 leaves the text whole.
  size_t max_run_chars = 0;
};

class Tokenizer {
 public:
  // DIR/tokenizer.json when present, else DIR/tiktoken.model with the special tokens
  // of DIR/tokenizer_config.json. Throws rackserve::Error naming the file and field.
  static Tokenizer from_directory(const std::filesystem::path& dir);
  // `origin` names the source in error messages.
  static Tokenizer from_tokenizer_json(std::string_view json_text, std::string_view origin = "tokenizer.json");
  static Tokenizer from_tiktoken(std::string_view rank_file, TiktokenSpec spec, std::string_view origin = "tiktoken.model");

  std::vector<TokenId> encode(std::string_view text, const EncodeOptions& options = {}) const;
  std::string decode(std::span<const TokenId> ids, bool skip_special_tokens = false) const;
  // Incremental decoding for streaming: see decoder.h. The stream refers to this
  // tokenizer's tables; keep the tokenizer (or a copy) alive while it is used.
  DecodeStream decode_stream(bool skip_special_tokens = false) const;

  size_t vocab_size() const;  // one past the largest id
  std::optional<TokenId> token_to_id(std::string_view token) const;
  std::optional<std::string> id_to_token(TokenId id) const;
  bool is_special(TokenId id) const;
  const std::vector<AddedToken>& added_tokens() const;
  // By id, the raw bytes each token adds to decoded text wherever it stands: empty for
  // special tokens (skipped or markup, never text a grammar reads) and for ids without a
  // token. Only byte-level decoders (tokenizer.json's ByteLevel alone, tiktoken) give every
  // token fixed bytes; for the others (Metaspace, ByteFallback runs, Strip) a token's text
  // depends on its neighbours, and the answer is nullopt.
  std::optional<std::vector<std::string>> raw_token_bytes() const;

  struct Impl;

 private:
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace rackserve::text
