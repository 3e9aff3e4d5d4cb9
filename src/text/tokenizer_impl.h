// Internals of Tokenizer shared by its source files (tokenizer.cpp encodes and decodes,
// tokenizer_json.cpp and tiktoken.cpp build). Not for use outside src/text.
#pragma once

#include <memory>
#include <optional>
#include <string_view>

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "text/added_vocabulary.h"
#include "text/bpe.h"
#include "text/decoder.h"
#include "text/normalizer.h"
#include "text/pre_tokenizer.h"
#include "text/tokenizer.h"

namespace rackserve::text {

// The single-sequence post-processing template: prefix ids, the text, suffix ids.
struct PostProcessor {
  std::vector<TokenId> prefix;
  std::vector<TokenId> suffix;
};

struct Tokenizer::Impl {
  Normalizer normalizer;
  PreTokenizer pre_tokenizer;
  std::unique_ptr<BpeModel> model;
  AddedVocabulary added;
  PostProcessor post_processor;
  DecoderChain decoder;
  DecodeTables tables;     // filled by finish_loading()
  size_t max_run_chars = 0;  // tiktoken (Kimi) run splitting, 0 = off

  // Fills `tables` from the model, the added tokens and the decoder chain.
  void finish_loading();
  std::optional<TokenId> token_to_id(std::string_view token) const;
};

// Builders (tokenizer_json.cpp, tiktoken.cpp). `origin` names the source in errors.
std::shared_ptr<Tokenizer::Impl> load_tokenizer_json(std::string_view json_text, std::string_view origin);
std::shared_ptr<Tokenizer::Impl> load_tiktoken(std::string_view rank_file, TiktokenSpec spec, std::string_view origin);
// Special tokens and pattern of a tiktoken model from its tokenizer_config.json: the
// added_tokens_decoder entries, and the config's "pat_str" when present, else Kimi K2's
// pattern with Kimi's cutting of runs longer than 25000 characters.
// (load_tiktoken names the ids between the ranks and the last special id that have no
// entry <|reserved_token_ID|>, as Kimi's tokenizer does.)
TiktokenSpec tiktoken_spec_from_config(const nlohmann::json& config, std::string_view origin);

}  // namespace rackserve::text
