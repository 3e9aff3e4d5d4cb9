// Pre-tokenizer steps (see pre_tokenizer.h). Every step turns each piece into a list
// of (span, is_match) covering it, then applies the delimiter behaviour the way
// tokenizers' NormalizedString::split does, dropping empty pieces.
#include "text/pre_tokenizer.h"

#include <unicode/uchar.h>

#include "core/error.h"
#include "text/normalizer.h"
#include "text/utf8.h"

namespace rackserve::text {
namespace {

struct Span {
  uint32_t begin;
  uint32_t end;
  bool is_match;
};

const Regex& gpt2_regex() {
  static const Regex regex(R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)");
  return regex;
}

const Regex& whitespace_regex() {
  static const Regex regex(R"(\w+|[^\w\s]+)");
  return regex;
}

void regex_spans(const Regex& regex, std::string_view text, std::vector<Span>& spans) {
  uint32_t previous = 0;
  regex.for_each_match(text, [&](size_t start, size_t end) {
    if (start > previous) spans.push_back({previous, static_cast<uint32_t>(start), false});
    spans.push_back({static_cast<uint32_t>(start), static_cast<uint32_t>(end), true});
    previous = static_cast<uint32_t>(end);
  });
  if (previous < text.size()) spans.push_back({previous, static_cast<uint32_t>(text.size()), false});
}

void literal_spans(std::string_view literal, std::string_view text, std::vector<Span>& spans) {
  uint32_t previous = 0;
  if (!literal.empty()) {
    for (size_t found = text.find(literal); found != std::string_view::npos; found = text.find(literal, previous)) {
      if (found > previous) spans.push_back({previous, static_cast<uint32_t>(found), false});
      previous = static_cast<uint32_t>(found + literal.size());
      spans.push_back({static_cast<uint32_t>(found), previous, true});
    }
  }
  if (previous < text.size()) spans.push_back({previous, static_cast<uint32_t>(text.size()), false});
}

// Every character for which `predicate` holds is a match of its own.
template <typename Predicate>
void char_spans(std::string_view text, Predicate predicate, std::vector<Span>& spans) {
  uint32_t previous = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t start = pos;
    const char32_t c = utf8::decode(text, pos);
    if (!predicate(c)) continue;
    if (start > previous) spans.push_back({previous, static_cast<uint32_t>(start), false});
    spans.push_back({static_cast<uint32_t>(start), static_cast<uint32_t>(pos), true});
    previous = static_cast<uint32_t>(pos);
  }
  if (previous < text.size()) spans.push_back({previous, static_cast<uint32_t>(text.size()), false});
}

// Rust's char::is_numeric: general category N (Nd, Nl, No).
bool is_numeric(char32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  return (U_GET_GC_MASK(static_cast<UChar32>(c)) & U_GC_N_MASK) != 0;
}

// Applies `behavior` to `spans` (which cover `text`) and appends the kept pieces.
void emit(std::string_view text, bool at_origin, std::vector<Span>& spans, SplitBehavior behavior, PieceList& out) {
  switch (behavior) {
    case SplitBehavior::kIsolated:
      break;
    case SplitBehavior::kRemoved:
      break;  // handled below through is_match
    case SplitBehavior::kContiguous:
    case SplitBehavior::kMergedWithPrevious: {
      std::vector<Span> merged;
      bool previous_match = false;
      for (const Span& span : spans) {
        const bool join = behavior == SplitBehavior::kContiguous ? span.is_match == previous_match
                                                                 : span.is_match && !previous_match;
        if (join && !merged.empty()) {
          merged.back().end = span.end;
        } else {
          merged.push_back({span.begin, span.end, false});
        }
        previous_match = span.is_match;
      }
      spans.swap(merged);
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      std::vector<Span> merged;
      bool previous_match = false;
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !previous_match && !merged.empty()) {
          merged.back().begin = it->begin;
        } else {
          merged.push_back({it->begin, it->end, false});
        }
        previous_match = it->is_match;
      }
      spans.assign(merged.rbegin(), merged.rend());
      break;
    }
  }
  for (const Span& span : spans) {
    if (span.end == span.begin) continue;
    if (behavior == SplitBehavior::kRemoved && span.is_match) continue;
    out.add(text.substr(span.begin, span.end - span.begin), at_origin && span.begin == 0);
  }
}

struct StepApplier {
  std::string_view text;
  bool at_origin;
  PieceList& out;
  std::vector<Span>& spans;

  void operator()(const SplitPreTokenizer& split) {
    if (split.regex) {
      regex_spans(*split.regex, text, spans);
    } else {
      literal_spans(split.literal, text, spans);
    }
    if (split.invert) {
      for (Span& span : spans) span.is_match = !span.is_match;
    }
    emit(text, at_origin, spans, split.behavior, out);
  }

  void operator()(const ByteLevelPreTokenizer& byte_level) {
    std::string prefixed;
    std::string_view piece = text;
    if (byte_level.add_prefix_space && !piece.starts_with(' ')) {
      prefixed = " ";
      prefixed.append(piece);
      piece = prefixed;
    }
    if (!byte_level.use_regex) {
      out.add(piece, at_origin);
      return;
    }
    regex_spans(gpt2_regex(), piece, spans);
    emit(piece, at_origin, spans, SplitBehavior::kIsolated, out);
  }

  void operator()(const DigitsPreTokenizer& digits) {
    char_spans(text, is_numeric, spans);
    emit(text, at_origin, spans, digits.individual_digits ? SplitBehavior::kIsolated : SplitBehavior::kContiguous, out);
  }

  void operator()(const MetaspacePreTokenizer& metaspace) {
    std::string replaced = replace_all(text, " ", metaspace.replacement);
    const bool prepend = metaspace.prepend == MetaspacePreTokenizer::Prepend::kAlways ||
                         (metaspace.prepend == MetaspacePreTokenizer::Prepend::kFirst && at_origin);
    if (prepend && !std::string_view(replaced).starts_with(metaspace.replacement)) {
      replaced.insert(0, metaspace.replacement);
    }
    if (!metaspace.split) {
      out.add(replaced, at_origin);
      return;
    }
    literal_spans(metaspace.replacement, replaced, spans);
    emit(replaced, at_origin, spans, SplitBehavior::kMergedWithNext, out);
  }

  void operator()(const WhitespacePreTokenizer&) {
    regex_spans(whitespace_regex(), text, spans);
    for (Span& span : spans) span.is_match = !span.is_match;
    emit(text, at_origin, spans, SplitBehavior::kRemoved, out);
  }

  void operator()(const WhitespaceSplitPreTokenizer&) {
    char_spans(text, is_white_space, spans);
    emit(text, at_origin, spans, SplitBehavior::kRemoved, out);
  }

  void operator()(const CharDelimiterPreTokenizer& delimiter) {
    char_spans(text, [&](char32_t c) { return c == delimiter.delimiter; }, spans);
    emit(text, at_origin, spans, SplitBehavior::kRemoved, out);
  }
};

}  // namespace

void PieceList::add(std::string_view text, bool at_origin) {
  const auto begin = static_cast<uint32_t>(storage.size());
  storage.append(text);
  pieces.push_back({begin, static_cast<uint32_t>(storage.size()), at_origin});
}

void PreTokenizer::add(PreTokenizerStep step) {
  RS_CHECK(!byte_level_, "pre_tokenizer: ByteLevel must be the last pre-tokenizer of the sequence");
  byte_level_ = std::holds_alternative<ByteLevelPreTokenizer>(step);
  steps_.push_back(std::move(step));
}

void PreTokenizer::apply(std::string_view text, bool at_origin, PieceList& out) const {
  if (text.empty()) return;
  if (steps_.empty()) {
    out.add(text, at_origin);
    return;
  }
  PieceList current;
  current.add(text, at_origin);
  PieceList next;
  std::vector<Span> spans;
  for (size_t i = 0; i < steps_.size(); ++i) {
    PieceList& target = i + 1 == steps_.size() ? out : next;
    for (const auto& piece : current.pieces) {
      spans.clear();
      std::visit(StepApplier{current.view(piece), piece.at_origin, target, spans}, steps_[i]);
    }
    if (&target == &next) {
      std::swap(current, next);
      next.storage.clear();
      next.pieces.clear();
    }
  }
}

}  // namespace rackserve::text
