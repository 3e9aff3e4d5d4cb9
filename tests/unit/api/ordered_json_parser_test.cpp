// parse_ordered_json: the tree nlohmann's own ordered_json parser builds, keys in the
// text's order, a repeated key where Python's json.loads puts it, the depth cap, and
// objects too large for a quadratic key scan.
#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "api/ordered_json_parser.h"

namespace rackserve::api {
namespace {

using nlohmann::ordered_json;

TEST(OrderedJsonParser, BuildsWhatOrderedJsonParseBuilds) {
  const std::string text = R"({"z": 1, "a": [true, false, null, {"y": -2, "b": 18446744073709551615}],
    "m": {"q": 0.5, "c": "é\u2028\"", "e": {}, "f": []}, "n": -9223372036854775808, "big": 1e300})";
  const auto parsed = parse_ordered_json(text, 16);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(*parsed, ordered_json::parse(text));
  EXPECT_EQ(parsed->dump(), ordered_json::parse(text).dump());
  EXPECT_EQ(parsed->begin().key(), "z");
  for (const char* scalar : {"3", "-1.25", "\"text\"", "null", "[]", "{}"})
    EXPECT_EQ(parse_ordered_json(scalar, 1), ordered_json::parse(scalar)) << scalar;
}

TEST(OrderedJsonParser, RepeatedKeyKeepsItsFirstPlaceAndItsLastValue) {
  auto parsed = parse_ordered_json(R"({"a": 1, "b": 2, "a": 3})", 4);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->dump(), R"({"a":3,"b":2})");
  // Past the size where keys are indexed, too.
  std::string text = "{";
  for (int i = 0; i < 40; ++i) text += "\"k" + std::to_string(i) + "\": " + std::to_string(i) + ", ";
  text += R"("k3": "last", "k39": "end"})";
  parsed = parse_ordered_json(text, 4);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->size(), 40u);
  EXPECT_EQ((*parsed)["k3"], "last");
  EXPECT_EQ((*parsed)["k39"], "end");
  EXPECT_EQ(std::next(parsed->begin(), 3).key(), "k3");
}

TEST(OrderedJsonParser, RejectsInvalidJsonAndNestingPastTheCap) {
  for (const char* bad : {"", "{", R"({"a" 1})", "[1,]", "{\"a\": 1} x", "\"\xff\"", "1E400", "nul"})
    EXPECT_FALSE(parse_ordered_json(bad, 8)) << bad;
  EXPECT_TRUE(parse_ordered_json("[[[{}]]]", 4));
  EXPECT_FALSE(parse_ordered_json("[[[[{}]]]]", 4));
  EXPECT_FALSE(parse_ordered_json(R"({"a": {"b": {"c": {"d": {}}}}})", 4));
}

// ordered_json::parse compares every key with all the keys before it: 300 000 keys take it
// minutes. Linear parsing takes well under a second.
TEST(OrderedJsonParser, LargeObjectsParseInLinearTime) {
  constexpr int kKeys = 300000;
  std::string text = "{";
  for (int i = 0; i < kKeys; ++i) text += (i ? ",\"" : "\"") + std::to_string(kKeys - i) + "\":" + std::to_string(i);
  text += "}";
  const auto start = std::chrono::steady_clock::now();
  const auto parsed = parse_ordered_json(text, 4);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->size(), static_cast<size_t>(kKeys));
  EXPECT_EQ(parsed->begin().key(), std::to_string(kKeys));
  EXPECT_LT(seconds, 10.0);
}

}  // namespace
}  // namespace rackserve::api
