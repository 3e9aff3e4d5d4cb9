// ReasoningSplitter: separates a reasoning model's "<think>…</think>" text from its answer
// while the text streams in. Tags may arrive split across deltas ("</thi" + "nk>"); a
// tail that could still become a tag is held back until it can't. The tags themselves
// are never emitted.
//
// Models whose chat template already opened "<think>" in the prompt (DeepSeek-R1,
// GLM-4.5 with thinking on) generate the reasoning first and only the closing tag:
// construct with `starts_in_reasoning` for them (see prompt_opens_reasoning()).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "text/tokenizer.h"

namespace rackserve::api {

struct ReasoningDelta {
  std::string reasoning;  // text inside <think>…</think>
  std::string content;    // the answer
};

class ReasoningSplitter {
 public:
  explicit ReasoningSplitter(bool starts_in_reasoning = false) : in_reasoning_(starts_in_reasoning) {}

  ReasoningDelta append(std::string_view text);
  // Releases a held-back tail at the end of the text (it never became a tag).
  ReasoningDelta finish();

 private:
  bool in_reasoning_;
  bool saw_open_tag_ = false;  // only the first "<think>" opens reasoning; later ones are content
  std::string held_;
};

// True when the rendered prompt ends inside an unclosed "<think>" (ignoring trailing
// whitespace), i.e. the generation starts with reasoning text.
bool prompt_opens_reasoning(std::string_view prompt);

// The id of the one token whose text is "</think>" (not skipped as special, below
// `vocab_size`), where the vocabulary has one: a constrained answer starts after it
// (Request::constrain_after_token). nullopt: the tag takes several tokens or none.
std::optional<int32_t> reasoning_end_token(const text::Tokenizer& tokenizer, int32_t vocab_size);

}  // namespace rackserve::api
