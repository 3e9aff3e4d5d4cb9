// Tool-call parsing of what models write when it is not a clean template rendering: no
// call at all, text that only looks like the start of a marker, calls cut off at the end,
// garbage, marker look-alikes inside arguments, markers and characters split across
// appends, text around the call section, and inputs large enough that a parser rescanning
// its buffer on each append would take minutes. Each case runs for every format; the
// markup is written by hand after the official templates (see the fixture test for the
// templates themselves).
#include <chrono>
#include <random>

#include <gtest/gtest.h>

#include "tool_call_testing.h"

namespace rackserve::text {
namespace {

using testing::expect_split_independent;
using testing::MergedParse;
using testing::parse_pieces;
using testing::parse_whole;
using Json = nlohmann::ordered_json;

// A value as GLM and MiniMax-M2 write it: strings verbatim, anything else as JSON.
std::string bare_value(const Json& value) { return value.is_string() ? value.get<std::string>() : value.dump(); }

// One call in `format`, as the chat templates render it; `index` numbers Kimi-K2's id.
std::string call_markup(ToolCallFormat format, const std::string& name, int index, const Json& arguments) {
  std::string out;
  switch (format) {
    case ToolCallFormat::DeepSeekV3:
      return "<｜tool▁call▁begin｜>function<｜tool▁sep｜>" + name + "\n```json\n" + arguments.dump() +
             "\n```<｜tool▁call▁end｜>";
    case ToolCallFormat::DeepSeekV31:
      return "<｜tool▁call▁begin｜>" + name + "<｜tool▁sep｜>" + arguments.dump() + "<｜tool▁call▁end｜>";
    case ToolCallFormat::KimiK2:
      return "<|tool_call_begin|>functions." + name + ":" + std::to_string(index) + "<|tool_call_argument_begin|>" +
             arguments.dump() + "<|tool_call_end|>";
    case ToolCallFormat::Glm45:
      out = "<tool_call>" + name;
      for (const auto& [key, value] : arguments.items()) {
        out += "<arg_key>" + key + "</arg_key><arg_value>" + bare_value(value) + "</arg_value>";
      }
      return out + "</tool_call>";
    case ToolCallFormat::MiniMaxM2:
      out = "<invoke name=\"" + name + "\">\n";
      for (const auto& [key, value] : arguments.items()) {
        out += "<parameter name=\"" + key + "\">" + bare_value(value) + "</parameter>\n";
      }
      return out + "</invoke>\n";
  }
  return out;
}

// Calls wrapped in the format's section markers (GLM has none).
std::string section_markup(ToolCallFormat format, const std::string& calls) {
  switch (format) {
    case ToolCallFormat::DeepSeekV3:
    case ToolCallFormat::DeepSeekV31: return "<｜tool▁calls▁begin｜>" + calls + "<｜tool▁calls▁end｜>";
    case ToolCallFormat::KimiK2: return "<|tool_calls_section_begin|>" + calls + "<|tool_calls_section_end|>";
    case ToolCallFormat::Glm45: return calls;
    case ToolCallFormat::MiniMaxM2: return "<minimax:tool_call>\n" + calls + "</minimax:tool_call>";
  }
  return calls;
}

// The marker that starts tool-call markup in the content.
std::string begin_marker(ToolCallFormat format) {
  switch (format) {
    case ToolCallFormat::DeepSeekV3:
    case ToolCallFormat::DeepSeekV31: return "<｜tool▁calls▁begin｜>";
    case ToolCallFormat::KimiK2: return "<|tool_calls_section_begin|>";
    case ToolCallFormat::Glm45: return "<tool_call>";
    case ToolCallFormat::MiniMaxM2: return "<minimax:tool_call>";
  }
  return {};
}

// Every marker of every format, except the one that ends a bare value in `format`.
std::string marker_lookalikes(ToolCallFormat format) {
  std::string all =
      "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>f<｜tool▁sep｜>x<｜tool▁call▁end｜><｜tool▁calls▁end｜>"
      "<|tool_calls_section_begin|><|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>"
      "<|tool_call_end|><|tool_calls_section_end|><tool_call>f<arg_key>k</arg_key><arg_value></tool_call>"
      "<minimax:tool_call><invoke name=\"f\"><parameter name=\"k\"></invoke></minimax:tool_call> {\"a\": [1]}";
  if (format == ToolCallFormat::Glm45 || format == ToolCallFormat::MiniMaxM2) return all;
  return all + "</arg_value></parameter>";
}

std::string expected_id(ToolCallFormat format, const std::string& name, int index) {
  return format == ToolCallFormat::KimiK2 ? "functions." + name + ":" + std::to_string(index) : "";
}

MergedParse expected_parse(std::string content, std::vector<testing::MergedCall> calls) {
  return {std::move(content), std::move(calls)};
}

class EveryFormat : public ::testing::TestWithParam<ToolCallFormat> {
 protected:
  ToolCallFormat format() const { return GetParam(); }
  std::string one_call(const Json& arguments, const std::string& name = "get_weather") const {
    return section_markup(format(), call_markup(format(), name, 0, arguments));
  }
};

// The arguments text as the parser writes it back: JSON formats keep the model's text,
// GLM and MiniMax-M2 build it with ", " and ": " separators.
std::string arguments_text(ToolCallFormat format, const Json& arguments) {
  if (format != ToolCallFormat::Glm45 && format != ToolCallFormat::MiniMaxM2) return arguments.dump();
  if (arguments.empty()) return "{}";
  std::string out;
  for (const auto& [key, value] : arguments.items()) {
    out += (out.empty() ? "{" : ", ") + Json(key).dump() + ": " + value.dump();
  }
  return out + "}";
}

TEST_P(EveryFormat, TextWithoutCallsPassesThroughUnchanged) {
  const std::string marker = begin_marker(format());
  std::vector<std::string> texts = {"Hello, world!", "a < b > c; <b>bold</b> 你好 🤖 — «ok»", "  spaced out  \n\n",
                                    "", "<", "<｜", "<|", "<tool", "<minimax:tool"};
  for (size_t length = 1; length < marker.size(); ++length) texts.push_back("Answer: " + marker.substr(0, length));
  for (const auto& text : texts) {
    SCOPED_TRACE(text);
    const MergedParse expected = expected_parse(text, {});
    // A prefix of a marker may be cut inside a character; only whole inputs are checked for that.
    const bool whole = utf8::find_invalid(text) == std::string::npos;
    EXPECT_EQ(parse_whole(format(), text, nullptr, whole), expected);
    expect_split_independent(format(), nullptr, text, expected, whole);
  }
}

TEST_P(EveryFormat, TextBeforeAndAfterTheCallsIsContentWithoutTheWhitespaceAroundThem) {
  const Json arguments = {{"city", "Paris"}};
  const std::string text = "Let me check.\n\n" + one_call(arguments) + "\n\nDone. ";
  const MergedParse expected =
      expected_parse("Let me check.Done. ", {{expected_id(format(), "get_weather", 0), "get_weather",
                                              arguments_text(format(), arguments)}});
  EXPECT_EQ(parse_whole(format(), text), expected);
  expect_split_independent(format(), nullptr, text, expected);
}

TEST_P(EveryFormat, TwoCallsInOrder) {
  const Json weather = {{"city", "Paris"}, {"unit", "celsius"}};
  const Json search = {{"query", "news \"today\""}, {"limit", 3}, {"filters", {"a", "b"}}, {"strict", true}};
  const std::string text = section_markup(format(), call_markup(format(), "get_weather", 0, weather) + "\n" +
                                                        call_markup(format(), "web_search", 1, search));
  const MergedParse expected = expected_parse(
      "", {{expected_id(format(), "get_weather", 0), "get_weather", arguments_text(format(), weather)},
           {expected_id(format(), "web_search", 1), "web_search", arguments_text(format(), search)}});
  EXPECT_EQ(parse_whole(format(), text), expected);
  expect_split_independent(format(), nullptr, text, expected);
}

// Call markup without a function name (found by tool_call_fuzz: GLM's "<tool_call><arg_key>"
// gave a call named "") is no call: it is dropped with its arguments, and the next call
// is numbered 0.
TEST_P(EveryFormat, CallWithoutANameIsDropped) {
  const Json arguments = {{"city", "Paris"}};
  const std::string text = section_markup(format(), call_markup(format(), "", 0, arguments) + "\n" +
                                                        call_markup(format(), "get_weather", 1, arguments));
  const MergedParse expected = expected_parse(
      "", {{expected_id(format(), "get_weather", 1), "get_weather", arguments_text(format(), arguments)}});
  EXPECT_EQ(parse_whole(format(), text), expected);
  expect_split_independent(format(), nullptr, text, expected);
  EXPECT_EQ(parse_whole(format(), section_markup(format(), call_markup(format(), "", 0, arguments))),
            expected_parse("", {}));
}

TEST_P(EveryFormat, MarkersAndCharactersSplitAnywhere) {
  const Json arguments = {{"city", "東京 🤖"}, {"note", "é\u00a0ü"}};
  const std::string text = "🤖 東京の天気" + one_call(arguments) + "😀";
  const MergedParse expected = expected_parse(
      "🤖 東京の天気😀", {{expected_id(format(), "get_weather", 0), "get_weather", arguments_text(format(), arguments)}});
  EXPECT_EQ(parse_whole(format(), text), expected);
  expect_split_independent(format(), nullptr, text, expected);  // every delta holds whole characters
}

TEST_P(EveryFormat, MarkerLookalikesInsideArgumentsAreArgumentText) {
  const Json arguments = {{"text", marker_lookalikes(format())}, {"n", 1}};
  const std::string text = one_call(arguments);
  const MergedParse parsed = parse_whole(format(), text);
  ASSERT_EQ(parsed.calls.size(), 1u) << parsed;
  EXPECT_EQ(Json::parse(parsed.calls[0].arguments), arguments);
  EXPECT_EQ(parsed.content, "");
  expect_split_independent(format(), nullptr, text, parsed);
}

// Cut at every byte, as max_tokens does: never a throw; a call appears once its name is
// complete, with arguments that are a prefix of the whole call's; markup is never content,
// except the start of a marker that the answer's end leaves unfinished.
TEST_P(EveryFormat, CallCutOffAtAnyByte) {
  const Json arguments = {{"city", "Paris"}, {"unit", "celsius"}};
  const std::string text = one_call(arguments);
  const MergedParse whole = parse_whole(format(), text);
  ASSERT_EQ(whole.calls.size(), 1u);
  const std::string marker = begin_marker(format());
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    const std::string prefix = text.substr(0, cut);
    const MergedParse parsed = parse_whole(format(), prefix, nullptr, /*whole_characters=*/false);
    SCOPED_TRACE(prefix);
    EXPECT_EQ(parsed.content, cut < marker.size() ? prefix : "");
    ASSERT_LE(parsed.calls.size(), 1u);
    if (parsed.calls.empty()) continue;
    EXPECT_EQ(parsed.calls[0].name, "get_weather");
    EXPECT_TRUE(whole.calls[0].arguments.starts_with(parsed.calls[0].arguments)) << parsed.calls[0].arguments;
    EXPECT_EQ(parse_pieces(format(), nullptr, testing::pieces_of(prefix, 1), false), parsed);
  }
}

// Random bytes, and random sequences of marker pieces and JSON punctuation: no throw, and
// the same result however the text arrives.
TEST_P(EveryFormat, GarbageNeverThrowsAndDoesNotDependOnSplits) {
  std::mt19937 random(7);
  const std::vector<std::string> pieces = {
      begin_marker(format()), "<｜tool▁call▁begin｜>", "<｜tool▁sep｜>", "<｜tool▁call▁end｜>", "<｜tool▁calls▁end｜>",
      "<|tool_call_begin|>", "<|tool_call_argument_begin|>", "<|tool_call_end|>", "<|tool_calls_section_end|>",
      "<tool_call>", "</tool_call>", "<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>", "<invoke name=",
      "</invoke>", "<parameter name=", "</parameter>", "</minimax:tool_call>", "functions.f:1", "get_weather",
      "\"", "\\", "{", "}", "[", "]", ":", ",", " ", "\n", "```json", ">", "<", "<｜", "é", "\xE6\x9D", "\xB1",
      "\xFF", "42", "true", "text"};
  std::uniform_int_distribution<size_t> pick(0, pieces.size() - 1);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int round = 0; round < 300; ++round) {
    std::string text;
    const int count = 1 + round % 40;
    for (int i = 0; i < count; ++i) {
      if (round % 3 == 0) {
        text += static_cast<char>(byte(random));
      } else {
        text += pieces[pick(random)];
      }
    }
    SCOPED_TRACE(::testing::Message() << "round " << round);
    const MergedParse whole = parse_whole(format(), text, nullptr, /*whole_characters=*/false);
    expect_split_independent(format(), nullptr, text, whole, /*whole_characters=*/false, /*random_chunkings=*/3);
  }
}

double seconds_to_parse(ToolCallFormat format, const std::string& text) {
  std::mt19937 random(11);
  const auto pieces = testing::random_pieces(text, random, 7);
  const auto start = std::chrono::steady_clock::now();
  auto parser = make_tool_call_parser(format, nullptr);
  for (std::string_view piece : pieces) parser->append(piece);
  parser->finish();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// 1 MiB in pieces of 1-7 bytes: quadratic rescanning would take minutes.
TEST_P(EveryFormat, LargeInputsInSmallPiecesTakeLinearTime) {
  const size_t size = 1 << 20;
  std::string content;
  while (content.size() < size) content += "Plain text, <b>tags</b> and < signs, 東京. ";
  EXPECT_LT(seconds_to_parse(format(), content), 10.0);
  EXPECT_LT(seconds_to_parse(format(), std::string(size, ' ') + one_call({{"city", "Paris"}})), 10.0);
  EXPECT_LT(seconds_to_parse(format(), one_call({{"text", content}})), 10.0);
  std::string unterminated = one_call({{"text", content}});
  EXPECT_LT(seconds_to_parse(format(), unterminated.substr(0, unterminated.size() / 2)), 10.0);
}

INSTANTIATE_TEST_SUITE_P(Formats, EveryFormat,
                         ::testing::Values(ToolCallFormat::DeepSeekV3, ToolCallFormat::DeepSeekV31,
                                           ToolCallFormat::KimiK2, ToolCallFormat::Glm45, ToolCallFormat::MiniMaxM2),
                         [](const ::testing::TestParamInfo<ToolCallFormat>& info) {
                           return std::string(tool_call_format_name(info.param));
                         });

}  // namespace
}  // namespace rackserve::text
