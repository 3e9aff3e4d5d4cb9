// Request parsing at the API boundary: each field's type and range, the param named in
// the error, OpenAI's rules (stream_options needs stream, top_logprobs needs logprobs),
// chat content parts, prompt forms, and JSON body limits.
#include <gtest/gtest.h>

#include "api/api_error.h"
#include "api/chat_request.h"
#include "api/completion_request.h"
#include "engine/json_schema_grammar.h"

namespace rackserve::api {
namespace {

const FieldLimits kLimits{.max_n = 4, .max_logprobs = 5, .vocab_size = 512, .max_model_len = 128};

// The ApiError `parse` throws for `body` (fails the test when it does not throw).
template <typename Parse>
ApiError error_of(Parse parse, const std::string& body) {
  try {
    parse(nlohmann::json::parse(body), kLimits);
  } catch (const ApiError& error) {
    return error;
  }
  ADD_FAILURE() << "accepted: " << body;
  return ApiError(0, "");
}
ApiError chat_error(const std::string& body) { return error_of(parse_chat_request, body); }
ApiError completion_error(const std::string& body) { return error_of(parse_completion_request, body); }

TEST(CompletionRequest, ReadsEverySamplingField) {
  CompletionRequest request = parse_completion_request(nlohmann::json::parse(R"({
    "model": "m", "prompt": "hi", "temperature": 0.5, "top_p": 0.9, "top_k": 40, "min_p": 0.05,
    "repetition_penalty": 1.1, "presence_penalty": 0.5, "frequency_penalty": -0.5, "seed": -3,
    "stop": "END", "stop_token_ids": [7, 9], "max_tokens": 20, "min_tokens": 2, "n": 3, "logprobs": 2,
    "ignore_eos": true, "skip_special_tokens": false, "stream": true, "stream_options": {"include_usage": true}})"),
    kLimits);
  EXPECT_EQ(*request.model, "m");
  EXPECT_EQ(*request.prompt_text, "hi");
  const SamplingParams& params = request.sampling;
  EXPECT_FLOAT_EQ(*params.temperature, 0.5f);
  EXPECT_FLOAT_EQ(*params.top_p, 0.9f);
  EXPECT_EQ(*params.top_k, 40);
  EXPECT_FLOAT_EQ(*params.min_p, 0.05f);
  EXPECT_FLOAT_EQ(*params.repetition_penalty, 1.1f);
  EXPECT_FLOAT_EQ(params.presence_penalty, 0.5f);
  EXPECT_FLOAT_EQ(params.frequency_penalty, -0.5f);
  EXPECT_EQ(*params.seed, static_cast<uint64_t>(int64_t{-3}));
  EXPECT_EQ(params.stop, std::vector<std::string>{"END"});
  EXPECT_EQ(params.stop_token_ids, (std::vector<int32_t>{7, 9}));
  EXPECT_EQ(*params.max_tokens, 20);
  EXPECT_EQ(params.min_tokens, 2);
  EXPECT_EQ(params.n, 3);
  EXPECT_EQ(*params.logprobs, 2);
  EXPECT_TRUE(params.ignore_eos);
  EXPECT_FALSE(params.skip_special_tokens);
  EXPECT_TRUE(request.stream.stream);
  EXPECT_TRUE(request.stream.include_usage);
}

TEST(CompletionRequest, NullMeansAbsentAndDefaultsStayUnset) {
  CompletionRequest request =
      parse_completion_request(nlohmann::json::parse(R"({"prompt": "hi", "temperature": null, "max_tokens": null})"), kLimits);
  EXPECT_FALSE(request.sampling.temperature);
  EXPECT_FALSE(request.sampling.max_tokens);
  EXPECT_FALSE(request.sampling.logprobs);
  EXPECT_EQ(request.sampling.n, 1);
  EXPECT_TRUE(request.sampling.skip_special_tokens);
}

TEST(CompletionRequest, PromptForms) {
  auto tokens = parse_completion_request(nlohmann::json::parse(R"({"prompt": [1, 2, 3]})"), kLimits).prompt_tokens;
  EXPECT_EQ(*tokens, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(*parse_completion_request(nlohmann::json::parse(R"({"prompt": ["one"]})"), kLimits).prompt_text, "one");
  EXPECT_EQ(completion_error(R"({"prompt": [1, 512]})").status(), 400);
  EXPECT_EQ(completion_error(R"({"prompt": ["a", "b"]})").status(), 422);
  EXPECT_EQ(completion_error(R"({"prompt": ""})").status(), 400);
  EXPECT_EQ(completion_error(R"({"prompt": 5})").param(), "prompt");
  EXPECT_EQ(completion_error(R"({})").param(), "prompt");
}

TEST(CompletionRequest, WrongTypesAndRangesNameTheField) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"prompt": "x", "temperature": "hot"})", "temperature"},
      {R"({"prompt": "x", "temperature": 2.5})", "temperature"},
      {R"({"prompt": "x", "top_p": 0})", "top_p"},
      {R"({"prompt": "x", "top_k": 1.5})", "top_k"},
      {R"({"prompt": "x", "max_tokens": 0})", "max_tokens"},
      {R"({"prompt": "x", "max_tokens": 129})", "max_tokens"},
      {R"({"prompt": "x", "max_tokens": true})", "max_tokens"},
      {R"({"prompt": "x", "n": 5})", "n"},
      {R"({"prompt": "x", "logprobs": 6})", "logprobs"},
      {R"({"prompt": "x", "stop": [1]})", "stop"},
      {R"({"prompt": "x", "stop": [""]})", "stop"},
      {R"({"prompt": "x", "stop_token_ids": [512]})", "stop_token_ids"},
      {R"({"prompt": "x", "min_tokens": 9, "max_tokens": 3})", "min_tokens"},
      {R"({"prompt": "x", "stream_options": {"include_usage": true}})", "stream_options"},
      {R"({"prompt": "x", "stream": "yes"})", "stream"},
      {R"({"prompt": "x", "model": 3})", "model"},
      {R"({"prompt": "x", "seed": 1e40})", "seed"},
  };
  for (const auto& [body, param] : cases) {
    ApiError error = completion_error(body);
    EXPECT_EQ(error.status(), 400) << body;
    EXPECT_EQ(error.param(), param) << body;
  }
  EXPECT_EQ(completion_error(R"({"prompt": "x", "echo": true})").status(), 422);
  EXPECT_EQ(completion_error(R"([1])").status(), 400);
}

TEST(ChatRequest, NormalizesContentPartsAndKeepsOtherFields) {
  ChatRequest request = parse_chat_request(nlohmann::json::parse(R"({
    "messages": [{"role": "system", "content": "be brief"},
                 {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "name": "ann"},
                 {"role": "assistant", "content": null, "tool_calls": []}],
    "chat_template_kwargs": {"enable_thinking": true}, "logprobs": true, "top_logprobs": 3,
    "max_completion_tokens": 7, "max_tokens": 9})"), kLimits);
  EXPECT_EQ(request.messages[1]["content"], "a\nb");
  EXPECT_EQ(request.messages[1]["name"], "ann");
  EXPECT_TRUE(request.messages[2]["content"].is_null());
  EXPECT_EQ(request.chat_template_kwargs["enable_thinking"], true);
  EXPECT_EQ(*request.sampling.logprobs, 3);
  EXPECT_EQ(*request.sampling.max_tokens, 7);  // max_completion_tokens wins
  EXPECT_TRUE(request.add_generation_prompt);
}

TEST(ChatRequest, RejectsMalformedMessages) {
  EXPECT_EQ(chat_error(R"({})").param(), "messages");
  EXPECT_EQ(chat_error(R"({"messages": []})").param(), "messages");
  EXPECT_EQ(chat_error(R"({"messages": {}})").param(), "messages");
  EXPECT_EQ(chat_error(R"({"messages": ["hi"]})").status(), 400);
  EXPECT_EQ(chat_error(R"({"messages": [{"content": "hi"}]})").param(), "messages[0].role");
  EXPECT_EQ(chat_error(R"({"messages": [{"role": "user", "content": "a"}, {"role": "king", "content": "b"}]})").param(),
            "messages[1].role");
  EXPECT_EQ(chat_error(R"({"messages": [{"role": "user"}]})").param(), "messages[0].content");
  EXPECT_EQ(chat_error(R"({"messages": [{"role": "user", "content": 3}]})").param(), "messages[0].content");
  EXPECT_EQ(chat_error(R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})").status(), 422);
  EXPECT_EQ(chat_error(R"({"messages": [{"role": "user", "content": "a"}], "top_logprobs": 2})").param(), "top_logprobs");
  EXPECT_EQ(chat_error(R"({"messages": [{"role": "user", "content": "a"}], "chat_template_kwargs": []})").param(),
            "chat_template_kwargs");
}

TEST(ChatRequest, ResponseFormatTypes) {
  auto parse = [](const std::string& format) {
    return parse_chat_request(
        nlohmann::json::parse(R"({"messages": [{"role": "user", "content": "a"}], "response_format": )" + format + "}"),
        kLimits);
  };
  EXPECT_EQ(parse(R"({"type": "json_object"})").response_format, ResponseFormat::JsonObject);
  EXPECT_EQ(parse(R"({"type": "text"})").response_format, ResponseFormat::Text);
  EXPECT_EQ(parse(R"({})").response_format, ResponseFormat::Text);
  EXPECT_EQ(parse_chat_request(nlohmann::json::parse(R"({"messages": [{"role": "user", "content": "a"}]})"), kLimits)
                .response_format,
            ResponseFormat::Text);
  const std::string prefix = R"({"messages": [{"role": "user", "content": "a"}], "response_format": )";
  EXPECT_EQ(chat_error(prefix + R"({"type": "yaml"}})").status(), 422);
  EXPECT_EQ(chat_error(prefix + R"({"type": 3}})").status(), 400);
  EXPECT_EQ(chat_error(prefix + R"("json_object"})").status(), 400);
}

TEST(ChatRequest, ResponseFormatJsonSchemaIsCompiledAtTheBoundary) {
  const std::string prefix = R"({"messages": [{"role": "user", "content": "a"}], "response_format": {"type": "json_schema", )";
  ChatRequest request = parse_chat_request(
      nlohmann::ordered_json::parse(prefix + R"("json_schema": {"name": "x", "strict": true, "schema": {"type": "object",
          "properties": {"b": {"type": "string"}, "a": {"type": "integer"}}, "required": ["b", "a"]}}}})"),
      kLimits);
  EXPECT_EQ(request.response_format, ResponseFormat::JsonSchema);
  ASSERT_NE(request.json_schema, nullptr);
  const SchemaNode& root = request.json_schema->node(request.json_schema->root());
  ASSERT_EQ(root.properties.size(), 2u);
  EXPECT_EQ(root.properties[0].key_text, "\"b\"") << "declaration order, as the client wrote it";

  ApiError unsupported = chat_error(
      prefix + R"("json_schema": {"name": "x", "schema": {"type": "object", "properties": {"s": {"type": "string",
          "multipleOf": 3}}}}}})");
  EXPECT_EQ(unsupported.status(), 400);
  EXPECT_EQ(unsupported.param(), "response_format.json_schema.schema");
  EXPECT_NE(std::string(unsupported.what()).find("'multipleOf'"), std::string::npos) << unsupported.what();
  EXPECT_NE(std::string(unsupported.what()).find("/properties/s"), std::string::npos) << unsupported.what();
  for (const char* keyword : {R"("patternProperties": {})", R"("if": {})", R"("not": {})", R"("oneOf": [])"}) {
    ApiError error = chat_error(prefix + R"("json_schema": {"name": "x", "schema": {"type": "object", )" + keyword + "}}}}");
    EXPECT_EQ(error.status(), 400) << keyword;
  }
  EXPECT_EQ(chat_error(prefix + R"("json_schema": {"name": "x"}}})").status(), 400);  // no schema
  EXPECT_EQ(chat_error(prefix + R"("json_schema": {"name": "x", "schema": {}}}})").status(), 400);
  EXPECT_EQ(chat_error(prefix + R"("json_schema": {"name": "x", "schema": {"type": "string"}}}})").status(), 400);
  EXPECT_EQ(chat_error(prefix + R"("json_schema": {"name": "x", "strict": "yes", "schema": {"type": "object"}}}})").status(),
            400);
  EXPECT_EQ(chat_error(prefix + R"("json_schema": 1}})").status(), 400);
}

// Found by probing the request path with large bodies: 90,000 chat_template_kwargs entries
// (each a template variable, looked up by a linear scan) took 30 s to render.
TEST(ChatRequest, BoundsTheTemplateKwargs) {
  nlohmann::json body = {{"messages", {{{"role", "user"}, {"content", "a"}}}}};
  for (int i = 0; i < 64; ++i) body["chat_template_kwargs"]["k" + std::to_string(i)] = i;
  EXPECT_EQ(parse_chat_request(body, kLimits).chat_template_kwargs.size(), 64u);
  body["chat_template_kwargs"]["one_more"] = true;
  EXPECT_EQ(chat_error(body.dump()).param(), "chat_template_kwargs");
}

TEST(ChatRequest, ToolsAreCalledOnlyUnderAutoToolChoice) {
  const std::string tools = R"("tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}])";
  auto parse = [&](const std::string& extra) {
    return parse_chat_request(nlohmann::json::parse(R"({"messages": [{"role": "user", "content": "a"}])" + extra + "}"),
                              kLimits);
  };
  ChatRequest plain = parse("");
  EXPECT_TRUE(plain.tools.is_null());
  EXPECT_EQ(plain.tool_choice, ToolChoice::None);
  ChatRequest offered = parse(", " + tools);
  EXPECT_EQ(offered.tools.size(), 1u);
  EXPECT_EQ(offered.tool_choice, ToolChoice::Auto);
  EXPECT_EQ(parse(", " + tools + R"(, "tool_choice": "auto")").tool_choice, ToolChoice::Auto);
  EXPECT_TRUE(offered.parallel_tool_calls);
  EXPECT_FALSE(parse(", " + tools + R"(, "parallel_tool_calls": false)").parallel_tool_calls);
  ChatRequest refused = parse(", " + tools + R"(, "tool_choice": "none")");
  EXPECT_EQ(refused.tool_choice, ToolChoice::None);
  EXPECT_TRUE(refused.tools.is_null()) << "with tool_choice none the model is not shown the tools";
  EXPECT_EQ(parse(R"(, "tools": [])").tool_choice, ToolChoice::None);
}

TEST(ChatRequest, RejectsMalformedToolsAndUnsupportedToolChoices) {
  const std::string messages = R"({"messages": [{"role": "user", "content": "a"}], )";
  const std::string tools = R"("tools": [{"type": "function", "function": {"name": "f"}}])";
  EXPECT_EQ(chat_error(messages + R"("tools": {}})").param(), "tools");
  EXPECT_EQ(chat_error(messages + R"("tools": [{"type": "function"}]})").param(), "tools[0].function");
  EXPECT_EQ(chat_error(messages + R"("tools": [{"type": "web", "function": {"name": "f"}}]})").param(), "tools[0].type");
  EXPECT_EQ(chat_error(messages + R"("tools": [{"function": {"name": ""}}]})").param(), "tools[0].function.name");
  EXPECT_EQ(chat_error(messages + R"("tools": [{"function": {"name": "f", "parameters": 3}}]})").param(),
            "tools[0].function.parameters");
  EXPECT_EQ(chat_error(messages + tools + R"(, "tool_choice": "sometimes"})").status(), 400);
  EXPECT_EQ(chat_error(messages + tools + R"(, "tool_choice": 1})").param(), "tool_choice");
  EXPECT_EQ(chat_error(messages + R"("tool_choice": "required"})").status(), 400);  // nothing to require
  EXPECT_EQ(chat_error(messages + tools + R"(, "parallel_tool_calls": 0})").param(), "parallel_tool_calls");
}

// "required": a list of calls (tool_call_list.h), each told apart by its name; one call at
// most without parallel tool calls; the tools' $defs moved to the list's top.
TEST(ChatRequest, RequiredToolChoiceCompilesAListOfCalls) {
  const std::string messages = R"({"messages": [{"role": "user", "content": "a"}], )";
  const std::string tools = R"("tools": [{"type": "function", "function": {"name": "f"}},
      {"type": "function", "function": {"name": "g", "parameters": {"$defs": {"day": {"enum": ["mon", "tue"]}},
       "type": "object", "properties": {"city": {"type": "string"}, "day": {"$ref": "#/$defs/day"}},
       "required": ["city"]}}}])";
  auto parse = [&](const std::string& extra) {
    return parse_chat_request(nlohmann::ordered_json::parse(messages + tools + extra + "}"), kLimits);
  };
  auto accepts = [](const JsonSchema& schema, std::string_view text) {
    JsonSchemaGrammar grammar(schema);
    return grammar.accept(text) && grammar.complete();
  };
  const ChatRequest required = parse(R"(, "tool_choice": "required")");
  EXPECT_EQ(required.tool_choice, ToolChoice::Required);
  ASSERT_NE(required.json_schema, nullptr);
  EXPECT_EQ(required.json_schema->node(required.json_schema->root()).kind, SchemaKind::Array);
  const JsonSchema& list = *required.json_schema;
  EXPECT_TRUE(accepts(list, R"([{"name":"f","arguments":{}}])"));
  EXPECT_TRUE(accepts(list, R"([{"name": "g", "arguments": {"city": "Oslo", "day": "tue"}}, {"name":"f","arguments":{}}])"));
  EXPECT_FALSE(accepts(list, "[]")) << "at least one call";
  EXPECT_FALSE(accepts(list, R"([{"name":"g","arguments":{"day":"mon"}}])")) << "city is required";
  EXPECT_FALSE(accepts(list, R"([{"name":"g","arguments":{"city":"x","day":"sun"}}])")) << "the $ref'd enum";
  EXPECT_FALSE(accepts(list, R"([{"name":"h","arguments":{}}])"));
  EXPECT_FALSE(accepts(list, R"([{"arguments":{},"name":"f"}])")) << "the name comes first";

  const ChatRequest one = parse(R"(, "tool_choice": "required", "parallel_tool_calls": false)");
  ASSERT_NE(one.json_schema, nullptr);
  EXPECT_TRUE(accepts(*one.json_schema, R"([{"name":"f","arguments":{}}])"));
  EXPECT_FALSE(accepts(*one.json_schema, R"([{"name":"f","arguments":{}},{"name":"f","arguments":{}}])"));

  EXPECT_EQ(chat_error(messages + tools + R"(, "tool_choice": "required", "response_format": {"type": "json_object"}})")
                .param(),
            "response_format");
  ApiError unsupported = chat_error(messages + R"("tools": [{"type": "function", "function": {"name": "f"}},
      {"type": "function", "function": {"name": "s", "parameters": {"type": "object",
       "properties": {"s": {"type": "string", "multipleOf": 3}}}}}], "tool_choice": "required"})");
  EXPECT_EQ(unsupported.status(), 400);
  EXPECT_EQ(unsupported.param(), "tools[1].function.parameters");
  ApiError twins = chat_error(messages + R"("tools": [{"type": "function", "function": {"name": "f"}},
      {"type": "function", "function": {"name": "f"}}], "tool_choice": "required"})");
  EXPECT_EQ(twins.status(), 400) << "two tools of one name cannot be told apart";
  EXPECT_EQ(twins.param(), "tools");
}

TEST(ChatRequest, NamedToolChoiceCompilesThatFunctionsParameters) {
  const std::string messages = R"({"messages": [{"role": "user", "content": "a"}], )";
  const std::string tools = R"("tools": [{"type": "function", "function": {"name": "f"}},
      {"type": "function", "function": {"name": "g", "parameters": {"type": "object",
       "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]}}}])";
  auto parse = [&](const std::string& extra) {
    return parse_chat_request(nlohmann::ordered_json::parse(messages + tools + extra + "}"), kLimits);
  };
  ChatRequest named = parse(R"(, "tool_choice": {"type": "function", "function": {"name": "g"}})");
  EXPECT_EQ(named.tool_choice, ToolChoice::Function);
  EXPECT_EQ(named.tool_choice_function, "g");
  EXPECT_EQ(named.tools.size(), 2u) << "the template still shows the tools";
  EXPECT_EQ(named.response_format, ResponseFormat::Text);
  ASSERT_NE(named.json_schema, nullptr);
  const SchemaNode& root = named.json_schema->node(named.json_schema->root());
  EXPECT_EQ(root.kind, SchemaKind::Object);
  ASSERT_EQ(root.properties.size(), 2u);
  EXPECT_EQ(root.properties[0].key_text, "\"city\"");
  EXPECT_TRUE(root.properties[0].required);
  EXPECT_FALSE(root.properties[1].required);

  const ChatRequest empty_parameters = parse_chat_request(
      nlohmann::ordered_json::parse(
          R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "e", )"
          R"("parameters": {}}}], "tool_choice": {"type": "function", "function": {"name": "e"}}})"),
      kLimits);
  ASSERT_NE(empty_parameters.json_schema, nullptr) << "parameters {} take an empty object";
  EXPECT_TRUE(empty_parameters.json_schema->node(empty_parameters.json_schema->root()).properties.empty());
  ChatRequest no_parameters = parse(R"(, "tool_choice": {"type": "function", "function": {"name": "f"}})");
  ASSERT_NE(no_parameters.json_schema, nullptr) << "a function without parameters takes an empty object";
  EXPECT_EQ(no_parameters.json_schema->node(no_parameters.json_schema->root()).kind, SchemaKind::Object);
  EXPECT_TRUE(no_parameters.json_schema->node(no_parameters.json_schema->root()).properties.empty());

  ApiError unknown = chat_error(messages + tools + R"(, "tool_choice": {"type": "function", "function": {"name": "h"}}})");
  EXPECT_EQ(unknown.status(), 400);
  EXPECT_EQ(unknown.param(), "tool_choice");
  EXPECT_NE(std::string(unknown.what()).find("\"h\""), std::string::npos) << unknown.what();
  EXPECT_EQ(chat_error(messages + R"("tool_choice": {"type": "function", "function": {"name": "f"}}})").param(),
            "tool_choice");  // no tools at all
  EXPECT_EQ(chat_error(messages + tools + R"(, "tool_choice": {"type": "function", "function": {}}})").param(),
            "tool_choice.function.name");
  EXPECT_EQ(chat_error(messages + tools + R"(, "tool_choice": {"type": "web", "function": {"name": "f"}}})").param(),
            "tool_choice.type");
  EXPECT_EQ(chat_error(messages + tools + R"(, "tool_choice": {"type": "function", "function": {"name": "f"}},
                "response_format": {"type": "json_object"}})")
                .param(),
            "response_format");

  const std::string unsupported_tools = R"("tools": [{"type": "function", "function": {"name": "f"}},
      {"type": "function", "function": {"name": "s", "parameters": {"type": "object",
       "properties": {"s": {"type": "string", "multipleOf": 3}}}}},
      {"type": "function", "function": {"name": "t", "parameters": {"type": "string"}}}])";
  for (const char* name : {"s", "t"}) {
    ApiError error = chat_error(messages + unsupported_tools + R"(, "tool_choice": {"type": "function", "function": {"name": ")" +
                                name + "\"}}}");
    EXPECT_EQ(error.status(), 400) << name;
    EXPECT_EQ(error.param(), std::string("tools[") + (name[0] == 's' ? "1" : "2") + "].function.parameters") << name;
  }
  ApiError multiple_of = chat_error(messages + unsupported_tools +
                                   R"(, "tool_choice": {"type": "function", "function": {"name": "s"}}})");
  EXPECT_NE(std::string(multiple_of.what()).find("'multipleOf'"), std::string::npos) << multiple_of.what();
  // Unsupported parameters of a function not forced do not matter: "auto" parses its markup.
  EXPECT_EQ(parse_chat_request(nlohmann::ordered_json::parse(messages + unsupported_tools + "}"), kLimits).tool_choice,
            ToolChoice::Auto);
}

TEST(ApiError, BodyIsTheOpenAiErrorObject) {
  ApiError error(404, "no such model", "model", "model_not_found");
  nlohmann::json body = nlohmann::json::parse(error.body());
  EXPECT_EQ(body["error"]["message"], "no such model");
  EXPECT_EQ(body["error"]["type"], "not_found_error");
  EXPECT_EQ(body["error"]["param"], "model");
  EXPECT_EQ(body["error"]["code"], "model_not_found");
  nlohmann::json plain = nlohmann::json::parse(ApiError(400, "bad \xff byte").body());
  EXPECT_TRUE(plain["error"]["param"].is_null());
  EXPECT_EQ(plain["error"]["type"], "invalid_request_error");
}

}  // namespace
}  // namespace rackserve::api

namespace rackserve::api {
namespace {

// vLLM's structured_outputs (and the older guided_json / guided_choice): a schema as an
// object or as text, a choice list, json_object; one kind per request, none beside
// response_format or a forced tool call; regex and grammar answer 422.
TEST(ChatRequest, ReadsVllmStructuredOutputs) {
  const std::string messages = R"({"messages": [{"role": "user", "content": "a"}], )";
  auto parse = [&](const std::string& extra) {
    return parse_chat_request(nlohmann::ordered_json::parse(messages + extra + "}"), kLimits);
  };
  auto accepts = [](const JsonSchema& schema, std::string_view text) {
    JsonSchemaGrammar grammar(schema);
    return grammar.accept(text) && grammar.complete();
  };
  const std::string schema = R"({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]})";
  for (const std::string& given : {R"("structured_outputs": {"json": )" + schema + "}",
                                   R"("structured_outputs": {"json": )" + nlohmann::json(schema).dump() + "}",
                                   R"("guided_json": )" + schema}) {
    const ChatRequest request = parse(given);
    EXPECT_EQ(request.response_format, ResponseFormat::JsonSchema) << given;
    ASSERT_NE(request.json_schema, nullptr) << given;
    EXPECT_TRUE(accepts(*request.json_schema, R"({"ok": true})")) << given;
    EXPECT_FALSE(accepts(*request.json_schema, R"({})")) << given;
  }
  const ChatRequest choice = parse(R"("structured_outputs": {"choice": ["positive", "negative", "positive"]})");
  EXPECT_EQ(choice.response_format, ResponseFormat::Choice);
  ASSERT_NE(choice.choices, nullptr);
  EXPECT_EQ(choice.choices->texts(), (std::vector<std::string>{"negative", "positive"}));
  EXPECT_EQ(choice.format_field, "structured_outputs.choice");
  EXPECT_EQ(parse(R"("guided_choice": ["a"])").response_format, ResponseFormat::Choice);
  EXPECT_EQ(parse(R"("structured_outputs": {"json_object": true})").response_format, ResponseFormat::JsonObject);
  EXPECT_EQ(parse(R"("structured_outputs": {"json_object": false, "whitespace_pattern": " "})").response_format,
            ResponseFormat::Text);

  EXPECT_EQ(chat_error(messages + R"("structured_outputs": {"regex": "a+"}})").status(), 422);
  EXPECT_EQ(chat_error(messages + R"("structured_outputs": {"grammar": "root ::= x"}})").param(), "structured_outputs.grammar");
  EXPECT_EQ(chat_error(messages + R"("guided_regex": "a+"})").status(), 422);
  EXPECT_EQ(chat_error(messages + R"("structured_outputs": {"choice": []}})").param(), "structured_outputs.choice");
  EXPECT_EQ(chat_error(messages + R"("structured_outputs": {"choice": ["a", 1]}})").status(), 400);
  EXPECT_EQ(chat_error(messages + R"("structured_outputs": {"json": "{not json"}})").param(), "structured_outputs.json");
  ApiError keyword = chat_error(messages + R"("structured_outputs": {"json": {"type": "object", "properties":
      {"s": {"type": "string", "multipleOf": 1}}}}})");
  EXPECT_EQ(keyword.status(), 400);
  EXPECT_NE(std::string(keyword.what()).find("'multipleOf'"), std::string::npos) << keyword.what();
  EXPECT_EQ(chat_error(messages + R"("structured_outputs": {"json_object": true, "choice": ["a"]}})").status(), 400);
  EXPECT_EQ(chat_error(messages + R"("guided_choice": ["a"], "structured_outputs": {"choice": ["b"]}})").status(), 400);
  EXPECT_EQ(chat_error(messages + R"("guided_choice": ["a"], "response_format": {"type": "json_object"}})").param(),
            "guided_choice");
  EXPECT_EQ(chat_error(messages + R"("tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "required",
                "guided_choice": ["a"]})")
                .param(),
            "guided_choice");
}

TEST(CompletionRequest, ReadsVllmStructuredOutputs) {
  const CompletionRequest choice = parse_completion_request(
      nlohmann::ordered_json::parse(R"({"prompt": "x", "structured_outputs": {"choice": ["a", "b"]}})"), kLimits);
  EXPECT_EQ(choice.structured.kind, StructuredOutput::Kind::Choice);
  ASSERT_NE(choice.structured.choices, nullptr);
  EXPECT_EQ(choice.structured.choices->texts().size(), 2u);
  const CompletionRequest plain = parse_completion_request(nlohmann::ordered_json::parse(R"({"prompt": "x"})"), kLimits);
  EXPECT_EQ(plain.structured.kind, StructuredOutput::Kind::None);
  EXPECT_EQ(completion_error(R"({"prompt": "x", "guided_json": 3})").param(), "guided_json");
}

}  // namespace
}  // namespace rackserve::api
