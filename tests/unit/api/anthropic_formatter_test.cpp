// Anthropic Messages responses: content blocks from parsed deltas (thinking, text, tool_use
// in order, one open at a time), the named SSE event sequence (message_start, ping, block
// events, message_delta, message_stop) replayed the way the SDKs accumulate it, stop
// reasons, Anthropic's usage split, engine errors and aborts, and the non-stream message
// equal to what the stream builds.
#include <gtest/gtest.h>

#include "api/anthropic_content_blocks.h"
#include "api/anthropic_formatter.h"
#include "api/api_error.h"

namespace rackserve::api {
namespace {

using nlohmann::json;

const ResponseHeader kHeader{"msg_1", 1700000000, "tiny"};

struct Event {
  std::string name;
  json data;
};

// Splits SSE text into named events; every event is "event: X\ndata: {…}" with data.type X.
std::vector<Event> parse_events(const std::string& sse) {
  std::vector<Event> events;
  size_t at = 0;
  while (at < sse.size()) {
    size_t end = sse.find("\n\n", at);
    EXPECT_NE(end, std::string::npos) << sse.substr(at);
    if (end == std::string::npos) break;
    const std::string text = sse.substr(at, end - at);
    const size_t newline = text.find('\n');
    EXPECT_EQ(text.rfind("event: ", 0), 0u) << text;
    EXPECT_EQ(text.compare(newline + 1, 6, "data: "), 0) << text;
    Event event{text.substr(7, newline - 7), json::parse(text.substr(newline + 7))};
    EXPECT_EQ(event.data["type"], event.name);
    events.push_back(std::move(event));
    at = end + 2;
  }
  return events;
}

// Rebuilds the message from a complete stream as the SDKs do, checking Anthropic's order:
// message_start, ping, then per block start / deltas / stop with indexes 0, 1, … (a block
// is stopped before the next starts), then message_delta and message_stop.
json replay(const std::vector<Event>& events) {
  EXPECT_GE(events.size(), 4u);
  if (events.size() < 4) return nullptr;
  EXPECT_EQ(events[0].name, "message_start");
  EXPECT_EQ(events[1].name, "ping");
  json message = events[0].data["message"];
  EXPECT_EQ(message["content"], json::array());
  EXPECT_TRUE(message["stop_reason"].is_null());
  std::vector<std::string> partial_json;
  bool block_open = false;
  size_t i = 2;
  for (; i < events.size() && events[i].name.rfind("content_block_", 0) == 0; ++i) {
    const json& data = events[i].data;
    const size_t index = data["index"].get<size_t>();
    if (events[i].name == "content_block_start") {
      EXPECT_FALSE(block_open) << "a block started before the previous one stopped";
      EXPECT_EQ(index, message["content"].size());
      message["content"].push_back(data["content_block"]);
      partial_json.emplace_back();
      block_open = true;
      continue;
    }
    EXPECT_TRUE(block_open);
    EXPECT_EQ(index + 1, message["content"].size()) << "only the open block changes";
    if (events[i].name == "content_block_stop") {
      if (message["content"][index]["type"] == "tool_use" && !partial_json[index].empty())
        message["content"][index]["input"] = json::parse(partial_json[index]);  // whole once the block stops
      block_open = false;
      continue;
    }
    EXPECT_EQ(events[i].name, "content_block_delta");
    json& block = message["content"][index];
    const json& delta = data["delta"];
    const std::string type = delta["type"];
    if (type == "text_delta") {
      EXPECT_EQ(block["type"], "text");
      block["text"] = block["text"].get<std::string>() + delta["text"].get<std::string>();
    } else if (type == "thinking_delta") {
      EXPECT_EQ(block["type"], "thinking");
      block["thinking"] = block["thinking"].get<std::string>() + delta["thinking"].get<std::string>();
    } else if (type == "signature_delta") {
      EXPECT_EQ(block["type"], "thinking");
      block["signature"] = delta["signature"];
    } else if (type == "input_json_delta") {
      EXPECT_EQ(block["type"], "tool_use");
      partial_json[index] += delta["partial_json"].get<std::string>();
    } else {
      ADD_FAILURE() << "unknown delta " << delta;
    }
  }
  EXPECT_FALSE(block_open) << "the last block was not stopped";
  EXPECT_EQ(i + 2, events.size()) << "message_delta and message_stop end the stream";
  if (i + 2 != events.size()) return nullptr;
  EXPECT_EQ(events[i].name, "message_delta");
  message["stop_reason"] = events[i].data["delta"]["stop_reason"];
  message["stop_sequence"] = events[i].data["delta"]["stop_sequence"];
  for (const auto& [key, value] : events[i].data["usage"].items()) message["usage"][key] = value;
  EXPECT_EQ(events[i + 1].name, "message_stop");
  return message;
}

SequenceDelta delta(std::string text, std::optional<FinishReason> finish = std::nullopt) {
  SequenceDelta result;
  result.text = std::move(text);
  result.token_ids = {1};
  result.finish_reason = finish;
  return result;
}

// Streams `pieces` as one output each (the last finishing with `finish`), returns the SSE.
std::string stream(AnthropicFormatter& formatter, const std::vector<std::string>& pieces, FinishReason finish,
                   Usage usage = {.prompt_tokens = 10, .completion_tokens = 3, .cached_prompt_tokens = 0}) {
  std::string sse = formatter.stream_start();
  for (size_t i = 0; i < pieces.size(); ++i) {
    RequestOutput output;
    const bool last = i + 1 == pieces.size();
    output.sequences.push_back(delta(pieces[i], last ? std::optional(finish) : std::nullopt));
    output.finished = last;
    output.usage = usage;
    sse += formatter.stream_output(output);
  }
  return sse;
}

json full(AnthropicFormatOptions options, const std::string& text, FinishReason finish,
          Usage usage = {.prompt_tokens = 10, .completion_tokens = 3, .cached_prompt_tokens = 0}) {
  AnthropicFormatter formatter(kHeader, std::move(options));
  RequestOutput merged;
  merged.sequences.push_back(delta(text, finish));
  merged.finished = true;
  merged.usage = usage;
  return formatter.full_response(merged);
}

text::ToolCallDelta call(int32_t index, std::string name, std::string arguments) {
  return {.index = index, .id = {}, .name = std::move(name), .arguments = std::move(arguments)};
}

TEST(AnthropicContentBlocks, BlocksFollowTheAnswerOneOpenAtATime) {
  AnthropicContentBlocks blocks;
  std::vector<json> events;
  auto add = [&](std::vector<json> more) { events.insert(events.end(), more.begin(), more.end()); };
  add(blocks.append({.reasoning = "Plan", .content = {}, .tool_calls = {}}));
  add(blocks.append({.reasoning = " more", .content = "Sure.", .tool_calls = {call(0, "read", "{\"pa")}}));
  // The rest of call 0 comes before the text that follows it, then call 1 starts.
  add(blocks.append({.reasoning = {}, .content = "Then", .tool_calls = {call(0, "", "th\": 1}"), call(1, "ls", "")}}));
  add(blocks.append({.reasoning = {}, .content = {}, .tool_calls = {call(1, "", "{}")}}));
  add(blocks.finish());

  std::vector<std::string> summary;
  for (const json& event : events) {
    std::string line = event["type"].get<std::string>() + " " + std::to_string(event["index"].get<int>());
    if (event.contains("content_block")) line += " " + event["content_block"]["type"].get<std::string>();
    if (event.contains("delta")) line += " " + event["delta"]["type"].get<std::string>();
    summary.push_back(line);
  }
  const std::vector<std::string> expected = {
      "content_block_start 0 thinking", "content_block_delta 0 thinking_delta", "content_block_delta 0 thinking_delta",
      "content_block_delta 0 signature_delta", "content_block_stop 0",
      "content_block_start 1 text", "content_block_delta 1 text_delta", "content_block_stop 1",
      "content_block_start 2 tool_use", "content_block_delta 2 input_json_delta",
      "content_block_delta 2 input_json_delta", "content_block_stop 2",
      "content_block_start 3 text", "content_block_delta 3 text_delta", "content_block_stop 3",
      "content_block_start 4 tool_use", "content_block_delta 4 input_json_delta", "content_block_stop 4"};
  EXPECT_EQ(summary, expected);
  EXPECT_EQ(events[0]["content_block"], json::parse(R"({"type": "thinking", "thinking": "", "signature": ""})"));
  EXPECT_EQ(events[8]["content_block"]["name"], "read");
  EXPECT_EQ(events[8]["content_block"]["input"], json::object());
  EXPECT_EQ(events[8]["content_block"]["id"].get<std::string>().rfind("toolu_", 0), 0u);

  const json content = blocks.content();
  ASSERT_EQ(content.size(), 5u);
  EXPECT_EQ(content[0], json::parse(R"({"type": "thinking", "thinking": "Plan more", "signature": ""})"));
  EXPECT_EQ(content[1], json::parse(R"({"type": "text", "text": "Sure."})"));
  EXPECT_EQ(content[2]["input"], json::parse(R"({"path": 1})"));
  EXPECT_EQ(content[2]["id"], events[8]["content_block"]["id"]);
  EXPECT_EQ(content[3]["text"], "Then");
  EXPECT_EQ(content[4]["name"], "ls");
  EXPECT_NE(content[4]["id"], content[2]["id"]);
}

TEST(AnthropicContentBlocks, ModelWrittenIdsAreKeptAndCutArgumentsGiveAnEmptyInput) {
  AnthropicContentBlocks blocks;
  text::ToolCallDelta first = call(0, "search", "{\"q\": \"unfinis");
  first.id = "functions.search:0";
  blocks.append({.reasoning = {}, .content = {}, .tool_calls = {first}});
  blocks.finish();
  const json content = blocks.content();
  EXPECT_EQ(content[0]["id"], "functions.search:0");
  EXPECT_EQ(content[0]["input"], json::object());
  EXPECT_TRUE(AnthropicContentBlocks().content().empty());
}

// Found in review after fuzzing: arguments the model nested 100,000 deep were parsed whole
// and overflowed the stack once the response was copied and serialized. Past 256 levels
// they read as not an object, as cut arguments do.
TEST(AnthropicContentBlocks, DeeplyNestedArgumentsGiveAnEmptyInput) {
  const auto input_of = [](const std::string& arguments) {
    AnthropicContentBlocks blocks;
    blocks.append({.reasoning = {}, .content = {}, .tool_calls = {call(0, "f", arguments)}});
    blocks.finish();
    const json content = blocks.content();
    EXPECT_FALSE(content.dump().empty());
    return content[0]["input"];
  };
  const auto nested = [](size_t levels) {
    return "{\"a\": " + std::string(levels, '[') + std::string(levels, ']') + "}";
  };
  EXPECT_EQ(input_of(nested(100000)), json::object());
  EXPECT_EQ(input_of(nested(255)), json::parse(nested(255)));
}

TEST(AnthropicFormatter, StreamsTheEventSequenceAndEndsAtMaxTokens) {
  AnthropicFormatter formatter(kHeader, {.output = {}, .prompt_tokens = 10});
  const std::string sse = stream(formatter, {"Hel", "", "lo"}, FinishReason::Length);
  const auto events = parse_events(sse);
  const json message = replay(events);
  EXPECT_EQ(events[0].data["message"]["id"], "msg_1");
  EXPECT_EQ(events[0].data["message"]["model"], "tiny");
  EXPECT_EQ(events[0].data["message"]["role"], "assistant");
  EXPECT_EQ(events[0].data["message"]["usage"]["input_tokens"], 10) << "message_start reports the prompt at once";
  EXPECT_EQ(message["content"], json::parse(R"([{"type": "text", "text": "Hello"}])"));
  EXPECT_EQ(message["stop_reason"], "max_tokens");
  EXPECT_TRUE(message["stop_sequence"].is_null());
  EXPECT_EQ(message["usage"]["output_tokens"], 3);
  EXPECT_EQ(message["usage"]["input_tokens"], 10);
  EXPECT_EQ(events.size(), 8u) << sse;  // start, ping, block start, 2 deltas, block stop, message delta, stop
}

TEST(AnthropicFormatter, NonStreamMessage) {
  const json message = full({}, "Hello there", FinishReason::Stop);
  EXPECT_EQ(message, json::parse(R"({"id": "msg_1", "type": "message", "role": "assistant", "model": "tiny",
      "content": [{"type": "text", "text": "Hello there"}], "stop_reason": "end_turn", "stop_sequence": null,
      "usage": {"input_tokens": 10, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 3}})"));
  EXPECT_EQ(full({}, "", FinishReason::Stop)["content"], json::array()) << "an empty answer has no blocks";
}

TEST(AnthropicFormatter, StopReasons) {
  AnthropicFormatter formatter(kHeader, {});
  RequestOutput merged;
  merged.sequences.push_back(delta("Once upon", FinishReason::Stop));
  merged.sequences[0].stop_reason = std::string("END");
  merged.finished = true;
  json message = formatter.full_response(merged);
  EXPECT_EQ(message["stop_reason"], "stop_sequence");
  EXPECT_EQ(message["stop_sequence"], "END");
  merged.sequences[0].stop_reason = int32_t{2};  // EOS
  EXPECT_EQ(AnthropicFormatter(kHeader, {}).full_response(merged)["stop_reason"], "end_turn");
  EXPECT_TRUE(AnthropicFormatter(kHeader, {}).full_response(merged)["stop_sequence"].is_null());
  EXPECT_EQ(full({.output = {}, .prompt_tokens = 0, .max_tokens_shortened = true}, "x", FinishReason::Length)["stop_reason"],
            "model_context_window_exceeded");

  AnthropicFormatter streamed(kHeader, {});
  RequestOutput output;
  output.sequences.push_back(delta("a", FinishReason::Stop));
  output.sequences[0].stop_reason = std::string("\n\n");
  output.finished = true;
  const json replayed = replay(parse_events(streamed.stream_start() + streamed.stream_output(output)));
  EXPECT_EQ(replayed["stop_reason"], "stop_sequence");
  EXPECT_EQ(replayed["stop_sequence"], "\n\n");
}

TEST(AnthropicFormatter, UsageSplitsCachedPromptTokens) {
  const Usage usage{.prompt_tokens = 100, .completion_tokens = 5, .cached_prompt_tokens = 64};
  EXPECT_EQ(full({}, "x", FinishReason::Stop, usage)["usage"],
            json::parse(R"({"input_tokens": 36, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 64, "output_tokens": 5})"));
  AnthropicFormatter formatter(kHeader, {.output = {}, .prompt_tokens = 100});
  const auto events = parse_events(stream(formatter, {"x"}, FinishReason::Stop, usage));
  EXPECT_EQ(events.front().data["message"]["usage"]["input_tokens"], 100);
  EXPECT_EQ(events[events.size() - 2].data["usage"]["input_tokens"], 36) << "message_delta corrects it";
  EXPECT_EQ(events[events.size() - 2].data["usage"]["cache_read_input_tokens"], 64);
}

AnthropicFormatOptions reasoning_options(bool starts_in_reasoning) {
  AnthropicFormatOptions options;
  options.output.split_reasoning = true;
  options.output.starts_in_reasoning = starts_in_reasoning;
  return options;
}

TEST(AnthropicFormatter, ReasoningBecomesAThinkingBlockWithAnEmptySignature) {
  const AnthropicFormatOptions options = reasoning_options(false);
  AnthropicFormatter formatter(kHeader, options);
  const auto events = parse_events(stream(formatter, {"<thi", "nk>pl", "an</th", "ink>Hi", " there"}, FinishReason::Stop));
  const json streamed = replay(events);
  EXPECT_EQ(streamed["content"], json::parse(R"([{"type": "thinking", "thinking": "plan", "signature": ""},
                                                 {"type": "text", "text": "Hi there"}])"));
  const json whole = full(options, "<think>plan</think>Hi there", FinishReason::Stop);
  EXPECT_EQ(whole["content"], streamed["content"]);
  EXPECT_EQ(whole["stop_reason"], "end_turn");

  // A prompt that already opened <think>: the answer starts inside the reasoning.
  const json opened = full(reasoning_options(true), "hmm</think>Yes", FinishReason::Stop);
  EXPECT_EQ(opened["content"][0]["thinking"], "hmm");
  EXPECT_EQ(opened["content"][1]["text"], "Yes");
}

// A DeepSeek-V3 answer with text and two tool calls, in its chat template's format.
const std::string kDeepSeekAnswer =
    "Let me look.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>read_file\n```json\n"
    "{\"path\": \"a.txt\"}\n```<｜tool▁call▁end｜>\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>list_dir\n"
    "```json\n{\"dir\": \".\", \"depth\": 2}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>";

AnthropicFormatOptions deepseek_tools() {
  return {.output = {.tool_call_format = text::ToolCallFormat::DeepSeekV3, .tools = json::array()}};
}

TEST(AnthropicFormatter, ToolCallsBecomeToolUseBlocksStreamedAsInputJson) {
  AnthropicFormatter formatter(kHeader, deepseek_tools());
  std::vector<std::string> pieces;
  for (size_t at = 0; at < kDeepSeekAnswer.size(); at += 7) pieces.push_back(kDeepSeekAnswer.substr(at, 7));
  const auto events = parse_events(stream(formatter, pieces, FinishReason::Stop));
  const json streamed = replay(events);
  ASSERT_EQ(streamed["content"].size(), 3u) << streamed;
  EXPECT_EQ(streamed["content"][0], json::parse(R"({"type": "text", "text": "Let me look."})"));
  EXPECT_EQ(streamed["content"][1]["type"], "tool_use");
  EXPECT_EQ(streamed["content"][1]["name"], "read_file");
  EXPECT_EQ(streamed["content"][1]["input"], json::parse(R"({"path": "a.txt"})"));
  EXPECT_EQ(streamed["content"][2]["name"], "list_dir");
  EXPECT_EQ(streamed["content"][2]["input"], json::parse(R"({"dir": ".", "depth": 2})"));
  EXPECT_EQ(streamed["stop_reason"], "tool_use");
  size_t json_deltas = 0;
  for (const auto& event : events)
    if (event.name == "content_block_delta" && event.data["delta"]["type"] == "input_json_delta") ++json_deltas;
  EXPECT_GE(json_deltas, 2u);

  const json whole = full(deepseek_tools(), kDeepSeekAnswer, FinishReason::Stop);
  ASSERT_EQ(whole["content"].size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    json a = whole["content"][i], b = streamed["content"][i];
    a.erase("id");
    b.erase("id");
    EXPECT_EQ(a, b) << i;
  }
  EXPECT_EQ(whole["content"][1]["id"].get<std::string>().rfind("toolu_", 0), 0u);
  EXPECT_EQ(whole["stop_reason"], "tool_use");
  // Cut by max_tokens inside the second call: max_tokens, not tool_use.
  const json cut = full(deepseek_tools(), kDeepSeekAnswer.substr(0, kDeepSeekAnswer.find("\"depth\"")), FinishReason::Length);
  EXPECT_EQ(cut["stop_reason"], "max_tokens");
  EXPECT_EQ(cut["content"][1]["name"], "read_file");
}

TEST(AnthropicFormatter, WithoutToolsTheMarkupStaysText) {
  const json message = full({}, kDeepSeekAnswer, FinishReason::Stop);
  ASSERT_EQ(message["content"].size(), 1u);
  EXPECT_EQ(message["content"][0]["text"], kDeepSeekAnswer);
  EXPECT_EQ(message["stop_reason"], "end_turn");
}

TEST(AnthropicFormatter, AnEngineErrorEndsTheStreamWithAnErrorEvent) {
  AnthropicFormatter formatter(kHeader, {});
  std::string sse = formatter.stream_start();
  RequestOutput first;
  first.sequences.push_back(delta("Partial"));
  sse += formatter.stream_output(first);
  RequestOutput failed;
  failed.sequences.push_back(delta("", FinishReason::Error));
  failed.finished = true;
  failed.error = "device lost";
  sse += formatter.stream_output(failed);
  const auto events = parse_events(sse);
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events.back().name, "error");
  EXPECT_EQ(events.back().data["error"]["type"], "api_error");
  EXPECT_NE(events.back().data["error"]["message"].get<std::string>().find("device lost"), std::string::npos);
  EXPECT_EQ(events[events.size() - 2].name, "content_block_stop") << "the open block is closed first";
  for (const auto& event : events) EXPECT_NE(event.name, "message_stop");
}

TEST(AnthropicFormatter, AnAbortedRequestIsAnOverloadErrorNotAnEndTurn) {
  AnthropicFormatter formatter(kHeader, {});
  const auto events = parse_events(stream(formatter, {"Par", "tial"}, FinishReason::Abort));
  EXPECT_EQ(events.back().name, "error");
  EXPECT_EQ(events.back().data["error"]["type"], "overloaded_error");
  try {
    full({}, "Partial", FinishReason::Abort);
    ADD_FAILURE() << "an aborted non-stream request must not look finished";
  } catch (const ApiError& error) {
    EXPECT_EQ(error.status(), 503);
  }
}

}  // namespace
}  // namespace rackserve::api
