// One sequence's side of constrained decoding: the grammar state of what it generated so far,
// the tokens the sampler must not pick from there (JsonTokenMask), and the advance by each
// sampled token. JsonObjectConstraint serves response_format {"type": "json_object"},
// JsonSchemaConstraint {"type": "json_schema"}, ChoiceConstraint structured_outputs
// {"choice": [...]}. The engine holds one per constrained
// sequence, next to its SequenceOutput, so it survives preemption (recompute replays the KV
// cache, not the sampling).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "engine/choice_grammar.h"
#include "engine/json_grammar.h"
#include "engine/json_schema.h"
#include "engine/json_schema_grammar.h"
#include "engine/token_mask.h"

namespace rackserve {

// Contract: every token given to advance() was sampled from a row whose banned list came
// from banned_tokens() in the current state; then advance() cannot fail. EOS ids leave the
// state unchanged (the sequence ends on them, or goes on under ignore_eos: whitespace and
// EOS stay the only choices once the document is complete).
class OutputConstraint {
 public:
  virtual ~OutputConstraint() = default;
  // The tokens the mask bans from the current state together with `also_banned` (the
  // sequence's own bans: stop and EOS ids under min_tokens; any order, repeats allowed):
  // sorted and distinct, as SamplingRow::banned wants them.
  virtual std::vector<int32_t> banned_tokens(std::span<const int32_t> also_banned) = 0;
  // Advances the state by the bytes of `token`. Returns false, leaving the state as it was,
  // when `token` is outside the vocabulary, has no bytes (special) or its bytes break the
  // grammar: it was banned.
  virtual bool advance(int32_t token) = 0;
  // The generated text is a whole document (only EOS or whitespace may follow).
  virtual bool complete() const = 0;
};

// Grammar: JsonGrammar, JsonSchemaGrammar or ChoiceGrammar (instantiated in grammar_constraint.cpp).
// banned_tokens() costs one JsonTokenMask::banned, except when the state equals the previous
// call's (inside a string it repeats token after token), whose grammar bans are reused.
template <class Grammar>
class GrammarConstraint : public OutputConstraint {
 public:
  GrammarConstraint(std::shared_ptr<const JsonTokenMask> mask, Grammar start);  // mask non-null

  std::vector<int32_t> banned_tokens(std::span<const int32_t> also_banned) override;
  bool advance(int32_t token) override;
  bool complete() const override { return state_.complete(); }
  const Grammar& state() const { return state_; }

 private:
  std::shared_ptr<const JsonTokenMask> mask_;
  Grammar state_;
  std::optional<Grammar> banned_state_;  // the state banned_by_grammar_ was computed for
  std::vector<int32_t> banned_by_grammar_;
};

class JsonObjectConstraint : public GrammarConstraint<JsonGrammar> {
 public:
  explicit JsonObjectConstraint(std::shared_ptr<const JsonTokenMask> mask)
      : GrammarConstraint(std::move(mask), JsonGrammar{}) {}
};

class JsonSchemaConstraint : public GrammarConstraint<JsonSchemaGrammar> {
 public:
  // schema non-null; kept alive here, as the grammar states point into it.
  JsonSchemaConstraint(std::shared_ptr<const JsonTokenMask> mask, std::shared_ptr<const JsonSchema> schema)
      : GrammarConstraint(std::move(mask), JsonSchemaGrammar(*schema)), schema_(std::move(schema)) {}

 private:
  std::shared_ptr<const JsonSchema> schema_;
};

class ChoiceConstraint : public GrammarConstraint<ChoiceGrammar> {
 public:
  // choices non-null; kept alive here, as the grammar states point into it.
  ChoiceConstraint(std::shared_ptr<const JsonTokenMask> mask, std::shared_ptr<const TextChoices> choices)
      : GrammarConstraint(std::move(mask), ChoiceGrammar(*choices)), choices_(std::move(choices)) {}

 private:
  std::shared_ptr<const TextChoices> choices_;
};

}  // namespace rackserve
