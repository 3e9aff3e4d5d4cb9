// ToolCallListReader: a list of calls as tool_choice "required" decodes it, read back as
// tool-call deltas whatever the split of the text; the reference is nlohmann's parse of the
// whole list.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/tool_call_list.h"

namespace rackserve::api {
namespace {

struct Call {
  std::string name;
  std::string arguments;
};

// The calls read from `text` cut into the pieces `cuts` marks (piece ends, ascending).
std::vector<Call> read(std::string_view text, const std::vector<size_t>& cuts) {
  ToolCallListReader reader;
  std::vector<Call> calls;
  size_t from = 0;
  for (size_t cut : cuts) {
    for (const text::ToolCallDelta& delta : reader.append(text.substr(from, cut - from))) {
      if (delta.index == static_cast<int32_t>(calls.size())) {
        EXPECT_FALSE(delta.name.empty()) << "a call's first delta names it";
        calls.push_back({delta.name, ""});
      } else {
        EXPECT_EQ(delta.index, static_cast<int32_t>(calls.size()) - 1);
        EXPECT_TRUE(delta.name.empty());
      }
      calls.back().arguments += delta.arguments;
    }
    from = cut;
  }
  return calls;
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
      const std::vector<Call> calls = read(list, cuts);
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
    const std::vector<Call> calls = read(list.substr(0, end), {end});  // never throws
    if (end >= list.find("\"f\"") + 3) {
      ASSERT_FALSE(calls.empty()) << end;
      EXPECT_EQ(calls[0].name, "f");
    }
    if (end < list.find("\"gh\"") + 4) EXPECT_LE(calls.size(), 1u) << "a call whose name is not complete is not out";
  }
  const std::vector<Call> calls = read(list, {list.size()});
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].arguments, R"({"a":1})");
  EXPECT_EQ(calls[1].arguments, R"({"b":)");
}

}  // namespace
}  // namespace rackserve::api
