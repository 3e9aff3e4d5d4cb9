// Response formatting: the SSE event sequence of a streamed chat (role chunk, deltas,
// finish chunk, usage, [DONE]), reasoning split across outputs, tool calls in OpenAI's
// stream and message shapes, engine errors as error events, non-stream objects, and
// completions logprobs offsets.
#include <gtest/gtest.h>

#include "api/chat_formatter.h"
#include "api/completion_formatter.h"

namespace rackserve::api {
namespace {

const ResponseHeader kHeader{"chatcmpl-1", 1700000000, "tiny"};
std::string token_text(int32_t id) { return "t" + std::to_string(id); }

std::vector<nlohmann::json> parse_events(const std::string& sse, bool& done) {
  std::vector<nlohmann::json> events;
  done = false;
  size_t at = 0;
  while (at < sse.size()) {
    size_t end = sse.find("\n\n", at);
    EXPECT_NE(end, std::string::npos);
    std::string event = sse.substr(at, end - at);
    EXPECT_EQ(event.rfind("data: ", 0), 0u) << event;
    EXPECT_EQ(event.find('\n'), std::string::npos);
    std::string data = event.substr(6);
    EXPECT_FALSE(done) << "event after [DONE]";
    if (data == "[DONE]")
      done = true;
    else
      events.push_back(nlohmann::json::parse(data));
    at = end + 2;
  }
  return events;
}

SequenceDelta delta(int32_t index, std::string text, std::vector<int32_t> tokens) {
  SequenceDelta result;
  result.index = index;
  result.text = std::move(text);
  result.token_ids = std::move(tokens);
  return result;
}

TEST(ChatFormatter, StreamsRoleDeltasFinishUsageDone) {
  ChatFormatter formatter(kHeader, {.n = 1, .include_usage = true}, token_text);
  std::string sse = formatter.stream_start();
  RequestOutput first;
  first.sequences.push_back(delta(0, "Hel", {5}));
  sse += formatter.stream_output(first);
  RequestOutput last;
  last.sequences.push_back(delta(0, "lo", {6}));
  last.sequences[0].finish_reason = FinishReason::Length;
  last.usage = {.prompt_tokens = 4, .completion_tokens = 2};
  last.finished = true;
  sse += formatter.stream_output(last);

  bool done = false;
  auto events = parse_events(sse, done);
  EXPECT_TRUE(done);
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[0]["choices"][0]["delta"], (nlohmann::json{{"role", "assistant"}, {"content", ""}}));
  EXPECT_EQ(events[1]["choices"][0]["delta"]["content"], "Hel");
  EXPECT_EQ(events[2]["choices"][0]["delta"]["content"], "lo");
  EXPECT_TRUE(events[2]["choices"][0]["finish_reason"].is_null());
  EXPECT_EQ(events[3]["choices"][0]["delta"], nlohmann::json::object());
  EXPECT_EQ(events[3]["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(events[4]["choices"], nlohmann::json::array());
  EXPECT_EQ(events[4]["usage"]["total_tokens"], 6);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_TRUE(events[i]["usage"].is_null());
    EXPECT_EQ(events[i]["object"], "chat.completion.chunk");
    EXPECT_EQ(events[i]["id"], "chatcmpl-1");
    EXPECT_EQ(events[i]["model"], "tiny");
  }
}

TEST(ChatFormatter, WithoutIncludeUsageThereIsNoUsageField) {
  ChatFormatter formatter(kHeader, {.n = 2}, token_text);
  bool done = false;
  auto events = parse_events(formatter.stream_start(), done);
  ASSERT_EQ(events.size(), 2u);  // one role chunk per choice
  EXPECT_EQ(events[1]["choices"][0]["index"], 1);
  EXPECT_FALSE(events[0].contains("usage"));
}

TEST(ChatFormatter, ReasoningIsSplitAcrossOutputsAndInFullResponses) {
  ChatFormatter formatter(kHeader, {.n = 1, .output = {.split_reasoning = true}}, token_text);
  std::string reasoning, content;
  for (const char* piece : {"<thi", "nk>plan</th", "ink>ok"}) {
    RequestOutput output;
    output.sequences.push_back(delta(0, piece, {1}));
    bool done = false;
    for (const auto& event : parse_events(formatter.stream_output(output), done)) {
      const auto& d = event["choices"][0]["delta"];
      if (d.contains("reasoning_content")) reasoning += d["reasoning_content"].get<std::string>();
      if (d.contains("content")) content += d["content"].get<std::string>();
    }
  }
  EXPECT_EQ(reasoning, "plan");
  EXPECT_EQ(content, "ok");

  RequestOutput merged;
  merged.sequences.push_back(delta(0, "<think>plan</think>ok", {1, 2}));
  merged.sequences[0].finish_reason = FinishReason::Stop;
  merged.sequences[0].stop_reason = int32_t{1};
  nlohmann::json full = formatter.full_response(merged);
  EXPECT_EQ(full["object"], "chat.completion");
  EXPECT_EQ(full["choices"][0]["message"]["reasoning_content"], "plan");
  EXPECT_EQ(full["choices"][0]["message"]["content"], "ok");
  EXPECT_EQ(full["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(full["choices"][0]["stop_reason"], 1);
}

// A DeepSeek-V3 answer that calls two tools, in the format its chat template renders
// assistant tool calls in (text::ToolCallFormat::DeepSeekV3).
const std::string kDeepSeekTwoCalls =
    "Checking.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n"
    "{\"city\": \"Paris\"}\n```<｜tool▁call▁end｜>\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>web_search\n"
    "```json\n{\"query\": \"jinja\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>";

ChatFormatOptions deepseek_tools() {
  return {.n = 1,
          .output = {.tool_call_format = text::ToolCallFormat::DeepSeekV3, .tools = nlohmann::json::array()}};
}

TEST(ChatFormatter, StreamedToolCallsCarryIdTypeAndNameFirstThenArguments) {
  ChatFormatter formatter(kHeader, deepseek_tools(), token_text);
  std::string sse;
  // A few bytes at a time, so markers and arguments arrive in pieces.
  for (size_t at = 0; at < kDeepSeekTwoCalls.size(); at += 5) {
    RequestOutput output;
    output.sequences.push_back(delta(0, kDeepSeekTwoCalls.substr(at, 5), {1}));
    if (at + 5 >= kDeepSeekTwoCalls.size()) {
      output.sequences[0].finish_reason = FinishReason::Stop;
      output.finished = true;
    }
    sse += formatter.stream_output(output);
  }
  bool done = false;
  std::string content;
  nlohmann::json calls = nlohmann::json::array();  // merged as the OpenAI SDKs merge them
  nlohmann::json finish_reason;
  for (const auto& event : parse_events(sse, done)) {
    const auto& choice = event["choices"][0];
    if (!choice["finish_reason"].is_null()) finish_reason = choice["finish_reason"];
    const auto& d = choice["delta"];
    if (d.contains("content")) content += d["content"].get<std::string>();
    if (!d.contains("tool_calls")) continue;
    for (const auto& call : d["tool_calls"]) {
      const size_t index = call["index"].get<size_t>();
      if (index == calls.size()) {
        ASSERT_TRUE(call.contains("id") && call["type"] == "function" && call["function"].contains("name")) << call;
        calls.push_back({{"id", call["id"]}, {"name", call["function"]["name"]}, {"arguments", ""}});
      } else {
        ASSERT_LT(index, calls.size());
        EXPECT_FALSE(call.contains("id")) << "only a call's first delta carries its id";
      }
      calls[index]["arguments"] = calls[index]["arguments"].get<std::string>() + call["function"]["arguments"].get<std::string>();
    }
  }
  EXPECT_TRUE(done);
  EXPECT_EQ(content, "Checking.");
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0]["name"], "get_weather");
  EXPECT_EQ(nlohmann::json::parse(calls[0]["arguments"].get<std::string>()), (nlohmann::json{{"city", "Paris"}}));
  EXPECT_EQ(calls[1]["name"], "web_search");
  EXPECT_EQ(nlohmann::json::parse(calls[1]["arguments"].get<std::string>()), (nlohmann::json{{"query", "jinja"}}));
  EXPECT_NE(calls[0]["id"], calls[1]["id"]);
  EXPECT_EQ(calls[0]["id"].get<std::string>().rfind("call_", 0), 0u);
  EXPECT_EQ(finish_reason, "tool_calls");
}

TEST(ChatFormatter, FullResponseHoldsWholeToolCalls) {
  ChatFormatter formatter(kHeader, deepseek_tools(), token_text);
  RequestOutput merged;
  merged.sequences.push_back(delta(0, kDeepSeekTwoCalls.substr(kDeepSeekTwoCalls.find("<｜tool▁calls▁begin｜>")), {1, 2}));
  merged.sequences[0].finish_reason = FinishReason::Stop;
  nlohmann::json message = formatter.full_response(merged)["choices"][0]["message"];
  EXPECT_TRUE(message["content"].is_null()) << "a message of tool calls only has null content, as OpenAI's";
  ASSERT_EQ(message["tool_calls"].size(), 2u);
  EXPECT_EQ(message["tool_calls"][1]["type"], "function");
  EXPECT_EQ(message["tool_calls"][1]["function"]["name"], "web_search");
  EXPECT_EQ(nlohmann::json::parse(message["tool_calls"][1]["function"]["arguments"].get<std::string>()),
            (nlohmann::json{{"query", "jinja"}}));
  EXPECT_EQ(formatter.full_response(merged)["choices"][0]["finish_reason"], "tool_calls");
}

TEST(ChatFormatter, WithoutAToolFormatMarkupStaysInTheContent) {
  ChatFormatter formatter(kHeader, {.n = 1}, token_text);
  RequestOutput merged;
  merged.sequences.push_back(delta(0, kDeepSeekTwoCalls, {1}));
  merged.sequences[0].finish_reason = FinishReason::Stop;
  nlohmann::json choice = formatter.full_response(merged)["choices"][0];
  EXPECT_EQ(choice["message"]["content"], kDeepSeekTwoCalls);
  EXPECT_FALSE(choice["message"].contains("tool_calls"));
  EXPECT_EQ(choice["finish_reason"], "stop");
}

TEST(ChatFormatter, ACallCutByMaxTokensFinishesWithLength) {
  ChatFormatter formatter(kHeader, deepseek_tools(), token_text);
  RequestOutput merged;
  merged.sequences.push_back(delta(0, kDeepSeekTwoCalls.substr(0, kDeepSeekTwoCalls.find("web_search")), {1}));
  merged.sequences[0].finish_reason = FinishReason::Length;
  nlohmann::json choice = formatter.full_response(merged)["choices"][0];
  EXPECT_EQ(choice["finish_reason"], "length");
  EXPECT_EQ(choice["message"]["tool_calls"][0]["function"]["name"], "get_weather");
}

// tool_choice naming a function: the constrained answer is that call's arguments, no markup.
ChatFormatOptions forced_call(const std::string& name) {
  ChatFormatOptions options{.n = 1};
  options.output.forced_tool_call_name = name;
  return options;
}
const std::string kForcedArguments = R"({"city": "Paris", "days": 3})";

TEST(ChatFormatter, ForcedToolCallIsTheWholeMessage) {
  ChatFormatter formatter(kHeader, forced_call("get_weather"), token_text);
  RequestOutput merged;
  merged.sequences.push_back(delta(0, kForcedArguments, {1, 2}));
  merged.sequences[0].finish_reason = FinishReason::Stop;
  nlohmann::json choice = formatter.full_response(merged)["choices"][0];
  const nlohmann::json& message = choice["message"];
  EXPECT_TRUE(message["content"].is_null());
  EXPECT_FALSE(message.contains("reasoning_content"));
  ASSERT_EQ(message["tool_calls"].size(), 1u);
  const nlohmann::json& call = message["tool_calls"][0];
  EXPECT_EQ(call["id"].get<std::string>().rfind("call_", 0), 0u) << call;
  EXPECT_EQ(call["type"], "function");
  EXPECT_EQ(call["function"]["name"], "get_weather");
  EXPECT_EQ(call["function"]["arguments"], kForcedArguments) << "the generated text, unchanged";
  EXPECT_EQ(choice["finish_reason"], "stop") << "OpenAI finishes a forced call with stop, not tool_calls";
}

TEST(ChatFormatter, ForcedToolCallStreamsAsOneCallsDeltas) {
  ChatFormatter formatter(kHeader, forced_call("get_weather"), token_text);
  std::string sse = formatter.stream_start();
  // Markup of a model family stays arguments text: nothing is parsed under a forced call.
  const std::string answer = kForcedArguments + "<think>";
  for (size_t at = 0; at < answer.size(); at += 4) {
    RequestOutput output;
    output.sequences.push_back(delta(0, answer.substr(at, 4), {1}));
    if (at + 4 >= answer.size()) {
      output.sequences[0].finish_reason = FinishReason::Length;
      output.finished = true;
    }
    sse += formatter.stream_output(output);
  }
  bool done = false;
  auto events = parse_events(sse, done);
  EXPECT_TRUE(done);
  std::string arguments;
  std::string content;
  size_t call_deltas = 0;
  nlohmann::json finish_reason;
  for (const auto& event : events) {
    const auto& choice = event["choices"][0];
    if (!choice["finish_reason"].is_null()) finish_reason = choice["finish_reason"];
    const auto& d = choice["delta"];
    if (d.contains("content")) content += d["content"].get<std::string>();
    if (!d.contains("tool_calls")) continue;
    ASSERT_EQ(d["tool_calls"].size(), 1u);
    const auto& call = d["tool_calls"][0];
    EXPECT_EQ(call["index"], 0);
    if (call_deltas++ == 0) {
      EXPECT_EQ(call["id"].get<std::string>().rfind("call_", 0), 0u) << call;
      EXPECT_EQ(call["type"], "function");
      EXPECT_EQ(call["function"]["name"], "get_weather");
    } else {
      EXPECT_FALSE(call.contains("id") || call.contains("type") || call["function"].contains("name")) << call;
    }
    arguments += call["function"]["arguments"].get<std::string>();
  }
  EXPECT_GT(call_deltas, 1u) << "the arguments stream as they are generated";
  EXPECT_EQ(arguments, answer);
  EXPECT_EQ(content, "") << "only the role chunk's empty content";
  EXPECT_EQ(finish_reason, "length");
}

TEST(ChatFormatter, ForcedToolCallOfAnEmptyAnswerIsStillNamed) {
  ChatFormatter formatter(kHeader, forced_call("ping"), token_text);
  RequestOutput merged;
  merged.sequences.push_back(delta(0, "", {}));
  merged.sequences[0].finish_reason = FinishReason::Length;
  nlohmann::json message = formatter.full_response(merged)["choices"][0]["message"];
  ASSERT_EQ(message["tool_calls"].size(), 1u);
  EXPECT_EQ(message["tool_calls"][0]["function"]["name"], "ping");
  EXPECT_EQ(message["tool_calls"][0]["function"]["arguments"], "");
}

// A reasoning model whose prompt opened <think> thinks before its constrained answer (the
// engine constrains after "</think>"): the thinking is reasoning_content, the document after
// the tag the content (response_format) or the forced call's arguments (tool_choice).
ChatFormatOptions thinking_first(std::optional<std::string> forced_name) {
  ChatFormatOptions options{.n = 1};
  options.output.split_reasoning = true;
  options.output.starts_in_reasoning = true;
  options.output.forced_tool_call_name = std::move(forced_name);
  return options;
}
const std::string kThinking = "The user wants Paris; 3 days.";

struct StreamedAnswer {
  std::string reasoning, content, arguments, name;
};

// `answer` streamed 3 bytes an output (tags split across outputs), finished by EOS.
StreamedAnswer stream_answer(ChatFormatter& formatter, const std::string& answer) {
  std::string sse = formatter.stream_start();
  for (size_t at = 0; at < answer.size(); at += 3) {
    RequestOutput output;
    output.sequences.push_back(delta(0, answer.substr(at, 3), {1}));
    if (at + 3 >= answer.size()) {
      output.sequences[0].finish_reason = FinishReason::Stop;
      output.finished = true;
    }
    sse += formatter.stream_output(output);
  }
  bool done = false;
  StreamedAnswer streamed;
  for (const auto& event : parse_events(sse, done)) {
    const auto& d = event["choices"][0]["delta"];
    if (d.contains("reasoning_content") && d["reasoning_content"].is_string())
      streamed.reasoning += d["reasoning_content"].get<std::string>();
    if (d.contains("content") && d["content"].is_string()) streamed.content += d["content"].get<std::string>();
    if (!d.contains("tool_calls")) continue;
    const auto& function = d["tool_calls"][0]["function"];
    if (function.contains("name")) streamed.name += function["name"].get<std::string>();
    streamed.arguments += function["arguments"].get<std::string>();
  }
  EXPECT_TRUE(done);
  return streamed;
}

TEST(ChatFormatter, ForcedToolCallAfterReasoningTakesOnlyTheAnswer) {
  const std::string answer = kThinking + "</think>" + kForcedArguments;
  ChatFormatter formatter(kHeader, thinking_first("get_weather"), token_text);
  RequestOutput merged;
  merged.sequences.push_back(delta(0, answer, {1, 2}));
  merged.sequences[0].finish_reason = FinishReason::Stop;
  nlohmann::json choice = formatter.full_response(merged)["choices"][0];
  const nlohmann::json& message = choice["message"];
  EXPECT_EQ(message["reasoning_content"], kThinking);
  EXPECT_TRUE(message["content"].is_null()) << message;
  ASSERT_EQ(message["tool_calls"].size(), 1u);
  EXPECT_EQ(message["tool_calls"][0]["function"]["name"], "get_weather");
  EXPECT_EQ(message["tool_calls"][0]["function"]["arguments"], kForcedArguments);
  EXPECT_EQ(choice["finish_reason"], "stop");

  ChatFormatter streaming(kHeader, thinking_first("get_weather"), token_text);
  const StreamedAnswer streamed = stream_answer(streaming, answer);
  EXPECT_EQ(streamed.reasoning, kThinking);
  EXPECT_EQ(streamed.content, "");
  EXPECT_EQ(streamed.name, "get_weather");
  EXPECT_EQ(streamed.arguments, kForcedArguments);
}

TEST(ChatFormatter, ForcedToolCallCutInsideTheReasoningIsNamedWithNoArguments) {
  ChatFormatter formatter(kHeader, thinking_first("get_weather"), token_text);
  RequestOutput merged;
  merged.sequences.push_back(delta(0, kThinking + "</thi", {1, 2}));
  merged.sequences[0].finish_reason = FinishReason::Length;
  nlohmann::json message = formatter.full_response(merged)["choices"][0]["message"];
  EXPECT_EQ(message["reasoning_content"], kThinking + "</thi");
  ASSERT_EQ(message["tool_calls"].size(), 1u);
  EXPECT_EQ(message["tool_calls"][0]["function"]["name"], "get_weather");
  EXPECT_EQ(message["tool_calls"][0]["function"]["arguments"], "");
}

TEST(ChatFormatter, JsonContentAfterReasoning) {
  const std::string answer = kThinking + "</think>" + kForcedArguments;
  ChatFormatter formatter(kHeader, thinking_first(std::nullopt), token_text);
  RequestOutput merged;
  merged.sequences.push_back(delta(0, answer, {1, 2}));
  merged.sequences[0].finish_reason = FinishReason::Stop;
  const nlohmann::json message = formatter.full_response(merged)["choices"][0]["message"];
  EXPECT_EQ(message["reasoning_content"], kThinking);
  EXPECT_EQ(message["content"], kForcedArguments);
  EXPECT_FALSE(message.contains("tool_calls"));

  ChatFormatter streaming(kHeader, thinking_first(std::nullopt), token_text);
  const StreamedAnswer streamed = stream_answer(streaming, answer);
  EXPECT_EQ(streamed.reasoning, kThinking);
  EXPECT_EQ(streamed.content, kForcedArguments);
  EXPECT_EQ(streamed.arguments, "");
}

TEST(ChatFormatter, EngineErrorBecomesAnErrorEventBeforeDone) {
  ChatFormatter formatter(kHeader, {.n = 1}, token_text);
  RequestOutput output;
  output.sequences.push_back(delta(0, "", {}));
  output.sequences[0].finish_reason = FinishReason::Error;
  output.error = "step failed";
  output.finished = true;
  bool done = false;
  auto events = parse_events(formatter.stream_output(output), done);
  EXPECT_TRUE(done);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back()["error"]["message"], "step failed");
}

TEST(ChatFormatter, LogprobsInTheChatShape) {
  ChatFormatter formatter(kHeader, {.n = 1}, token_text);
  RequestOutput merged;
  SequenceDelta sequence = delta(0, "x", {3});
  sequence.logprobs.push_back({.sampled = {3, -0.5f}, .top = {{3, -0.5f}, {4, -1.5f}}});
  merged.sequences.push_back(sequence);
  nlohmann::json entry = formatter.full_response(merged)["choices"][0]["logprobs"]["content"][0];
  EXPECT_EQ(entry["token"], "t3");
  EXPECT_DOUBLE_EQ(entry["logprob"].get<double>(), -0.5);
  EXPECT_EQ(entry["bytes"], (nlohmann::json{'t', '3'}));
  EXPECT_EQ(entry["top_logprobs"][1]["token"], "t4");
}

TEST(CompletionFormatter, LogprobOffsetsAdvanceAcrossChunks) {
  CompletionFormatter formatter({"cmpl-1", 1, "tiny"}, /*include_usage=*/false, /*return_token_ids=*/true, token_text);
  std::vector<int64_t> offsets;
  for (int32_t token : {12, 7}) {
    RequestOutput output;
    SequenceDelta sequence = delta(0, token_text(token), {token});
    sequence.logprobs.push_back({.sampled = {token, -1.0f}, .top = {}});
    output.sequences.push_back(sequence);
    bool done = false;
    auto events = parse_events(formatter.stream_output(output), done);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0]["object"], "text_completion");
    EXPECT_EQ(events[0]["choices"][0]["token_ids"], nlohmann::json::array({token}));
    offsets.push_back(events[0]["choices"][0]["logprobs"]["text_offset"][0].get<int64_t>());
  }
  EXPECT_EQ(offsets, (std::vector<int64_t>{0, 3}));  // "t12" is 3 bytes
}

}  // namespace
}  // namespace rackserve::api
