// tool_call_markup_is_special: which tokenizers write a format's tool-call markup with
// special tokens (then the default detokenization, which skips them, would hide the calls).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "text/parsers/tool_call_special_tokens.h"

namespace rackserve::text {
namespace {

nlohmann::json added(int id, const char* content, bool special) {
  return {{"id", id}, {"content", content}, {"special", special}, {"normalized", false},
          {"lstrip", false}, {"rstrip", false}, {"single_word", false}};
}

// A byte-level tokenizer.json whose added tokens are `tokens`.
Tokenizer tokenizer_with(nlohmann::json tokens) {
  nlohmann::json document = nlohmann::json::parse(R"({
    "version": "1.0", "normalizer": null, "post_processor": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": true},
    "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "Ġ": 3}, "merges": ["a b"]}
  })");
  document["added_tokens"] = std::move(tokens);
  return Tokenizer::from_tokenizer_json(document.dump());
}

TEST(ToolCallSpecialTokens, GlmMarkupMadeOfSpecialTokensIsFound) {
  // As in GLM tokenizers: the tool-call tags are special added tokens.
  const Tokenizer glm = tokenizer_with({added(4, "<|user|>", true), added(5, "<tool_call>", true),
                                        added(6, "</tool_call>", true), added(7, "<arg_key>", true)});
  EXPECT_TRUE(tool_call_markup_is_special(glm, ToolCallFormat::Glm45));
  // Why it matters: the default decode drops the tag the parser needs.
  const std::vector<TokenId> call = {5};
  EXPECT_EQ(glm.decode(call, /*skip_special_tokens=*/true), "");
  EXPECT_EQ(glm.decode(call, /*skip_special_tokens=*/false), "<tool_call>");
  // Those tokens are no markup of the other formats.
  EXPECT_FALSE(tool_call_markup_is_special(glm, ToolCallFormat::DeepSeekV3));
  EXPECT_FALSE(tool_call_markup_is_special(glm, ToolCallFormat::KimiK2));
}

TEST(ToolCallSpecialTokens, MarkupOfPlainAddedTokensIsNotSpecial) {
  // As in DeepSeek-V3's and Kimi-K2's tokenizers: the markers are added but not special.
  const Tokenizer deepseek = tokenizer_with({added(4, "<｜begin▁of▁sentence｜>", true),
                                             added(5, "<｜end▁of▁sentence｜>", true),
                                             added(6, "<｜tool▁calls▁begin｜>", false),
                                             added(7, "<｜tool▁call▁begin｜>", false)});
  EXPECT_FALSE(tool_call_markup_is_special(deepseek, ToolCallFormat::DeepSeekV3));
  EXPECT_FALSE(tool_call_markup_is_special(deepseek, ToolCallFormat::DeepSeekV31));
  const Tokenizer glm_plain = tokenizer_with({added(4, "<|user|>", true), added(5, "<tool_call>", false)});
  EXPECT_FALSE(tool_call_markup_is_special(glm_plain, ToolCallFormat::Glm45));
}

TEST(ToolCallSpecialTokens, MiniMaxSectionTagAsSpecialTokenIsFound) {
  const Tokenizer minimax = tokenizer_with({added(4, "]~!b[", true), added(5, "<minimax:tool_call>", true)});
  EXPECT_TRUE(tool_call_markup_is_special(minimax, ToolCallFormat::MiniMaxM2));
  EXPECT_FALSE(tool_call_markup_is_special(minimax, ToolCallFormat::Glm45));
}

}  // namespace
}  // namespace rackserve::text
