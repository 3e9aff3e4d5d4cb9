// Anthropic Messages request translation: every content block type into the OpenAI-shaped
// chat messages the templates take, tools / tool_choice / thinking / sampling fields, the
// prefill rule, and errors that name the field, written in Anthropic's error shape.
#include <gtest/gtest.h>

#include "api/anthropic_request.h"
#include "api/api_context.h"
#include "api/api_error.h"
#include "engine/json_schema_grammar.h"

namespace rackserve::api {
namespace {

using json = nlohmann::ordered_json;  // request bodies keep their key order, as the server parses them

const FieldLimits kLimits{.max_n = 4, .max_logprobs = 5, .vocab_size = 512, .max_model_len = 128};

AnthropicRequest parse(const std::string& body, AnthropicEndpoint endpoint = AnthropicEndpoint::Messages) {
  return parse_anthropic_request(json::parse(body), kLimits, endpoint);
}

// A body with model and max_tokens around `rest` (the other top-level fields).
std::string body_with(const std::string& rest) { return R"({"model": "m", "max_tokens": 16, )" + rest + "}"; }

ApiError error_of(const std::string& body, AnthropicEndpoint endpoint = AnthropicEndpoint::Messages) {
  try {
    parse(body, endpoint);
  } catch (const ApiError& error) {
    return error;
  }
  ADD_FAILURE() << "accepted: " << body;
  return ApiError(0, "");
}

TEST(AnthropicRequest, PlainConversationWithSystemString) {
  AnthropicRequest request = parse(body_with(R"("system": "Be brief.", "messages": [
      {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
      {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b", "cache_control": {"type": "ephemeral"}}]}])"));
  EXPECT_EQ(request.model, "m");
  EXPECT_EQ(request.messages, json::parse(R"([
      {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
      {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "a\nb"}])"));
  EXPECT_TRUE(request.tools.is_null());
  EXPECT_FALSE(request.continue_final_message);
  EXPECT_FALSE(request.stream);
  EXPECT_EQ(request.chat_template_kwargs, json::object());
  EXPECT_EQ(*request.sampling.max_tokens, 16);
  EXPECT_FALSE(request.sampling.temperature) << "absent sampling fields keep the model's defaults";
}

TEST(AnthropicRequest, SystemTextBlocksAndSystemRoleMessagesJoinTheirText) {
  AnthropicRequest request = parse(body_with(R"("system": [{"type": "text", "text": "One."}, {"type": "text", "text": "Two."}],
      "messages": [{"role": "system", "content": [{"type": "text", "text": "Three."}]}, {"role": "user", "content": "Q"}])"));
  EXPECT_EQ(request.messages[0], json::parse(R"({"role": "system", "content": "One.\nTwo."})"));
  EXPECT_EQ(request.messages[1], json::parse(R"({"role": "system", "content": "Three."})"));
  EXPECT_EQ(request.messages[2], json::parse(R"({"role": "user", "content": "Q"})"));
}

TEST(AnthropicRequest, ToolRoundTripBecomesToolCallsAndToolMessages) {
  AnthropicRequest request = parse(body_with(R"("messages": [
      {"role": "user", "content": "Weather in Paris and Rome?"},
      {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "Two cities.", "signature": "c2ln"},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {}}]},
      {"role": "user", "content": [
        {"type": "text", "text": "Here they are."},
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
        {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": true,
         "content": [{"type": "text", "text": "timeout"}, {"type": "text", "text": "retry later"}]},
        {"type": "tool_result", "tool_use_id": "toolu_unknown"}]}])"));
  ASSERT_EQ(request.messages.size(), 6u);
  const json& assistant = request.messages[1];
  EXPECT_EQ(assistant["role"], "assistant");
  EXPECT_EQ(assistant["content"], "Checking.");
  EXPECT_EQ(assistant["reasoning_content"], "Two cities.");
  ASSERT_EQ(assistant["tool_calls"].size(), 2u);
  EXPECT_EQ(assistant["tool_calls"][0]["id"], "toolu_1");
  EXPECT_EQ(assistant["tool_calls"][0]["type"], "function");
  EXPECT_EQ(assistant["tool_calls"][0]["function"]["name"], "weather");
  ASSERT_TRUE(assistant["tool_calls"][0]["function"]["arguments"].is_string());
  EXPECT_EQ(json::parse(assistant["tool_calls"][0]["function"]["arguments"].get<std::string>()), json({{"city", "Paris"}}));
  EXPECT_EQ(assistant["tool_calls"][1]["function"]["arguments"], "{}");
  // Tool results first, in order, then the turn's text.
  EXPECT_EQ(request.messages[2], json::parse(R"({"role": "tool", "tool_call_id": "toolu_1", "name": "weather", "content": "18C"})"));
  EXPECT_EQ(request.messages[3],
            json::parse(R"({"role": "tool", "tool_call_id": "toolu_2", "name": "weather", "content": "Error: timeout\nretry later"})"));
  EXPECT_EQ(request.messages[4], json::parse(R"({"role": "tool", "tool_call_id": "toolu_unknown", "content": ""})"));
  EXPECT_EQ(request.messages[5], json::parse(R"({"role": "user", "content": "Here they are."})"));
}

TEST(AnthropicRequest, ToolCallsWithoutTextHaveNullContentAndOnlyResultsMakeNoUserMessage) {
  AnthropicRequest request = parse(body_with(R"("messages": [
      {"role": "user", "content": "Go"},
      {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "run", "input": {"a": [1, 2]}}]},
      {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]}])"));
  ASSERT_EQ(request.messages.size(), 3u);
  EXPECT_TRUE(request.messages[1]["content"].is_null());
  EXPECT_FALSE(request.messages[1].contains("reasoning_content"));
  EXPECT_EQ(request.messages[2]["role"], "tool");
}

TEST(AnthropicRequest, FinalAssistantMessageIsAPrefill) {
  AnthropicRequest request = parse(body_with(R"("messages": [{"role": "user", "content": "Count"},
      {"role": "assistant", "content": "1, 2,"}])"));
  EXPECT_TRUE(request.continue_final_message);
  // An empty final assistant message asks for nothing: it is dropped.
  request = parse(body_with(R"("messages": [{"role": "user", "content": "Count"}, {"role": "assistant", "content": ""}])"));
  EXPECT_FALSE(request.continue_final_message);
  EXPECT_EQ(request.messages.size(), 1u);
  ApiError error = error_of(body_with(R"("messages": [{"role": "user", "content": "Go"},
      {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]}])"));
  EXPECT_EQ(error.status(), 400);
  EXPECT_EQ(error.param(), "messages");
}

TEST(AnthropicRequest, ToolsBecomeFunctionsAndToolChoiceDecidesWhetherTheyAreShown) {
  const std::string tools = R"("tools": [{"name": "weather", "description": "Weather now", "cache_control": {"type": "ephemeral"},
      "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
      {"name": "noop", "type": "custom", "input_schema": {"type": "object"}}], )";
  const std::string messages = R"("messages": [{"role": "user", "content": "Hi"}])";
  AnthropicRequest request = parse(body_with(tools + messages));
  EXPECT_EQ(request.tools, json::parse(R"([
      {"type": "function", "function": {"name": "weather", "description": "Weather now",
       "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
      {"type": "function", "function": {"name": "noop", "parameters": {"type": "object"}}}])"));
  EXPECT_FALSE(request.first_tool_call_only);
  request = parse(body_with(tools + R"("tool_choice": {"type": "auto", "disable_parallel_tool_use": true}, )" + messages));
  EXPECT_EQ(request.tools.size(), 2u);
  EXPECT_TRUE(request.first_tool_call_only);
  request = parse(body_with(tools + R"("tool_choice": {"type": "none"}, )" + messages));
  EXPECT_TRUE(request.tools.is_null()) << "tool_choice none: the model does not see the tools";
  request = parse(body_with(R"("tools": [], )" + messages));
  EXPECT_TRUE(request.tools.is_null());

  // any / tool: a list of calls decoded under a grammar (tool_call_list.h); "tool" of that one.
  auto accepts = [](const JsonSchema& schema, std::string_view text) {
    JsonSchemaGrammar grammar(schema);
    return grammar.accept(text) && grammar.complete();
  };
  request = parse(body_with(tools + R"("tool_choice": {"type": "any"}, )" + messages));
  ASSERT_NE(request.answer_schema, nullptr);
  EXPECT_TRUE(request.answer_is_call_list);
  EXPECT_EQ(request.tools.size(), 2u) << "the model still sees every tool";
  EXPECT_TRUE(accepts(*request.answer_schema, R"([{"name":"noop","arguments":{}},{"name":"weather","arguments":{}}])"));
  request = parse(body_with(tools + R"("tool_choice": {"type": "tool", "name": "weather", "disable_parallel_tool_use": true}, )" +
                            messages));
  ASSERT_NE(request.answer_schema, nullptr);
  EXPECT_TRUE(request.first_tool_call_only);
  EXPECT_TRUE(accepts(*request.answer_schema, R"([{"name":"weather","arguments":{"city":"Oslo"}}])"));
  EXPECT_FALSE(accepts(*request.answer_schema, R"([{"name":"noop","arguments":{}}])")) << "only the named tool";
  EXPECT_FALSE(accepts(*request.answer_schema, R"([{"name":"weather","arguments":{}},{"name":"weather","arguments":{}}])"))
      << "one call without parallel tool use";
  EXPECT_EQ(error_of(body_with(tools + R"("tool_choice": {"type": "tool", "name": "rain"}, )" + messages)).param(),
            "tool_choice.name");
  EXPECT_EQ(error_of(body_with(tools + R"("tool_choice": {"type": "tool"}, )" + messages)).param(), "tool_choice.name");
  EXPECT_EQ(error_of(body_with(R"("tool_choice": {"type": "any"}, )" + messages)).status(), 400) << "any without tools";
  EXPECT_EQ(error_of(body_with(R"("tool_choice": {"type": "sometimes"}, )" + messages)).param(), "tool_choice.type");
}

TEST(AnthropicRequest, ThinkingSetsBothTemplateSwitches) {
  const std::string messages = R"("messages": [{"role": "user", "content": "Hi"}])";
  AnthropicRequest request = parse(body_with(R"("thinking": {"type": "enabled", "budget_tokens": 2048}, )" + messages));
  EXPECT_EQ(request.chat_template_kwargs, json::parse(R"({"thinking": true, "enable_thinking": true})"));
  request = parse(body_with(R"("thinking": {"type": "adaptive"}, )" + messages));
  EXPECT_EQ(request.chat_template_kwargs, json::parse(R"({"thinking": true, "enable_thinking": true})"));
  request = parse(body_with(R"("thinking": {"type": "disabled"}, )" + messages));
  EXPECT_EQ(request.chat_template_kwargs, json::parse(R"({"thinking": false, "enable_thinking": false})"));
  EXPECT_EQ(error_of(body_with(R"("thinking": {"type": "enabled"}, )" + messages)).param(), "thinking.budget_tokens");
  EXPECT_EQ(error_of(body_with(R"("thinking": {"type": "enabled", "budget_tokens": 0}, )" + messages)).param(),
            "thinking.budget_tokens");
  EXPECT_EQ(error_of(body_with(R"("thinking": {"type": "deep"}, )" + messages)).param(), "thinking.type");
}

TEST(AnthropicRequest, SamplingFieldsStopSequencesStreamAndMetadata) {
  AnthropicRequest request = parse(R"({"model": "m", "max_tokens": 7, "temperature": 0, "top_p": 0.5, "top_k": 20,
      "stop_sequences": ["END", "\n\n"], "stream": true, "metadata": {"user_id": "u-1"}, "service_tier": "auto",
      "messages": [{"role": "user", "content": "Hi"}]})");
  EXPECT_EQ(*request.sampling.max_tokens, 7);
  EXPECT_FLOAT_EQ(*request.sampling.temperature, 0.0f);
  EXPECT_TRUE(request.sampling.greedy());
  EXPECT_FLOAT_EQ(*request.sampling.top_p, 0.5f);
  EXPECT_EQ(*request.sampling.top_k, 20);
  EXPECT_EQ(request.sampling.stop, (std::vector<std::string>{"END", "\n\n"}));
  EXPECT_FALSE(request.sampling.include_stop_str_in_output);
  EXPECT_EQ(request.sampling.n, 1);
  EXPECT_TRUE(request.stream);
  // Agents ask for more than any context holds; the route cuts it to the room left.
  request = parse(R"({"model": "m", "max_tokens": 64000, "messages": [{"role": "user", "content": "Hi"}]})");
  EXPECT_EQ(*request.sampling.max_tokens, 64000);
}

TEST(AnthropicRequest, CountTokensNeedsNoMaxTokens) {
  AnthropicRequest request = parse(R"({"model": "m", "messages": [{"role": "user", "content": "Hi"}],
      "tools": [{"name": "f", "input_schema": {"type": "object"}}]})", AnthropicEndpoint::CountTokens);
  EXPECT_EQ(request.messages.size(), 1u);
  EXPECT_EQ(request.tools.size(), 1u);
  EXPECT_EQ(error_of(R"({"messages": [{"role": "user", "content": "Hi"}]})", AnthropicEndpoint::CountTokens).param(), "model");
}

TEST(AnthropicRequest, ErrorsNameTheField) {
  const std::string hi = R"("messages": [{"role": "user", "content": "Hi"}])";
  struct Case {
    std::string body;
    std::string param;
  };
  const Case cases[] = {
      {R"({"model": "m", )" + hi + "}", "max_tokens"},
      {R"({"max_tokens": 4, )" + hi + "}", "model"},
      {body_with(R"("max_tokens": 0, )" + hi), "max_tokens"},
      {body_with(R"("temperature": 1.5, )" + hi), "temperature"},
      {body_with(R"("top_p": 0, )" + hi), "top_p"},
      {body_with(R"("top_k": -1, )" + hi), "top_k"},
      {body_with(R"("stop_sequences": "END", )" + hi), "stop_sequences"},
      {body_with(R"("stop_sequences": [""], )" + hi), "stop_sequences"},
      {body_with(R"("stream": "yes", )" + hi), "stream"},
      {body_with(R"("metadata": "x", )" + hi), "metadata"},
      {body_with(R"("system": 3, )" + hi), "system"},
      {body_with(R"("system": [{"type": "text"}], )" + hi), "system[0].text"},
      {body_with(R"("messages": [])"), "messages"},
      {body_with(R"("messages": {"role": "user"})"), "messages"},
      {body_with(R"("messages": [{"role": "tool", "content": "x"}])"), "messages[0].role"},
      {body_with(R"("messages": [{"role": "user"}])"), "messages[0].content"},
      {body_with(R"("messages": [{"role": "user", "content": 5}])"), "messages[0].content"},
      {body_with(R"("messages": [{"role": "user", "content": [{"text": "x"}]}])"), "messages[0].content[0].type"},
      {body_with(R"("messages": [{"role": "user", "content": [{"type": "text"}]}])"), "messages[0].content[0].text"},
      {body_with(R"("messages": [{"role": "user", "content": [{"type": "tool_result"}]}])"),
       "messages[0].content[0].tool_use_id"},
      {body_with(R"("messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "is_error": 1}]}])"),
       "messages[0].content[0].is_error"},
      {body_with(R"("messages": [{"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]}])"),
       "messages[0].content[0].type"},
      {body_with(R"("messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": [{"type": "tool_result", "tool_use_id": "t"}]}, {"role": "user", "content": "y"}])"),
       "messages[1].content[0].type"},
      {body_with(R"("messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": "{}"}]}, {"role": "user", "content": "y"}])"),
       "messages[1].content[0].input"},
      {body_with(R"("messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": [{"type": "tool_use", "name": "f", "input": {}}]}, {"role": "user", "content": "y"}])"),
       "messages[1].content[0].id"},
      {body_with(R"("tools": [{"input_schema": {"type": "object"}}], )" + hi), "tools[0].name"},
      {body_with(R"("tools": [{"name": "f"}], )" + hi), "tools[0].input_schema"},
      {body_with(R"("tools": {"name": "f"}, )" + hi), "tools"},
  };
  for (const Case& test : cases) {
    ApiError error = error_of(test.body);
    EXPECT_EQ(error.status(), 400) << test.body << " -> " << error.what();
    EXPECT_EQ(error.param(), test.param) << test.body << " -> " << error.what();
    EXPECT_NE(std::string(error.what()).find(test.param), std::string::npos) << "the message names the field: " << error.what();
  }
}

TEST(AnthropicRequest, UnsupportedBlocksAndToolsAnswer422WithAClearMessage) {
  ApiError image = error_of(body_with(R"("messages": [{"role": "user", "content": [{"type": "text", "text": "What is it?"},
      {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]}])"));
  EXPECT_EQ(image.status(), 422);
  EXPECT_EQ(image.param(), "messages[0].content[1].type");
  EXPECT_NE(std::string(image.what()).find("\"image\" content blocks are not supported"), std::string::npos) << image.what();
  EXPECT_NE(std::string(image.what()).find("text only"), std::string::npos) << image.what();

  ApiError document = error_of(body_with(R"("messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
      "content": [{"type": "document", "source": {}}]}]}])"));
  EXPECT_EQ(document.status(), 422);
  EXPECT_EQ(document.param(), "messages[0].content[0].content[0].type");

  ApiError server_tool = error_of(body_with(R"("tools": [{"type": "bash_20250124", "name": "bash"}],
      "messages": [{"role": "user", "content": "ls"}])"));
  EXPECT_EQ(server_tool.status(), 422);
  EXPECT_EQ(server_tool.param(), "tools[0].type");
  EXPECT_NE(std::string(server_tool.what()).find("bash_20250124"), std::string::npos);

  // Structured output: the answer's text under the schema.
  const AnthropicRequest structured = parse(body_with(R"("output_config": {"format": {"type": "json_schema", "schema":
      {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}}},
      "messages": [{"role": "user", "content": "x"}])"));
  ASSERT_NE(structured.answer_schema, nullptr);
  EXPECT_FALSE(structured.answer_is_call_list);
  JsonSchemaGrammar grammar(*structured.answer_schema);
  EXPECT_TRUE(grammar.accept(R"({"ok": true})") && grammar.complete());
  ApiError unsupported_schema = error_of(body_with(R"("output_config": {"format": {"type": "json_schema", "schema":
      {"type": "object", "properties": {"s": {"type": "string", "multipleOf": 1}}}}}, "messages": [{"role": "user", "content": "x"}])"));
  EXPECT_EQ(unsupported_schema.status(), 400);
  EXPECT_EQ(unsupported_schema.param(), "output_config.format.schema");
  EXPECT_EQ(error_of(body_with(R"("output_config": {"format": {"type": "regex"}}, "messages": [{"role": "user", "content": "x"}])"))
                .param(),
            "output_config.format.type");
}

TEST(AnthropicErrors, BodyTypeAndStatusInAnthropicShape) {
  struct Case {
    int status;
    int anthropic_status;
    const char* type;
  };
  const Case cases[] = {{400, 400, "invalid_request_error"}, {401, 401, "authentication_error"},
                        {404, 404, "not_found_error"},       {413, 413, "request_too_large"},
                        {422, 400, "invalid_request_error"}, {429, 429, "rate_limit_error"},
                        {503, 503, "overloaded_error"},      {500, 500, "api_error"}};
  for (const Case& test : cases) {
    ApiError error(test.status, "what \xff went wrong", "field", "code");
    EXPECT_EQ(error.status_in(ErrorShape::Anthropic), test.anthropic_status);
    EXPECT_EQ(error.status_in(ErrorShape::OpenAI), test.status);
    json body = json::parse(error.body(ErrorShape::Anthropic));
    EXPECT_EQ(body["type"], "error");
    EXPECT_EQ(body["error"]["type"], test.type) << test.status;
    EXPECT_EQ(body["error"]["message"], "what \xef\xbf\xbd went wrong") << "invalid UTF-8 is replaced";
    EXPECT_EQ(body.size(), 2u);
    EXPECT_TRUE(json::parse(error.body())["error"].contains("param")) << "the OpenAI shape stays the default";
  }
}

TEST(AnthropicErrors, OnlyTheMessagesPathsAnswerInAnthropicShape) {
  EXPECT_EQ(error_shape_for_path("/v1/messages"), ErrorShape::Anthropic);
  EXPECT_EQ(error_shape_for_path("/v1/messages/count_tokens"), ErrorShape::Anthropic);
  EXPECT_EQ(error_shape_for_path("/v1/messages/batches"), ErrorShape::Anthropic);
  EXPECT_EQ(error_shape_for_path("/v1/messagesx"), ErrorShape::OpenAI);
  EXPECT_EQ(error_shape_for_path("/v1/chat/completions"), ErrorShape::OpenAI);
  EXPECT_EQ(error_shape_for_path("/"), ErrorShape::OpenAI);
}

}  // namespace
}  // namespace rackserve::api
