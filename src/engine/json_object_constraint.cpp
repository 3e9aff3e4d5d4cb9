#include "engine/json_object_constraint.h"

#include <algorithm>
#include <iterator>
#include <string>
#include <utility>

#include "core/error.h"

namespace rackserve {

JsonObjectConstraint::JsonObjectConstraint(std::shared_ptr<const JsonTokenMask> mask) : mask_(std::move(mask)) {
  RS_CHECK(mask_ != nullptr, "a JSON object constraint needs its token mask");
}

std::vector<int32_t> JsonObjectConstraint::banned_tokens(std::span<const int32_t> also_banned) {
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

bool JsonObjectConstraint::advance(int32_t token) {
  if (token < 0 || token >= mask_->vocab_size()) return false;
  if (mask_->is_eos(token)) return true;
  const std::string& bytes = mask_->token_bytes(token);
  return !bytes.empty() && state_.accept(bytes);  // a token without bytes is never allowed
}

}  // namespace rackserve
