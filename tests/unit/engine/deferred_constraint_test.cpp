// DeferredConstraint over a tiny hand-made vocabulary with a "</think>" token: before it only
// the ids that end the sequence (EOS, stop ids) and the sequence's own bans are banned, and
// every other token passes without moving the grammar; the "</think>" token starts the JSON
// object grammar from its initial state. Random walks end, whenever they stop on EOS, in text
// whose part after "</think>" parses as an object.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/deferred_constraint.h"

namespace rackserve {
namespace {

constexpr int32_t kEos = 7;
constexpr int32_t kThinkEnd = 13;
constexpr int32_t kStop = 6;  // a stop token id of the request (a special token: no bytes)

// id: bytes. 6 is a special token (no bytes), 7 the EOS, 13 "</think>".
const std::vector<std::string> kVocabulary = {"{",  "}", "\"a\"", ":", "1", " ", "", "</s>",
                                              "x",  "{\"a\":1}", ",", "[", "]", "</think>"};

std::shared_ptr<const JsonTokenMask> tiny_mask() {
  return std::make_shared<const JsonTokenMask>(kVocabulary, std::vector<int32_t>{kEos});
}

DeferredConstraint deferred(const std::shared_ptr<const JsonTokenMask>& mask) {
  return DeferredConstraint(std::make_unique<JsonObjectConstraint>(mask), kThinkEnd, mask->vocab_size(),
                            std::vector<int32_t>{kStop, kEos, kEos});
}

TEST(DeferredConstraint, BansOnlyWhatEndsTheSequenceUntilTheStartToken) {
  const auto mask = tiny_mask();
  DeferredConstraint constraint = deferred(mask);
  EXPECT_EQ(constraint.banned_tokens({}), (std::vector<int32_t>{kStop, kEos}));
  const std::vector<int32_t> own = {9, 7, 9};  // the sequence's own bans: merged, sorted, distinct
  EXPECT_EQ(constraint.banned_tokens(own), (std::vector<int32_t>{kStop, kEos, 9}));
  // Free text, "{" included, leaves the grammar where it was.
  for (int32_t token : {8, 1, 0, 12, 5})
    ASSERT_TRUE(constraint.advance(token)) << "token " << token;
  EXPECT_FALSE(constraint.active());
  EXPECT_FALSE(constraint.complete());
  for (int32_t token : {kEos, kStop, -1, static_cast<int32_t>(kVocabulary.size())})
    EXPECT_FALSE(constraint.advance(token)) << "token " << token;
  EXPECT_FALSE(constraint.active());
}

TEST(DeferredConstraint, StartsTheGrammarFromItsInitialStateAfterTheToken) {
  const auto mask = tiny_mask();
  DeferredConstraint constraint = deferred(mask);
  for (int32_t token : {0, 2, 3, kThinkEnd}) ASSERT_TRUE(constraint.advance(token));  // {"a":</think>
  EXPECT_TRUE(constraint.active());
  EXPECT_EQ(constraint.banned_tokens({}), mask->banned(JsonGrammar{}));  // "{" or the whole object
  EXPECT_FALSE(constraint.advance(8));
  EXPECT_FALSE(constraint.advance(kThinkEnd)) << "outside a string, \"</think>\" is not JSON";
  for (int32_t token : {0, 2, 3, 4, 1}) ASSERT_TRUE(constraint.advance(token));
  EXPECT_TRUE(constraint.complete());
  JsonGrammar whole;
  ASSERT_TRUE(whole.accept("{\"a\":1}"));
  EXPECT_EQ(constraint.banned_tokens({}), mask->banned(whole));
  EXPECT_TRUE(constraint.advance(kEos));
}

TEST(DeferredConstraint, RejectsAStartTokenItWouldBan) {
  const auto mask = tiny_mask();
  EXPECT_THROW(DeferredConstraint(std::make_unique<JsonObjectConstraint>(mask), kEos, mask->vocab_size(), {kEos}),
               std::exception);
  EXPECT_THROW(DeferredConstraint(nullptr, kThinkEnd, mask->vocab_size(), {kEos}), std::exception);
}

// Whatever the sampler picks among the unbanned tokens is taken; a walk that stops on EOS went
// through "</think>" and what follows it is a whole object.
TEST(DeferredConstraint, RandomWalksStopOnlyWithADocumentAfterTheToken) {
  const auto mask = tiny_mask();
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 random(seed);
  int stopped = 0;
  for (int walk = 0; walk < 300; ++walk) {
    DeferredConstraint constraint = deferred(mask);
    std::string text;
    bool ended_on_eos = false;
    for (int step = 0; step < 60 && !ended_on_eos; ++step) {
      const std::vector<int32_t> banned = constraint.banned_tokens({});
      ASSERT_TRUE(std::is_sorted(banned.begin(), banned.end()));
      std::vector<int32_t> allowed;
      for (int32_t id = 0; id < mask->vocab_size(); ++id)
        if (!std::binary_search(banned.begin(), banned.end(), id)) allowed.push_back(id);
      ASSERT_FALSE(allowed.empty()) << text;
      const int32_t token = allowed[std::uniform_int_distribution<size_t>(0, allowed.size() - 1)(random)];
      ASSERT_TRUE(constraint.advance(token)) << text << " + " << token;
      ended_on_eos = token == kEos;
      if (!ended_on_eos) text += kVocabulary[token];
    }
    if (!ended_on_eos) continue;
    ++stopped;
    ASSERT_TRUE(constraint.complete()) << text;
    const size_t end = text.find("</think>");
    ASSERT_NE(end, std::string::npos) << text;
    EXPECT_TRUE(nlohmann::json::parse(text.substr(end + 8)).is_object()) << text;
  }
  EXPECT_GT(stopped, 0);
}

}  // namespace
}  // namespace rackserve
