#include "engine/choice_grammar.h"

#include <algorithm>

#include "core/error.h"

namespace rackserve {

TextChoices::TextChoices(std::vector<std::string> texts) : texts_(std::move(texts)) {
  RS_CHECK(!texts_.empty(), "a choice constraint needs at least one text");
  std::sort(texts_.begin(), texts_.end());
  texts_.erase(std::unique(texts_.begin(), texts_.end()), texts_.end());
}

ChoiceGrammar::ChoiceGrammar(const TextChoices& choices)
    : texts_(&choices.texts()), last_(static_cast<uint32_t>(choices.texts().size())) {}

bool ChoiceGrammar::accept(uint8_t byte) {
  // Among texts that share the first read_ bytes (sorted), the byte at read_ ascends, a text
  // that ends at read_ first: the ones whose byte at read_ is `byte` are contiguous.
  auto key = [&](const std::string& text) { return text.size() > read_ ? static_cast<int>(static_cast<uint8_t>(text[read_])) : -1; };
  const auto begin = texts_->begin() + first_, end = texts_->begin() + last_;
  const auto lower = std::partition_point(begin, end, [&](const std::string& text) { return key(text) < byte; });
  const auto upper = std::partition_point(lower, end, [&](const std::string& text) { return key(text) == byte; });
  if (lower == upper) return false;
  first_ = static_cast<uint32_t>(lower - texts_->begin());
  last_ = static_cast<uint32_t>(upper - texts_->begin());
  ++read_;
  return true;
}

bool ChoiceGrammar::accept(std::string_view bytes) {
  ChoiceGrammar next = *this;
  for (char byte : bytes)
    if (!next.accept(static_cast<uint8_t>(byte))) return false;
  *this = next;
  return true;
}

bool ChoiceGrammar::complete() const { return first_ < last_ && (*texts_)[first_].size() == read_; }

}  // namespace rackserve
