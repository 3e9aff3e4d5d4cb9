// Stop handling: StopStringMatcher across text pieces, and SequenceOutput's finish
// rules (stop ids, EOS, ignore_eos, min_tokens, max_tokens, held-back text).
#include <gtest/gtest.h>

#include "engine/sequence_output.h"
#include "engine/stop_strings.h"

namespace rackserve {
namespace {

std::string feed(StopStringMatcher& matcher, const std::vector<std::string>& pieces) {
  std::string out;
  for (const std::string& piece : pieces) out += matcher.append(piece).emit;
  return out;
}

TEST(StopStringMatcher, MatchesAcrossPiecesAndEmitsNothingFromTheStop) {
  StopStringMatcher matcher({"END"}, false);
  EXPECT_EQ(matcher.append("hello E").emit, "hello ");  // "E" could start END
  EXPECT_EQ(matcher.append("N").emit, "");
  StopStringMatcher::Result result = matcher.append("D and more");
  EXPECT_EQ(result.emit, "");
  EXPECT_EQ(result.stop, "END");
  EXPECT_TRUE(matcher.stopped());
  EXPECT_EQ(matcher.append("x").emit, "");
  EXPECT_EQ(matcher.finish(), "");
}

TEST(StopStringMatcher, ReleasesHeldTextWhenItCannotMatch) {
  StopStringMatcher matcher({"END"}, false);
  EXPECT_EQ(feed(matcher, {"E", "N", "x"}), "ENx");
  EXPECT_EQ(feed(matcher, {"tail E"}), "tail ");
  EXPECT_EQ(matcher.finish(), "E");
}

TEST(StopStringMatcher, EarliestStopWinsAndIncludeKeepsIt) {
  StopStringMatcher matcher({"bc", "abcd", "x"}, true);
  StopStringMatcher::Result result = matcher.append("zabcdx");
  EXPECT_EQ(result.stop, "abcd");  // starts first
  EXPECT_EQ(result.emit, "zabcd");
  StopStringMatcher excluded({"\n\n"}, false);
  EXPECT_EQ(feed(excluded, {"one\n", "\ntwo"}), "one");
}

TEST(StopStringMatcher, WithoutStopsEverythingPasses) {
  StopStringMatcher matcher({""}, false);  // empty stop strings are ignored
  EXPECT_EQ(feed(matcher, {"a", "b"}), "ab");
  EXPECT_FALSE(matcher.stopped());
}

class LetterDetokenizer : public IncrementalDetokenizer {
 public:
  // Token t is the letter 'a' + t, but token 25 ('z') is held until the next token, like
  // a partial UTF-8 character.
  std::string append(int32_t token) override {
    std::string out = std::exchange(held_, "");
    if (token == 25)
      held_ = "z";
    else
      out += static_cast<char>('a' + token);
    return out;
  }
  std::string finish() override { return std::exchange(held_, ""); }

 private:
  std::string held_;
};

SamplingParams base_params(int32_t max_tokens) {
  SamplingParams params;
  params.max_tokens = max_tokens;
  return params;
}

SequenceOutput make_output(const SamplingParams& params, std::vector<int32_t> eos = {}) {
  return SequenceOutput(0, params, eos, /*prompt_length=*/4, /*max_model_len=*/100,
                        std::make_unique<LetterDetokenizer>());
}

TEST(SequenceOutput, LengthFinishFlushesHeldText) {
  SamplingParams params = base_params(3);
  SequenceOutput output = make_output(params);
  EXPECT_FALSE(output.add_token(0, {}));
  EXPECT_FALSE(output.add_token(1, {}));
  EXPECT_TRUE(output.add_token(25, {}));
  SequenceDelta delta = output.take_delta();
  EXPECT_EQ(delta.text, "abz");
  EXPECT_EQ(delta.token_ids, (std::vector<int32_t>{0, 1, 25}));
  EXPECT_EQ(delta.finish_reason, FinishReason::Length);
  EXPECT_FALSE(output.has_news());
}

TEST(SequenceOutput, MaxModelLenEndsTheSequence) {
  SamplingParams params = base_params(1000);
  SequenceOutput output(0, params, {}, 98, 100, nullptr);
  EXPECT_FALSE(output.add_token(3, {}));
  EXPECT_TRUE(output.add_token(3, {}));
  EXPECT_EQ(output.take_delta().finish_reason, FinishReason::Length);
}

TEST(SequenceOutput, EosAndStopIdsEndWithoutText) {
  SamplingParams params = base_params(10);
  params.stop_token_ids = {7};
  SequenceOutput output = make_output(params, {2});
  EXPECT_FALSE(output.add_token(0, {}));
  EXPECT_TRUE(output.add_token(2, {}));
  SequenceDelta delta = output.take_delta();
  EXPECT_EQ(delta.text, "a");
  EXPECT_EQ(delta.token_ids, (std::vector<int32_t>{0, 2}));
  EXPECT_EQ(std::get<int32_t>(delta.stop_reason), 2);

  params.ignore_eos = true;
  SequenceOutput ignoring = make_output(params, {2});
  EXPECT_FALSE(ignoring.add_token(2, {}));
  EXPECT_TRUE(ignoring.add_token(7, {}));  // stop_token_ids still apply
  EXPECT_EQ(ignoring.take_delta().text, "c");
}

TEST(SequenceOutput, MinTokensDelaysEveryStopButLength) {
  SamplingParams params = base_params(10);
  params.min_tokens = 2;
  params.stop = {"b"};
  SequenceOutput output = make_output(params, {1});
  EXPECT_EQ(output.banned_tokens().size(), 1u);
  EXPECT_FALSE(output.add_token(1, {}));  // EOS id 1 ('b') before min_tokens: just text
  EXPECT_EQ(output.banned_tokens().size(), 1u);
  EXPECT_FALSE(output.add_token(0, {}));
  EXPECT_TRUE(output.banned_tokens().empty());
  EXPECT_TRUE(output.add_token(1, {}));
  SequenceDelta delta = output.take_delta();
  EXPECT_EQ(delta.text, "ba");
  EXPECT_EQ(delta.finish_reason, FinishReason::Stop);
}

TEST(SequenceOutput, StopStringAcrossTokensWithHeldCharacter) {
  SamplingParams params = base_params(10);
  params.stop = {"zc"};
  SequenceOutput output = make_output(params);
  EXPECT_FALSE(output.add_token(0, {}));
  EXPECT_FALSE(output.add_token(25, {}));
  EXPECT_EQ(output.take_delta().text, "a");
  EXPECT_TRUE(output.add_token(2, {}));
  SequenceDelta delta = output.take_delta();
  EXPECT_EQ(delta.text, "");
  EXPECT_EQ(std::get<std::string>(delta.stop_reason), "zc");
  EXPECT_EQ(delta.token_ids, std::vector<int32_t>{2});
}

TEST(SequenceOutput, AbortKeepsHeldTextBack) {
  SamplingParams params = base_params(10);
  params.stop = {"ab"};
  SequenceOutput output = make_output(params);
  output.add_token(0, {});
  output.finish(FinishReason::Abort);
  SequenceDelta delta = output.take_delta();
  EXPECT_EQ(delta.text, "");
  EXPECT_EQ(delta.finish_reason, FinishReason::Abort);
  EXPECT_TRUE(output.finished());
}

}  // namespace
}  // namespace rackserve
