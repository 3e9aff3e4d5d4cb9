// ChoiceGrammar: the prefixes of a set of texts, byte for byte (the reference is plain
// std::string prefix tests over the set), and the token mask driving it over a tiny
// vocabulary: random walks end, on EOS, in exactly one of the texts.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "engine/choice_grammar.h"
#include "engine/grammar_constraint.h"
#include "engine/token_mask.h"
#include "support/mask_walk.h"

namespace rackserve {
namespace {

const std::vector<std::string> kTexts = {"yes", "yes indeed", "no", "né", "", "maybe", "may"};

bool is_prefix_of_some(std::string_view text) {
  return std::ranges::any_of(kTexts, [&](const std::string& choice) { return choice.starts_with(text); });
}

TEST(ChoiceGrammar, AcceptsExactlyThePrefixesOfTheTexts) {
  const TextChoices choices(kTexts);
  // Every prefix of every text, and one byte more of each (the reference decides).
  std::vector<std::string> probes = {"x", "yes!", "yes  ", "mayb", "maybe ", "n", "n\xc3", "noo"};
  for (const std::string& text : kTexts)
    for (size_t length = 0; length <= text.size(); ++length) probes.push_back(text.substr(0, length));
  for (const std::string& probe : probes) {
    ChoiceGrammar grammar(choices);
    EXPECT_EQ(grammar.accept(probe), is_prefix_of_some(probe)) << probe;
    if (!is_prefix_of_some(probe)) {
      EXPECT_TRUE(grammar == ChoiceGrammar(choices)) << "a refused text leaves the state unchanged: " << probe;
      continue;
    }
    EXPECT_EQ(grammar.complete(), std::ranges::count(kTexts, probe) == 1) << probe;
  }
}

TEST(ChoiceGrammar, TakesRepeatedTextsOnce) {
  const TextChoices choices({"b", "a", "b"});
  EXPECT_EQ(choices.texts(), (std::vector<std::string>{"a", "b"}));
  EXPECT_THROW(TextChoices(std::vector<std::string>{}), Error);
}

// Random walks over the allowed tokens of a tiny vocabulary end, when EOS is picked, in one
// of the texts; EOS is allowed exactly when the text so far is one.
TEST(ChoiceConstraint, RandomWalksOverTheMaskEndInAText) {
  const std::vector<std::string> vocabulary = {"y", "e", "s", "yes", " ", "in", "deed", "n", "o", "no", "ma",
                                               "y", "be", "\xc3", "\xa9", "x", "", "</s>"};
  const int32_t eos = static_cast<int32_t>(vocabulary.size() - 1);
  std::vector<std::string> bytes = vocabulary;
  bytes[static_cast<size_t>(eos)].clear();  // special: no bytes
  auto mask = std::make_shared<const JsonTokenMask>(bytes, std::vector<int32_t>{eos});
  auto choices = std::make_shared<const TextChoices>(kTexts);
  std::mt19937 random(5);
  int finished = 0;
  for (int walk = 0; walk < 300; ++walk) {
    ChoiceConstraint constraint(mask, choices);
    const testing::MaskWalk end =
        testing::walk_mask(*mask, constraint, vocabulary, eos, random, 40, [&](const std::string& text, const auto& allowed) {
          EXPECT_TRUE(is_prefix_of_some(text)) << text;
          EXPECT_EQ(std::ranges::count(allowed, eos) == 1, std::ranges::count(kTexts, text) == 1) << text;
        });
    if (!end.ended_on_eos) continue;
    EXPECT_EQ(std::ranges::count(kTexts, end.text), 1) << end.text;
    ++finished;
  }
  EXPECT_GT(finished, 100);
}

}  // namespace
}  // namespace rackserve
