// Decoders of Hugging Face tokenizer.json (ByteLevel, ByteFallback, Fuse, Strip, Replace,
// Metaspace, chained) run as a stream: DecodeStream takes one id at a time and returns
// the text that no later id can change. Full decoding is the same stream run to its end,
// so the pieces an incremental decode returns always concatenate to the full decode.
//
// What a step may hold back: a partial UTF-8 sequence after ByteLevel (at most 3 bytes),
// a run of <0xXX> tokens until it ends (ByteFallback decodes the run as a whole), a
// trailing character that Strip might remove, the tail of a Replace pattern that may
// continue. After Fuse or ByteLevel the later steps see one growing text instead of
// tokens (as in tokenizers, where those steps return a single string).
#pragma once

#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "text/regex.h"
#include "text/token_id.h"
#include "text/utf8.h"

namespace rackserve::text {

struct ByteLevelDecoder {};
struct ByteFallbackDecoder {};
struct FuseDecoder {};
struct StripDecoder {
  char32_t content = U' ';
  size_t start = 0;  // at most this many leading `content` characters are removed
  size_t stop = 0;   // ... and trailing ones
};
struct ReplaceDecoder {
  std::string literal;  // used when regex is null
  std::shared_ptr<const Regex> regex;
  std::string content;
};
struct MetaspaceDecoder {
  std::string replacement = "\xE2\x96\x81";
  bool strip_first = true;  // prepend_scheme other than "never": drop it from the first token
};

using DecoderStep = std::variant<ByteLevelDecoder, ByteFallbackDecoder, FuseDecoder, StripDecoder, ReplaceDecoder,
                                 MetaspaceDecoder>;

// What decoding needs to know about every id, filled by the tokenizer.
struct DecodeTables {
  std::vector<std::string> token;  // by id: the vocabulary spelling, or an added token's content
  std::vector<uint8_t> flags;      // by id: kPresent | kSpecial
  std::vector<std::string> bytes;  // by id, only for byte-level chains: the raw bytes
  static constexpr uint8_t kPresent = 1;
  static constexpr uint8_t kSpecial = 2;
};

// The configured chain; immutable and shared by every stream.
class DecoderChain {
 public:
  DecoderChain() = default;  // no decoder: tokens joined with spaces, as in tokenizers
  explicit DecoderChain(std::vector<DecoderStep> steps);

  // A chain that is a single ByteLevel step: decoding concatenates DecodeTables::bytes.
  bool byte_level_only() const { return byte_level_only_; }
  const std::vector<DecoderStep>& steps() const { return steps_; }
  bool has_decoder() const { return has_decoder_; }

 private:
  std::vector<DecoderStep> steps_;
  bool has_decoder_ = false;
  bool byte_level_only_ = false;
};

class DecodeStream {
 public:
  // `chain` and `tables` must outlive the stream.
  DecodeStream(const DecoderChain& chain, const DecodeTables& tables, bool skip_special_tokens);
  ~DecodeStream();
  DecodeStream(DecodeStream&&) noexcept;
  DecodeStream& operator=(DecodeStream&&) noexcept;

  // Feeds one id; returns the text that became final (often empty). Throws
  // rackserve::Error for an id that is not in the vocabulary.
  std::string step(TokenId id);
  // Ends the stream and returns what was held back.
  std::string finish();

  struct Stage;  // one step of the chain (decoder.cpp)

 private:
  void run_from(size_t stage, std::string piece, std::string& out);

  const DecoderChain* chain_;
  const DecodeTables* tables_;
  bool skip_special_;
  std::vector<std::unique_ptr<Stage>> stages_;
  bool first_token_ = true;  // for joining with spaces when there is no decoder
  utf8::LossyDecoder byte_decoder_;  // the whole chain when it is a single ByteLevel
};

}  // namespace rackserve::text
