// DeferredConstraint: an OutputConstraint that starts only once a given token is sampled,
// for reasoning models that think freely before their constrained answer ("</think>", see
// Request::constrain_after_token). Until then it bans only the ids that would end the
// sequence, so a sequence that stops always holds the whole constrained document.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "engine/grammar_constraint.h"

namespace rackserve {

// Inactive until `start_token` is advanced by: banned_tokens() is then `banned_until_start`
// with the sequence's own bans, and advance() accepts every other id in [0, vocab_size)
// without touching `grammar`. The advance by `start_token` activates it; from then on every
// call goes to `grammar`, which starts from the state it was given (its initial one). The
// OutputConstraint contract holds in both phases: advance() cannot fail for a token sampled
// under banned_tokens().
class DeferredConstraint : public OutputConstraint {
 public:
  // grammar non-null, never advanced yet; start_token in [0, vocab_size) and not in
  // `banned_until_start` (the EOS and stop token ids, any order).
  DeferredConstraint(std::unique_ptr<OutputConstraint> grammar, int32_t start_token, int32_t vocab_size,
                     std::vector<int32_t> banned_until_start);

  std::vector<int32_t> banned_tokens(std::span<const int32_t> also_banned) override;
  bool advance(int32_t token) override;
  // Never before the start token: the document has not begun.
  bool complete() const override { return active_ && grammar_->complete(); }
  bool active() const { return active_; }

 private:
  std::unique_ptr<OutputConstraint> grammar_;
  int32_t start_token_;
  int32_t vocab_size_;
  std::vector<int32_t> banned_until_start_;  // sorted, distinct
  bool active_ = false;
};

}  // namespace rackserve
