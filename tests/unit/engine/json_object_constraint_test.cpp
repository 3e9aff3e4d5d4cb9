// JsonObjectConstraint over a tiny hand-made vocabulary: the banned list it gives the
// sampler (the mask's bans merged with the sequence's own), and the state it advances by
// each sampled token; random walks over the allowed tokens end in text nlohmann::json reads
// as an object whenever the grammar calls it complete.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/grammar_constraint.h"

namespace rackserve {
namespace {

constexpr int32_t kEos = 7;

// id: bytes. 6 is a special token (no bytes), 7 the EOS.
const std::vector<std::string> kVocabulary = {"{", "}", "\"a\"", ":", "1", " ", "", "</s>", "x", "{\"a\":1}", ",", "[", "]"};

std::shared_ptr<const JsonTokenMask> tiny_mask() {
  return std::make_shared<const JsonTokenMask>(kVocabulary, std::vector<int32_t>{kEos});
}

std::vector<int32_t> all_but(const std::vector<int32_t>& allowed) {
  std::vector<int32_t> banned;
  for (int32_t id = 0; id < static_cast<int32_t>(kVocabulary.size()); ++id)
    if (std::find(allowed.begin(), allowed.end(), id) == allowed.end()) banned.push_back(id);
  return banned;
}

TEST(JsonObjectConstraint, BansWhatCannotStartTheObject) {
  JsonObjectConstraint constraint(tiny_mask());
  EXPECT_EQ(constraint.banned_tokens({}), all_but({0, 9}));  // "{" and the whole object
}

TEST(JsonObjectConstraint, MergesTheSequenceBansSortedAndDistinct) {
  JsonObjectConstraint constraint(tiny_mask());
  const std::vector<int32_t> own = {9, 7, 7, 3, 9};  // unsorted, repeated, partly banned already
  EXPECT_EQ(constraint.banned_tokens(own), all_but({0}));
}

TEST(JsonObjectConstraint, AdvancesToACompleteObjectThenAllowsOnlyEosAndWhitespace) {
  JsonObjectConstraint constraint(tiny_mask());
  std::string text;
  for (int32_t token : {0, 5, 2, 3, 4, 10, 2, 3, 11, 4, 12, 1}) {  // { "a":1,"a":[1]}
    ASSERT_TRUE(constraint.advance(token)) << "after " << text;
    text += kVocabulary[token];
  }
  EXPECT_TRUE(constraint.complete());
  EXPECT_TRUE(nlohmann::json::parse(text).is_object());
  EXPECT_EQ(constraint.banned_tokens({}), all_but({5, kEos}));
  // Under min_tokens the sequence bans its EOS: whitespace is all that is left.
  EXPECT_EQ(constraint.banned_tokens(std::vector<int32_t>{kEos}), all_but({5}));
  EXPECT_TRUE(constraint.advance(kEos));  // EOS adds nothing (ignore_eos goes on)
  EXPECT_TRUE(constraint.complete());
}

TEST(JsonObjectConstraint, RefusesBannedAndUnknownTokensWithoutMoving) {
  JsonObjectConstraint constraint(tiny_mask());
  ASSERT_TRUE(constraint.advance(0));
  const JsonGrammar before = constraint.state();
  for (int32_t token : {8, 4, 6, 0, -1, static_cast<int32_t>(kVocabulary.size())}) {
    EXPECT_FALSE(constraint.advance(token)) << "token " << token;
    EXPECT_TRUE(constraint.state() == before) << "token " << token;
  }
  EXPECT_THROW(JsonObjectConstraint(nullptr), std::exception);
}

// Whatever the sampler picks among the tokens left unbanned, the grammar takes it; the text
// stays a prefix of an object and, once complete, parses as one.
TEST(JsonObjectConstraint, RandomWalksOverUnbannedTokensStayValid) {
  const auto mask = tiny_mask();
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 random(seed);
  int completed = 0;
  for (int walk = 0; walk < 200; ++walk) {
    JsonObjectConstraint constraint(mask);
    std::string text;
    for (int step = 0; step < 40; ++step) {
      const std::vector<int32_t> banned = constraint.banned_tokens({});
      ASSERT_TRUE(std::is_sorted(banned.begin(), banned.end()));
      // What the constraint reuses between equal states is what the mask gives this one.
      ASSERT_EQ(banned, mask->banned(constraint.state())) << text;
      std::vector<int32_t> allowed;
      for (int32_t id = 0; id < mask->vocab_size(); ++id)
        if (!std::binary_search(banned.begin(), banned.end(), id)) allowed.push_back(id);
      ASSERT_FALSE(allowed.empty()) << text;
      const int32_t token = allowed[std::uniform_int_distribution<size_t>(0, allowed.size() - 1)(random)];
      ASSERT_TRUE(constraint.advance(token)) << text << " + " << kVocabulary[token];
      if (token == kEos) break;
      text += kVocabulary[token];
    }
    ASSERT_EQ(text.front(), '{');
    if (constraint.complete()) {
      ++completed;
      EXPECT_TRUE(nlohmann::json::parse(text).is_object()) << text;
    } else {
      EXPECT_FALSE(nlohmann::json::accept(text)) << text;
    }
  }
  EXPECT_GT(completed, 0);
}

}  // namespace
}  // namespace rackserve
