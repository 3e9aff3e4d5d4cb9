// JsonObjectConstraint: one sequence's side of response_format {"type": "json_object"}: the
// JsonGrammar state of what it generated so far, the tokens the sampler must not pick from
// there (JsonTokenMask), and the advance by each sampled token. The engine holds one per
// constrained sequence, next to its SequenceOutput, so it survives preemption (recompute
// replays the KV cache, not the sampling).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "engine/json_grammar.h"
#include "engine/token_mask.h"

namespace rackserve {

// Contract: every token given to advance() was sampled from a row whose banned list came
// from banned_tokens() in the current state; then advance() cannot fail. EOS ids leave the
// state unchanged (the sequence ends on them, or goes on under ignore_eos: whitespace and
// EOS stay the only choices once the document is complete).
class JsonObjectConstraint {
 public:
  explicit JsonObjectConstraint(std::shared_ptr<const JsonTokenMask> mask);  // non-null

  // The tokens the mask bans from the current state together with `also_banned` (the
  // sequence's own bans: stop and EOS ids under min_tokens; any order, repeats allowed):
  // sorted and distinct, as SamplingRow::banned wants them. Costs one JsonTokenMask::banned,
  // except when the state equals the previous call's (inside a string it repeats token after
  // token), whose grammar bans are reused.
  std::vector<int32_t> banned_tokens(std::span<const int32_t> also_banned);

  // Advances the state by the bytes of `token`. Returns false, leaving the state as it was,
  // when `token` is outside the vocabulary, has no bytes (special) or its bytes break the
  // grammar: it was banned.
  bool advance(int32_t token);

  const JsonGrammar& state() const { return state_; }
  // The generated text is a whole JSON object (only EOS or whitespace may follow).
  bool complete() const { return state_.complete(); }

 private:
  std::shared_ptr<const JsonTokenMask> mask_;
  JsonGrammar state_;
  std::optional<JsonGrammar> banned_state_;  // the state banned_by_grammar_ was computed for
  std::vector<int32_t> banned_by_grammar_;
};

}  // namespace rackserve
