// ReasoningSplitter: <think> tags split across deltas at every position, text before and
// after, prompts that already opened reasoning, and tags that never complete.
#include <gtest/gtest.h>

#include "api/reasoning_splitter.h"

namespace rackserve::api {
namespace {

ReasoningDelta split_in_pieces(const std::string& text, size_t piece, bool starts_in_reasoning = false) {
  ReasoningSplitter splitter(starts_in_reasoning);
  ReasoningDelta total;
  for (size_t at = 0; at < text.size(); at += piece) {
    ReasoningDelta delta = splitter.append(text.substr(at, piece));
    total.reasoning += delta.reasoning;
    total.content += delta.content;
  }
  ReasoningDelta rest = splitter.finish();
  total.reasoning += rest.reasoning;
  total.content += rest.content;
  return total;
}

TEST(ReasoningSplitter, SplitsTagsArrivingInAnyPieces) {
  const std::string text = "<think>step one, step two</think>The answer is 4.";
  for (size_t piece = 1; piece <= text.size(); ++piece) {
    ReasoningDelta result = split_in_pieces(text, piece);
    EXPECT_EQ(result.reasoning, "step one, step two") << "piece " << piece;
    EXPECT_EQ(result.content, "The answer is 4.") << "piece " << piece;
  }
}

TEST(ReasoningSplitter, PromptThatOpenedReasoningNeedsOnlyTheClosingTag) {
  for (size_t piece = 1; piece <= 6; ++piece) {
    ReasoningDelta result = split_in_pieces("thinking</think>answer", piece, /*starts_in_reasoning=*/true);
    EXPECT_EQ(result.reasoning, "thinking");
    EXPECT_EQ(result.content, "answer");
  }
}

TEST(ReasoningSplitter, TextWithoutTagsIsContent) {
  ReasoningDelta result = split_in_pieces("a < b and c <thin", 3);
  EXPECT_EQ(result.content, "a < b and c <thin");
  EXPECT_EQ(result.reasoning, "");
}

TEST(ReasoningSplitter, UnclosedReasoningStaysReasoning) {
  ReasoningDelta result = split_in_pieces("<think>still going </thi", 4);
  EXPECT_EQ(result.reasoning, "still going </thi");
  EXPECT_EQ(result.content, "");
}

TEST(ReasoningSplitter, OnlyTheFirstOpeningTagCounts) {
  ReasoningDelta result = split_in_pieces("<think>r</think>x <think>y</think>", 5);
  EXPECT_EQ(result.reasoning, "r");
  EXPECT_EQ(result.content, "x <think>y</think>");
}

TEST(ReasoningSplitter, HoldsBackOnlyWhatCouldBeATag) {
  ReasoningSplitter splitter;
  EXPECT_EQ(splitter.append("Hello <").content, "Hello ");
  EXPECT_EQ(splitter.append("b>").content, "<b>");
}

TEST(PromptOpensReasoning, LooksAtTheLastTag) {
  EXPECT_TRUE(prompt_opens_reasoning("<|assistant|><think>\n"));
  EXPECT_FALSE(prompt_opens_reasoning("<|assistant|>"));
  EXPECT_FALSE(prompt_opens_reasoning("<think>a</think><|assistant|>"));
  EXPECT_FALSE(prompt_opens_reasoning("<think> text after"));
  EXPECT_TRUE(prompt_opens_reasoning("<think>a</think>q<|assistant|><think>"));
}

}  // namespace
}  // namespace rackserve::api
