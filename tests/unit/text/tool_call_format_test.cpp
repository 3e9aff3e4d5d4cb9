// What each format emits when: the name as soon as it is complete, JSON arguments as they
// arrive (holding back only what could start a marker), GLM / MiniMax-M2 arguments a pair
// at a time; how bare values are typed from the tools' schemas; and what broken markup
// gives, at finish() and before.
#include <gtest/gtest.h>

#include "tool_call_testing.h"

namespace rackserve::text {
namespace {

using testing::MergedCall;
using testing::MergedParse;
using testing::parse_whole;

// The deltas one append gives, as "name|arguments" per delta and the content.
struct Step {
  std::string content;
  std::vector<std::string> calls;
};

Step step(ToolCallParser& parser, std::string_view text) {
  ToolCallParse parse = parser.append(text);
  Step out{std::move(parse.content), {}};
  for (const auto& delta : parse.calls) out.calls.push_back(delta.name + "|" + delta.arguments);
  return out;
}

std::vector<std::string> calls(std::initializer_list<std::string> entries) { return entries; }

TEST(JsonArgumentsStream, KimiEmitsIdAndNameThenArgumentsAsTheyArrive) {
  auto parser = make_tool_call_parser(ToolCallFormat::KimiK2, nullptr);
  EXPECT_EQ(step(*parser, "Checking.<|tool_calls_section_begin|><|tool_call_begin|>functions.get_").calls, calls({}));
  const ToolCallParse head = parser->append("weather:0<|tool_call_argument_begin|>");
  ASSERT_EQ(head.calls.size(), 1u);
  EXPECT_EQ(head.calls[0].id, "functions.get_weather:0");
  EXPECT_EQ(head.calls[0].name, "get_weather");
  EXPECT_EQ(head.calls[0].arguments, "");
  EXPECT_EQ(step(*parser, "{\"city\": \"Pa").calls, calls({"|{\"city\": \"Pa"}));
  // A marker inside a string is text; outside, its first bytes wait.
  EXPECT_EQ(step(*parser, "<|tool_call_end|>\"}<|tool_ca").calls, calls({"|<|tool_call_end|>\"}"}));
  const Step after = step(*parser, "ll_end|><|tool_calls_section_end|> Done");
  EXPECT_EQ(after.calls, calls({}));
  EXPECT_EQ(after.content, "Done");
  const ToolCallParse rest = parser->finish();
  EXPECT_EQ(rest.content, "");
  EXPECT_TRUE(rest.calls.empty());
}

TEST(JsonArgumentsStream, DeepSeekV31NameAtTheSeparatorAndNothingHeldInsideStrings) {
  auto parser = make_tool_call_parser(ToolCallFormat::DeepSeekV31, nullptr);
  EXPECT_EQ(step(*parser, "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather").calls, calls({}));
  EXPECT_EQ(step(*parser, "<｜tool▁sep｜>").calls, calls({"get_weather|"}));
  EXPECT_EQ(step(*parser, "{\"q\": \"<｜tool▁call").calls, calls({"|{\"q\": \"<｜tool▁call"}));
  EXPECT_EQ(step(*parser, "▁end｜>\", \"n\": 1}").calls, calls({"|▁end｜>\", \"n\": 1}"}));
  // After the object closes nothing more is argument text.
  EXPECT_EQ(step(*parser, " trailing<｜tool▁call▁end｜>").calls, calls({}));
}

TEST(JsonArgumentsStream, DeepSeekV3NameAtTheEndOfItsLineAndTheFenceDropped) {
  auto parser = make_tool_call_parser(ToolCallFormat::DeepSeekV3, nullptr);
  EXPECT_EQ(step(*parser, "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather").calls,
            calls({}));
  EXPECT_EQ(step(*parser, "\n```json\n").calls, calls({"get_weather|"}));
  EXPECT_EQ(step(*parser, "{\"city\": \"Paris\"}\n```").calls, calls({"|{\"city\": \"Paris\"}"}));
  EXPECT_EQ(step(*parser, "<｜tool▁call▁end｜>\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n{}\n```"
                          "<｜tool▁call▁end｜><｜tool▁calls▁end｜>")
                .calls,
            calls({"f|{}"}));
}

TEST(JsonArgumentsStream, MarkerOutsideAStringEndsArgumentsThatNeverClosed) {
  const MergedParse parsed = parse_whole(
      ToolCallFormat::DeepSeekV31,
      "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>f<｜tool▁sep｜>{\"a\": 1 <｜tool▁call▁end｜>"
      "<｜tool▁call▁begin｜>g<｜tool▁sep｜>{\"b\": 2}<｜tool▁call▁end｜><｜tool▁calls▁end｜>");
  EXPECT_EQ(parsed, (MergedParse{"", {{"", "f", "{\"a\": 1 "}, {"", "g", "{\"b\": 2}"}}}));
}

TEST(KeyValueArgumentsStream, GlmEmitsAPairAtATime) {
  auto parser = make_tool_call_parser(ToolCallFormat::Glm45, nullptr);
  EXPECT_EQ(step(*parser, "<tool_call>get_weather").calls, calls({}));
  EXPECT_EQ(step(*parser, "\n<arg_key>city</arg_key>\n<arg_value>Par").calls, calls({"get_weather|"}));
  EXPECT_EQ(step(*parser, "is</arg_value>\n").calls, calls({"|{\"city\": \"Paris\""}));
  EXPECT_EQ(step(*parser, "<arg_key>unit</arg_key><arg_value>celsius</arg_value>").calls,
            calls({"|, \"unit\": \"celsius\""}));
  EXPECT_EQ(step(*parser, "\n</tool_call>").calls, calls({"|}"}));
}

TEST(KeyValueArgumentsStream, MiniMaxEmitsNameAtTheInvokeTag) {
  auto parser = make_tool_call_parser(ToolCallFormat::MiniMaxM2, nullptr);
  EXPECT_EQ(step(*parser, "<minimax:tool_call>\n<invoke name=\"get_weather").calls, calls({}));
  EXPECT_EQ(step(*parser, "\">").calls, calls({"get_weather|"}));
  EXPECT_EQ(step(*parser, "\n<parameter name=\"city\">Paris</parameter>\n").calls, calls({"|{\"city\": \"Paris\""}));
  EXPECT_EQ(step(*parser, "</invoke>\n<invoke name=\"ping\">\n</invoke>\n</minimax:tool_call>").calls,
            calls({"|}", "ping|{}"}));
}

TEST(KeyValueSyntax, Glm46NewlinesAndGlm47CompactGiveTheSameCall) {
  const MergedParse compact = parse_whole(
      ToolCallFormat::Glm45,
      "<tool_call>get_weather<arg_key>city</arg_key><arg_value>Paris</arg_value></tool_call>");
  const MergedParse spaced = parse_whole(
      ToolCallFormat::Glm45,
      "\n<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Paris</arg_value>\n</tool_call>\n");
  EXPECT_EQ(compact, (MergedParse{"", {{"", "get_weather", "{\"city\": \"Paris\"}"}}}));
  EXPECT_EQ(spaced, compact);
}

// The schema types of the tools decide how a bare value becomes JSON.
TEST(KeyValueTyping, ValuesFollowTheParameterSchemaType) {
  const nlohmann::json tools = nlohmann::json::parse(R"([{"type": "function", "function": {"name": "f",
      "parameters": {"type": "object", "properties": {
        "s": {"type": "string"}, "i": {"type": "integer"}, "x": {"type": "number"}, "b": {"type": "boolean"},
        "o": {"type": "object"}, "a": {"type": "array"}, "z": {"type": "null"},
        "maybe": {"type": ["string", "null"]}, "free": {"description": "no type"}}}}}])");
  struct Case {
    std::string key, value, json;
  };
  const std::vector<Case> cases = {
      {"s", "42", "\"42\""},
      {"s", " padded \"quoted\" ", "\" padded \\\"quoted\\\" \""},
      {"s", "{\"a\": 1}", "\"{\\\"a\\\": 1}\""},
      {"i", "42", "42"},
      {"i", " 42\n", "42"},
      {"i", "forty-two", "\"forty-two\""},
      {"x", "0.5", "0.5"},
      {"x", "-1.5e-3", "-1.5e-3"},
      {"b", "true", "true"},
      {"b", "yes", "\"yes\""},
      {"o", "{\"k\": [1, {\"n\": null}]}", "{\"k\": [1, {\"n\": null}]}"},
      {"o", "{broken", "\"{broken\""},
      {"a", "[\"é\", \"🤖\"]", "[\"é\", \"🤖\"]"},
      {"i", "\"7\"", "\"7\""},  // valid JSON for a typed parameter stays as written
      {"z", "null", "null"},
      {"maybe", "null", "\"null\""},
      {"free", "3", "3"},
      {"free", "Paris", "\"Paris\""},
      {"free", "\"quoted\"", "\"\\\"quoted\\\"\""},
      {"unknown", "[1, 2]", "[1, 2]"},
      {"unknown", "", "\"\""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.key + " = " + c.value);
    const std::string glm =
        "<tool_call>f<arg_key>" + c.key + "</arg_key><arg_value>" + c.value + "</arg_value></tool_call>";
    const std::string expected = "{\"" + c.key + "\": " + c.json + "}";
    EXPECT_EQ(parse_whole(ToolCallFormat::Glm45, glm, tools), (MergedParse{"", {{"", "f", expected}}}));
    const std::string minimax = "<minimax:tool_call><invoke name=\"f\"><parameter name=\"" + c.key + "\">" + c.value +
                                "</parameter></invoke></minimax:tool_call>";
    EXPECT_EQ(parse_whole(ToolCallFormat::MiniMaxM2, minimax, tools), (MergedParse{"", {{"", "f", expected}}}));
  }
}

TEST(KeyValueTyping, WithoutToolsOnlyNonStringJsonIsParsed) {
  const MergedParse parsed = parse_whole(
      ToolCallFormat::Glm45,
      "<tool_call>g<arg_key>n</arg_key><arg_value>2</arg_value><arg_key>t</arg_key><arg_value>true</arg_value>"
      "<arg_key>s</arg_key><arg_value>two</arg_value><arg_key>q</arg_key><arg_value>\"2\"</arg_value></tool_call>");
  EXPECT_EQ(parsed.calls.at(0).arguments, "{\"n\": 2, \"t\": true, \"s\": \"two\", \"q\": \"\\\"2\\\"\"}");
}

TEST(KeyValueTyping, MalformedToolsAreIgnored) {
  for (const char* tools : {"null", "{}", "[1, \"x\", {}]", "[{\"function\": {\"name\": 3}}]",
                            "[{\"function\": {\"name\": \"f\", \"parameters\": {\"properties\": [1]}}}]",
                            "[{\"function\": {\"name\": \"f\", \"parameters\": {\"properties\": {\"i\": 5}}}}]"}) {
    SCOPED_TRACE(tools);
    EXPECT_EQ(parse_whole(ToolCallFormat::Glm45,
                          "<tool_call>f<arg_key>i</arg_key><arg_value>5</arg_value></tool_call>",
                          nlohmann::json::parse(tools)),
              (MergedParse{"", {{"", "f", "{\"i\": 5}"}}}));
  }
}

TEST(KeyValueTyping, InvalidUtf8InAValueBecomesReplacementCharacters) {
  const MergedParse parsed = parse_whole(
      ToolCallFormat::Glm45, "<tool_call>f<arg_key>k\xFF</arg_key><arg_value>a\xC3</arg_value></tool_call>", nullptr,
      /*whole_characters=*/false);
  EXPECT_EQ(parsed.calls.at(0).arguments, "{\"k\xEF\xBF\xBD\": \"a\xEF\xBF\xBD\"}");
}

// Broken markup: what the parsers make of it (the contract in each parser's header).
TEST(BrokenMarkup, KeyValueCallsWithMissingPieces) {
  // A key without a value is dropped; a call without arguments has "{}".
  EXPECT_EQ(parse_whole(ToolCallFormat::Glm45,
                        "<tool_call>f<arg_key>lost</arg_key><arg_key>k</arg_key><arg_value>v</arg_value></tool_call>"
                        "<tool_call>g</tool_call>"),
            (MergedParse{"", {{"", "f", "{\"k\": \"v\"}"}, {"", "g", "{}"}}}));
  // A new call before the previous one's end closes it.
  EXPECT_EQ(parse_whole(ToolCallFormat::Glm45,
                        "<tool_call>f<arg_key>k</arg_key><arg_value>1</arg_value><tool_call>g</tool_call>"),
            (MergedParse{"", {{"", "f", "{\"k\": 1}"}, {"", "g", "{}"}}}));
  // The section's end closes the call in progress.
  EXPECT_EQ(parse_whole(ToolCallFormat::MiniMaxM2,
                        "<minimax:tool_call><invoke name=\"f\"><parameter name=\"k\">1</parameter>"
                        "</minimax:tool_call> after"),
            (MergedParse{"after", {{"", "f", "{\"k\": 1}"}}}));
}

TEST(BrokenMarkup, AtFinishACallKeepsWhatWasEmittedAndStaysOpen) {
  // Between pairs, in a value, in a key: the complete pairs only, unclosed.
  for (const char* tail : {"", "<arg_key>unit</arg_key><arg_value>cel", "<arg_key>un"}) {
    const std::string text =
        std::string("<tool_call>get_weather<arg_key>city</arg_key><arg_value>Paris</arg_value>") + tail;
    EXPECT_EQ(parse_whole(ToolCallFormat::Glm45, text),
              (MergedParse{"", {{"", "get_weather", "{\"city\": \"Paris\""}}}))
        << text;
  }
  // A name still being written: no call.
  EXPECT_EQ(parse_whole(ToolCallFormat::Glm45, "Hi<tool_call>get_wea"), (MergedParse{"Hi", {}}));
  EXPECT_EQ(parse_whole(ToolCallFormat::KimiK2, "<|tool_calls_section_begin|><|tool_call_begin|>functions.f:0"),
            (MergedParse{"", {}}));
  // JSON arguments cut off: as written, with a marker's first bytes dropped.
  EXPECT_EQ(parse_whole(ToolCallFormat::KimiK2,
                        "<|tool_calls_section_begin|><|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>"
                        "{\"a\": [1, 2<|tool_call_e"),
            (MergedParse{"", {{"functions.f:0", "f", "{\"a\": [1, 2"}}}));
}

TEST(BrokenMarkup, JsonCallsWithMissingPieces) {
  // A call that ends before any arguments has "{}"; a head without its separator still names the call.
  EXPECT_EQ(parse_whole(ToolCallFormat::DeepSeekV31,
                        "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>f<｜tool▁sep｜><｜tool▁call▁end｜>"
                        "<｜tool▁call▁begin｜>g<｜tool▁call▁end｜><｜tool▁calls▁end｜>"),
            (MergedParse{"", {{"", "f", "{}"}, {"", "g", "{}"}}}));
  // A Kimi id of another shape is the name whole.
  EXPECT_EQ(parse_whole(ToolCallFormat::KimiK2,
                        "<|tool_calls_section_begin|><|tool_call_begin|> call_1 <|tool_call_argument_begin|>{}"
                        "<|tool_call_end|><|tool_calls_section_end|>"),
            (MergedParse{"", {{"call_1", "call_1", "{}"}}}));
  // A second section later in the answer.
  EXPECT_EQ(parse_whole(ToolCallFormat::DeepSeekV3,
                        "A<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n{}\n```"
                        "<｜tool▁call▁end｜><｜tool▁calls▁end｜>B<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function"
                        "<｜tool▁sep｜>g\n```json\n{\"x\": \"}\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>"),
            (MergedParse{"AB", {{"", "f", "{}"}, {"", "g", "{\"x\": \"}\"}"}}}));
}

}  // namespace
}  // namespace rackserve::text
