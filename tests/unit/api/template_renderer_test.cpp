// make_template_renderer against jinja2 in the Hugging Face environment, for every official
// template under the shared models directory (tests/data/chat_templates):
// - tool-call arguments reach each template in the form it reads: a conversation whose
//   arguments are in the other form renders as jinja2 renders the one in that form
//   (tests/reference/template_conversations.py pairs them);
// - a request body parsed as the server parses it keeps the client's key order up to the
//   prompt (tool schemas, argument mappings), on the OpenAI and the Anthropic route.
// A conversation jinja2 rejects must be rejected (400) here too.
#include <chrono>
#include <functional>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "api/anthropic_request.h"
#include "api/api_error.h"
#include "api/chat_request.h"
#include "api/ordered_json_parser.h"
#include "api/template_renderer.h"
#include "unit/jinja/template_fixtures.h"

namespace rackserve::api {
namespace {

using nlohmann::ordered_json;
using text::ToolArgumentsForm;

const FieldLimits kLimits{.max_n = 4, .max_logprobs = 5, .vocab_size = 512, .max_model_len = 4096};

// Two conversations that differ only in the form of their tool calls' arguments.
struct ArgumentForms {
  const char* mapping;
  const char* text;
  bool text_is_ours;  // the text is what the server writes for the mapping (compact JSON)
};

constexpr ArgumentForms kArgumentForms[] = {
    {"tool_call_string_arguments_as_mapping", "tool_call_string_arguments", false},
    {"parallel_tool_calls", "tool_call_mapping_arguments_as_text", true},
    {"unicode_tool_arguments", "unicode_tool_arguments_as_text", true},
    {"client_key_order", "client_key_order_arguments_as_text", true},
};
constexpr const ArgumentForms& kClientKeyOrder = kArgumentForms[3];

// Templates that render every conversation the checks below expect (jinja2 raises for
// none of them), so their checks compare prompts, never only errors.
const std::set<std::string> kRenderEveryPair = {
    "glm-4.7__chat_template.jinja", "minimax-m2__chat_template.jinja",
    "deepseek-v3.1__chat_template.llamacpp.jinja", "kimi-k2-thinking__chat_template.jinja",
    "deepseek-r1__tokenizer_config.json"};

const ordered_json& conversation_named(const std::string& name) {
  static const ordered_json file =
      jinja::testing::read_json(jinja::testing::fixture_dir() + "/conversations.json");
  for (const auto& conversation : file["conversations"])
    if (conversation["name"] == name) return conversation;
  throw std::runtime_error("no conversation " + name + "; regenerate the fixtures");
}

class TemplateRendererTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    fixture_ = text::testing::read_template_fixture(GetParam());
    auto chat_template = text::testing::load_fixture_template(fixture_);
    ASSERT_TRUE(chat_template->tool_call_format()) << "every shared template has a tool-call format";
    form_ = text::tool_arguments_form(*chat_template->tool_call_format());
    renderer_ = make_template_renderer(std::move(chat_template));
  }

  const ordered_json& expected(const std::string& conversation) const {
    for (const auto& record : fixture_["results"])
      if (record["conversation"] == conversation) return record;
    throw std::runtime_error("no record of " + conversation + "; regenerate the fixtures");
  }

  // `render` gives jinja2's output of `conversation`, or a 400 where jinja2 raised.
  void expect_renders_as(const std::string& conversation, const std::function<std::string()>& render) const {
    SCOPED_TRACE("expected: jinja2's rendering of " + conversation);
    const ordered_json& record = expected(conversation);
    if (kRenderEveryPair.contains(GetParam())) {
      EXPECT_TRUE(record.contains("output")) << record.dump();
    }
    if (record.contains("output")) {
      try {
        EXPECT_EQ(render(), record["output"].get<std::string>());
      } catch (const ApiError& error) {
        ADD_FAILURE() << "jinja2 rendered it, we answered " << error.status() << ": " << error.what();
      }
    } else {
      EXPECT_THROW(render(), ApiError) << "jinja2 raised " << record["error"].dump();
    }
  }

  std::string render_conversation(const std::string& name) const {
    const ordered_json& conversation = conversation_named(name);
    const ordered_json tools = conversation.value("tools", ordered_json());
    const ordered_json kwargs = conversation.value("kwargs", ordered_json::object());
    return renderer_->render(
        {conversation["messages"], tools, kwargs, conversation["add_generation_prompt"].get<bool>(), false});
  }

  // The conversation of `pair` whose jinja2 rendering the server must give when the client
  // sends `sent` (one of the two), or "" when none: a mapping becomes compact text, not the
  // spaced text a client may have written.
  std::string conversation_for(const ArgumentForms& pair, const std::string& sent) const {
    switch (form_) {
      case ToolArgumentsForm::Mapping: return pair.mapping;
      case ToolArgumentsForm::JsonText: return sent == pair.mapping && !pair.text_is_ours ? "" : pair.text;
      case ToolArgumentsForm::AsGiven: return sent;
    }
    return sent;
  }

  ordered_json fixture_;
  ToolArgumentsForm form_ = ToolArgumentsForm::AsGiven;
  std::shared_ptr<const ChatPromptRenderer> renderer_;
};

TEST_P(TemplateRendererTest, ToolCallArgumentsReachTheTemplateInTheFormItReads) {
  for (const auto& pair : kArgumentForms) {
    for (const std::string sent : {pair.mapping, pair.text}) {
      const std::string rendered_as = conversation_for(pair, sent);
      if (rendered_as.empty()) continue;
      SCOPED_TRACE("sent: " + sent);
      expect_renders_as(rendered_as, [&] { return render_conversation(sent); });
    }
  }
}

// The conversation "client_key_order" as a client sends it to /v1/chat/completions, its
// keys in the conversation's order, out of alphabetical order ("type" before "function",
// "required" before "properties", arguments "time" before "restaurant"); `arguments` as
// given.
std::string openai_body(const std::string& arguments) {
  return R"({"model": "m", "messages": [
    {"role": "user", "content": "Book Chez Nous at 19:30 for 4, on the terrace."},
    {"role": "assistant", "content": null, "tool_calls": [{"id": "call_k", "type": "function",
      "function": {"name": "book_table", "arguments": )" +
         arguments + R"(}}]},
    {"role": "tool", "tool_call_id": "call_k", "name": "book_table", "content": "Booked."}],
  "tools": [{"type": "function", "function": {"name": "book_table", "description": "Book a restaurant table.",
    "parameters": {"type": "object", "required": ["time", "restaurant"], "properties": {
      "time": {"type": "string", "description": "24h clock, e.g. 19:30"},
      "restaurant": {"type": "string"},
      "party_size": {"type": "integer", "minimum": 1},
      "options": {"type": "object", "properties": {"terrace": {"type": "boolean"}, "highchair": {"type": "boolean"}}}}}}}]})";
}

constexpr const char* kArgumentsMapping =
    R"({"time": "19:30", "restaurant": "Chez Nous", "party_size": 4, "options": {"terrace": true, "highchair": false}})";
constexpr const char* kArgumentsText =
    R"("{\"time\":\"19:30\",\"restaurant\":\"Chez Nous\",\"party_size\":4,\"options\":{\"terrace\":true,\"highchair\":false}}")";

ordered_json parse_body(const std::string& body) {
  auto parsed = parse_ordered_json(body, 256);
  if (!parsed) throw std::runtime_error("the test body is not JSON");
  return std::move(*parsed);
}

std::string render_chat(const ChatPromptRenderer& renderer, const ordered_json& body) {
  ChatRequest chat = parse_chat_request(body, kLimits);
  return renderer.render(
      {chat.messages, chat.tools, chat.chat_template_kwargs, chat.add_generation_prompt, chat.continue_final_message});
}

TEST_P(TemplateRendererTest, ChatCompletionsRequestKeepsTheClientsKeyOrder) {
  const ArgumentForms& pair = kClientKeyOrder;
  for (const auto& [arguments, sent] :
       {std::pair{kArgumentsMapping, pair.mapping}, std::pair{kArgumentsText, pair.text}}) {
    SCOPED_TRACE(std::string("arguments: ") + arguments);
    const ordered_json body = parse_body(openai_body(arguments));
    expect_renders_as(conversation_for(pair, sent), [&] { return render_chat(*renderer_, body); });
  }
  // The same body with its keys sorted (what parsing it into nlohmann::json does) renders
  // otherwise: the order is what the test above checks.
  const ordered_json& record = expected(conversation_for(pair, pair.mapping));
  if (record.contains("output")) {
    const ordered_json sorted = nlohmann::json::parse(openai_body(kArgumentsMapping));
    EXPECT_NE(render_chat(*renderer_, sorted), record["output"].get<std::string>());
  }
}

// "client_key_order" as an Anthropic client sends it to /v1/messages; the route writes the
// tool_use input as compact JSON text.
constexpr const char* kAnthropicBody = R"({"model": "m", "max_tokens": 64,
  "tools": [{"name": "book_table", "description": "Book a restaurant table.", "input_schema": {
    "type": "object", "required": ["time", "restaurant"], "properties": {
      "time": {"type": "string", "description": "24h clock, e.g. 19:30"},
      "restaurant": {"type": "string"},
      "party_size": {"type": "integer", "minimum": 1},
      "options": {"type": "object", "properties": {"terrace": {"type": "boolean"}, "highchair": {"type": "boolean"}}}}}}],
  "messages": [
    {"role": "user", "content": "Book Chez Nous at 19:30 for 4, on the terrace."},
    {"role": "assistant", "content": [{"type": "tool_use", "id": "call_k", "name": "book_table",
      "input": {"time": "19:30", "restaurant": "Chez Nous", "party_size": 4, "options": {"terrace": true, "highchair": false}}}]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_k", "content": "Booked."}]}]})";

std::string render_messages(const ChatPromptRenderer& renderer, const ordered_json& body) {
  const AnthropicRequest request = parse_anthropic_request(body, kLimits, AnthropicEndpoint::Messages);
  return renderer.render({request.messages, request.tools, request.chat_template_kwargs,
                          !request.continue_final_message, request.continue_final_message});
}

TEST_P(TemplateRendererTest, AnthropicMessagesRequestKeepsTheClientsKeyOrder) {
  const std::string conversation = conversation_for(kClientKeyOrder, kClientKeyOrder.text);
  const ordered_json body = parse_body(kAnthropicBody);
  expect_renders_as(conversation, [&] { return render_messages(*renderer_, body); });
  const ordered_json& record = expected(conversation);
  if (record.contains("output")) {
    const ordered_json sorted = nlohmann::json::parse(kAnthropicBody);
    EXPECT_NE(render_messages(*renderer_, sorted), record["output"].get<std::string>());
  }
}

INSTANTIATE_TEST_SUITE_P(SharedModels, TemplateRendererTest, ::testing::ValuesIn(text::testing::template_ids()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& c : name)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return name;
                         });

// The form each family's official templates read (see template_conversations.py's pairs).
TEST(TemplateRendererForms, FamiliesReadTheFormTheirTemplatesNeed) {
  EXPECT_EQ(text::tool_arguments_form(text::ToolCallFormat::Glm45), ToolArgumentsForm::Mapping);
  EXPECT_EQ(text::tool_arguments_form(text::ToolCallFormat::MiniMaxM2), ToolArgumentsForm::Mapping);
  EXPECT_EQ(text::tool_arguments_form(text::ToolCallFormat::DeepSeekV3), ToolArgumentsForm::JsonText);
  EXPECT_EQ(text::tool_arguments_form(text::ToolCallFormat::DeepSeekV31), ToolArgumentsForm::JsonText);
  EXPECT_EQ(text::tool_arguments_form(text::ToolCallFormat::KimiK2), ToolArgumentsForm::AsGiven);
}

// continue_final_message cuts the prompt after the final message's last occurrence; a
// final message the template does not render verbatim is refused (400).
class ContinueFinalMessage : public ::testing::Test {
 protected:
  std::string render(const ordered_json& messages) const {
    const ordered_json tools, kwargs = ordered_json::object();
    return renderer_->render({messages, tools, kwargs, false, true});
  }

  // Strips each message, as GLM's template strips an assistant's content.
  std::shared_ptr<const ChatPromptRenderer> renderer_ = make_template_renderer(std::make_shared<const text::ChatTemplate>(
      text::ChatTemplateSource{"{% for m in messages %}<{{ m.role }}>{{ m.content | trim }}</{{ m.role }}>{% endfor %}",
                               "test"},
      text::SpecialTokens{}));
};

TEST_F(ContinueFinalMessage, CutsAfterTheLastOccurrence) {
  EXPECT_EQ(render({{{"role", "user"}, {"content", "abab"}}, {{"role", "assistant"}, {"content", "ab"}}}),
            "<user>abab</user><assistant>ab");
  EXPECT_EQ(render({{{"role", "user"}, {"content", "aaa"}}, {{"role", "assistant"}, {"content", "aa"}}}),
            "<user>aaa</user><assistant>aa");
  EXPECT_EQ(render({{{"role", "assistant"}, {"content", "x</assistant>"}}}), "<assistant>x</assistant>");
}

// Found by probing the request path with large bodies: the search for a final message the
// template stripped compared it at every position of the prompt (std::string::rfind), 4 s
// for a 900 KB body of "a"s; it must take time linear in the prompt.
TEST_F(ContinueFinalMessage, MessageNotInThePromptIsRefusedInLinearTime) {
  const ordered_json messages = {{{"role", "user"}, {"content", std::string(1 << 20, 'a')}},
                                 {{"role", "assistant"}, {"content", std::string(1 << 19, 'a') + " "}}};
  const auto start = std::chrono::steady_clock::now();
  try {
    render(messages);
    ADD_FAILURE() << "rendered a final message the prompt does not hold";
  } catch (const ApiError& error) {
    EXPECT_EQ(error.status(), 400);
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 2.0);
}

}  // namespace
}  // namespace rackserve::api
