#include "api/reasoning_splitter.h"

#include <algorithm>
#include <span>

namespace rackserve::api {
namespace {

constexpr std::string_view kOpen = "<think>";
constexpr std::string_view kClose = "</think>";

// Length of the longest suffix of `text` that is a proper prefix of `tag`.
size_t partial_tag_suffix(std::string_view text, std::string_view tag) {
  for (size_t length = std::min(text.size(), tag.size() - 1); length > 0; --length)
    if (text.substr(text.size() - length) == tag.substr(0, length)) return length;
  return 0;
}

}  // namespace

ReasoningDelta ReasoningSplitter::append(std::string_view text) {
  ReasoningDelta delta;
  held_.append(text);
  std::string_view pending = held_;
  while (!pending.empty()) {
    std::string& out = in_reasoning_ ? delta.reasoning : delta.content;
    // Outside reasoning only the first <think> is a tag; after </think> all text is content.
    std::string_view tag = in_reasoning_ ? kClose : (saw_open_tag_ ? std::string_view{} : kOpen);
    if (tag.empty()) {
      out.append(pending);
      pending = {};
      break;
    }
    size_t at = pending.find(tag);
    if (at != std::string_view::npos) {
      out.append(pending.substr(0, at));
      pending.remove_prefix(at + tag.size());
      saw_open_tag_ = true;
      in_reasoning_ = !in_reasoning_;
      continue;
    }
    size_t keep = partial_tag_suffix(pending, tag);
    out.append(pending.substr(0, pending.size() - keep));
    pending.remove_prefix(pending.size() - keep);
    break;
  }
  held_ = std::string(pending);
  return delta;
}

ReasoningDelta ReasoningSplitter::finish() {
  ReasoningDelta delta;
  (in_reasoning_ ? delta.reasoning : delta.content) = std::move(held_);
  held_.clear();
  return delta;
}

bool prompt_opens_reasoning(std::string_view prompt) {
  size_t open = prompt.rfind(kOpen);
  if (open == std::string_view::npos) return false;
  size_t close = prompt.rfind(kClose);
  if (close != std::string_view::npos && close > open) return false;
  std::string_view after = prompt.substr(open + kOpen.size());
  return after.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

std::optional<int32_t> reasoning_end_token(const text::Tokenizer& tokenizer, int32_t vocab_size) {
  const std::optional<text::TokenId> id = tokenizer.token_to_id(kClose);
  if (!id || *id >= static_cast<text::TokenId>(vocab_size)) return std::nullopt;
  if (tokenizer.decode(std::span(&*id, 1), /*skip_special_tokens=*/true) != kClose) return std::nullopt;
  return static_cast<int32_t>(*id);
}

}  // namespace rackserve::api
