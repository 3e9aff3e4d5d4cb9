// Pre-tokenizers of Hugging Face tokenizer.json: they cut normalized text into the
// pieces ("words") that the BPE model encodes one by one. Split (regex or literal, with
// the five delimiter behaviours and invert), ByteLevel (prefix space, GPT-2 regex),
// Digits, Metaspace, Whitespace, WhitespaceSplit and CharDelimiterSplit, chained in
// order. ByteLevel's byte-to-character mapping is not done here: the BPE model of a
// byte-level tokenizer works on raw bytes (see bpe.h), so ByteLevel must come last.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "text/regex.h"

namespace rackserve::text {

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct SplitPreTokenizer {
  std::shared_ptr<const Regex> regex;  // null: `literal` is the pattern
  std::string literal;
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
};
struct ByteLevelPreTokenizer {
  bool add_prefix_space = false;  // a space in front of every piece that lacks one
  bool use_regex = true;          // split with the GPT-2 pattern first
};
struct DigitsPreTokenizer {
  bool individual_digits = false;
};
struct MetaspacePreTokenizer {
  enum class Prepend { kAlways, kFirst, kNever };
  std::string replacement = "\xE2\x96\x81";  // U+2581
  Prepend prepend = Prepend::kAlways;
  bool split = true;
};
struct WhitespacePreTokenizer {};       // \w+|[^\w\s]+ pieces, whitespace dropped
struct WhitespaceSplitPreTokenizer {};  // split on whitespace, dropped
struct CharDelimiterPreTokenizer {
  char32_t delimiter = U' ';
};

using PreTokenizerStep = std::variant<SplitPreTokenizer, ByteLevelPreTokenizer, DigitsPreTokenizer,
                                      MetaspacePreTokenizer, WhitespacePreTokenizer, WhitespaceSplitPreTokenizer,
                                      CharDelimiterPreTokenizer>;

// Pieces of text, stored back to back in `storage`.
struct PieceList {
  struct Piece {
    uint32_t begin = 0;
    uint32_t end = 0;
    bool at_origin = false;  // starts at offset 0 of the encoded text (Metaspace "first")
  };
  std::string storage;
  std::vector<Piece> pieces;

  std::string_view view(const Piece& piece) const {
    return std::string_view(storage).substr(piece.begin, piece.end - piece.begin);
  }
  void add(std::string_view text, bool at_origin);
};

class PreTokenizer {
 public:
  void add(PreTokenizerStep step);
  bool byte_level() const { return byte_level_; }

  // Appends the pieces of `text` (valid UTF-8) to `out`. `at_origin` says whether
  // `text` starts the whole input (no added token or removed text before it).
  void apply(std::string_view text, bool at_origin, PieceList& out) const;

 private:
  std::vector<PreTokenizerStep> steps_;
  bool byte_level_ = false;
};

}  // namespace rackserve::text
