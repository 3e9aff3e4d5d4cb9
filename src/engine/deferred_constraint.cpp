#include "engine/deferred_constraint.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "core/error.h"

namespace rackserve {

DeferredConstraint::DeferredConstraint(std::unique_ptr<OutputConstraint> grammar, int32_t start_token,
                                       int32_t vocab_size, std::vector<int32_t> banned_until_start)
    : grammar_(std::move(grammar)),
      start_token_(start_token),
      vocab_size_(vocab_size),
      banned_until_start_(std::move(banned_until_start)) {
  RS_CHECK(grammar_ != nullptr, "a deferred constraint needs its grammar");
  RS_CHECK(start_token_ >= 0 && start_token_ < vocab_size_, "the start token {} is outside the vocabulary [0, {})",
           start_token_, vocab_size_);
  std::sort(banned_until_start_.begin(), banned_until_start_.end());
  banned_until_start_.erase(std::unique(banned_until_start_.begin(), banned_until_start_.end()),
                            banned_until_start_.end());
  RS_CHECK(!std::binary_search(banned_until_start_.begin(), banned_until_start_.end(), start_token_),
           "the start token {} is also banned until it is sampled", start_token_);
}

std::vector<int32_t> DeferredConstraint::banned_tokens(std::span<const int32_t> also_banned) {
  if (active_) return grammar_->banned_tokens(also_banned);
  std::vector<int32_t> extra(also_banned.begin(), also_banned.end());
  std::sort(extra.begin(), extra.end());
  std::vector<int32_t> merged;
  merged.reserve(banned_until_start_.size() + extra.size());
  std::set_union(banned_until_start_.begin(), banned_until_start_.end(), extra.begin(), extra.end(),
                 std::back_inserter(merged));
  merged.erase(std::unique(merged.begin(), merged.end()), merged.end());  // repeats within `extra`
  return merged;
}

bool DeferredConstraint::advance(int32_t token) {
  if (active_) return grammar_->advance(token);
  if (token < 0 || token >= vocab_size_) return false;
  if (std::binary_search(banned_until_start_.begin(), banned_until_start_.end(), token)) return false;
  active_ = token == start_token_;
  return true;
}

}  // namespace rackserve
