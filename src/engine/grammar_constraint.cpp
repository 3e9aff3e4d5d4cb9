#include "engine/grammar_constraint.h"

#include <algorithm>
#include <iterator>
#include <string>
#include <utility>

#include "core/error.h"

namespace rackserve {

template <class Grammar>
GrammarConstraint<Grammar>::GrammarConstraint(std::shared_ptr<const JsonTokenMask> mask, Grammar start)
    : mask_(std::move(mask)), state_(start) {
  RS_CHECK(mask_ != nullptr, "a grammar constraint needs its token mask");
}

template <class Grammar>
std::vector<int32_t> GrammarConstraint<Grammar>::banned_tokens(std::span<const int32_t> also_banned) {
  if (banned_state_ != state_) {
    banned_by_grammar_ = mask_->banned(state_);  // sorted, distinct
    banned_state_ = state_;
  }
  const std::vector<int32_t>& by_grammar = banned_by_grammar_;
  std::vector<int32_t> extra(also_banned.begin(), also_banned.end());
  std::sort(extra.begin(), extra.end());
  std::vector<int32_t> merged;
  merged.reserve(by_grammar.size() + extra.size());
  std::set_union(by_grammar.begin(), by_grammar.end(), extra.begin(), extra.end(), std::back_inserter(merged));
  merged.erase(std::unique(merged.begin(), merged.end()), merged.end());  // repeats within `extra`
  return merged;
}

template <class Grammar>
bool GrammarConstraint<Grammar>::advance(int32_t token) {
  if (token < 0 || token >= mask_->vocab_size()) return false;
  if (mask_->is_eos(token)) return true;
  const std::string& bytes = mask_->token_bytes(token);
  return !bytes.empty() && state_.accept(bytes);  // a token without bytes is never allowed
}

template class GrammarConstraint<JsonGrammar>;
template class GrammarConstraint<JsonSchemaGrammar>;
template class GrammarConstraint<ChoiceGrammar>;

}  // namespace rackserve
