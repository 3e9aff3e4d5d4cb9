// ChoiceGrammar: a byte-at-a-time recognizer of the prefixes of a fixed set of texts, for
// vLLM's structured_outputs {"choice": [...]}: the answer is exactly one of the texts, byte
// for byte (no quotes, no whitespace around it). Same contract as JsonGrammar, so the token
// mask (token_mask.h: it walks any such grammar, JSON or not) and GrammarConstraint drive it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace rackserve {

// The texts, sorted by their bytes and distinct, so that the texts that
// start with a given prefix are contiguous.
class TextChoices {
 public:
  // `texts` non-empty (repeats allowed; the empty text is a choice like any other).
  explicit TextChoices(std::vector<std::string> texts);
  const std::vector<std::string>& texts() const { return texts_; }

 private:
  std::vector<std::string> texts_;
};

class ChoiceGrammar {
 public:
  // `choices` must outlive the state.
  explicit ChoiceGrammar(const TextChoices& choices);

  // Advances by one byte and returns true when the text so far is still a prefix of some
  // choice. On false the state is unchanged.
  bool accept(uint8_t byte);
  // All or nothing.
  bool accept(std::string_view bytes);
  // The text so far is one of the choices (a longer choice it starts may still follow).
  bool complete() const;
  // Never inside a JSON string (json_grammar.h): the mask walks every token.
  uint32_t plain_string_room() const { return 0; }

  bool operator==(const ChoiceGrammar&) const = default;

 private:
  const std::vector<std::string>* texts_;
  uint32_t first_ = 0, last_ = 0;  // [first_, last_): the texts that start with the text read
  uint32_t read_ = 0;              // bytes read
};

static_assert(std::is_trivially_copyable_v<ChoiceGrammar>);

}  // namespace rackserve
