// ToolCallListReader: a list of calls as tool_choice "required" decodes it, read back as
// tool-call deltas whatever the split of the text (inside UTF-8 characters too: deltas hold
// whole ones); the reference is nlohmann's parse of the whole list.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/tool_call_list.h"
#include "support/tool_call_merge.h"

namespace rackserve::api {
namespace {

using text::testing::MergedCall;

// The calls read from `text` cut into the pieces `cuts` marks (piece ends, ascending), then
// finish(), merged as a streaming client does (support/tool_call_merge.h checks the delta
// contract on the way, whole UTF-8 characters included).
std::vector<MergedCall> read(std::string_view text, const std::vector<size_t>& cuts) {
  ToolCallListReader reader;
  text::testing::MergedParse merged;
  size_t from = 0;
  auto merge = [&](std::vector<text::ToolCallDelta> deltas) {
    const auto violation = text::testing::merge_deltas(merged, {.content = {}, .calls = std::move(deltas)}, true);
    EXPECT_FALSE(violation) << *violation;
  };
  for (size_t cut : cuts) {
    merge(reader.append(text.substr(from, cut - from)));
    from = cut;
  }
  merge(reader.finish());
  return merged.calls;
}

TEST(ToolCallListReader, ReadsTheCallsWhateverTheSplit) {
  const std::vector<std::string> lists = {
      R"([{"name":"get_weather","arguments":{"city":"Paris","unit":"c"}}])",
      R"([ {"name": "f", "arguments": {}} ,{"name":"g","arguments":{"q":"a \"}\" {[","n":[1,{"x":null}]}} ])",
      R"([{"name":"na\u00efve","arguments":{"s":"日本 😀","name":"not a call","arguments":{}}}])",
  };
  std::mt19937 random(3);
  for (const std::string& list : lists) {
    const nlohmann::json reference = nlohmann::json::parse(list);
    std::vector<std::vector<size_t>> splits = {{list.size()}};
    std::vector<size_t> bytes;
    for (size_t i = 1; i <= list.size(); ++i) bytes.push_back(i);
    splits.push_back(bytes);
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<size_t> cuts;
      for (size_t at = 0; at < list.size();) cuts.push_back(at = std::min(list.size(), at + 1 + random() % 7));
      splits.push_back(cuts);
    }
    for (const std::vector<size_t>& cuts : splits) {
      const std::vector<MergedCall> calls = read(list, cuts);
      ASSERT_EQ(calls.size(), reference.size()) << list;
      for (size_t i = 0; i < calls.size(); ++i) {
        EXPECT_EQ(calls[i].name, reference[i]["name"].get<std::string>()) << list;
        EXPECT_EQ(nlohmann::json::parse(calls[i].arguments), reference[i]["arguments"]) << list;
      }
    }
  }
}

TEST(ToolCallListReader, ACutOffListKeepsWhatWasComplete) {
  const std::string list = R"([{"name":"f","arguments":{"a":1}},{"name":"gh","arguments":{"b":)";
  for (size_t end = 0; end <= list.size(); ++end) {
    const std::vector<MergedCall> calls = read(list.substr(0, end), {end});  // never throws
    if (end >= list.find("\"f\"") + 3) {
      ASSERT_FALSE(calls.empty()) << end;
      EXPECT_EQ(calls[0].name, "f");
    }
    if (end < list.find("\"gh\"") + 4) EXPECT_LE(calls.size(), 1u) << "a call whose name is not complete is not out";
  }
  const std::vector<MergedCall> calls = read(list, {list.size()});
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].arguments, R"({"a":1})");
  EXPECT_EQ(calls[1].arguments, R"({"b":)");
}

// Lists the grammar would not let through (the reader must still keep the contract): an array
// where a call belongs names nothing, and a call without a name takes no number.
TEST(ToolCallListReader, ABrokenListKeepsTheContract) {
  const std::string list = R"([["name","x"],{"arguments":{"a":1}},{"name":"g","arguments":{"b":2}},{"name":"","arguments":{}}])";
  const std::vector<MergedCall> calls = read(list, {7, 30, list.size()});
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].name, "g");
  EXPECT_EQ(calls[0].arguments, R"({"b":2})");
}

}  // namespace
}  // namespace rackserve::api
