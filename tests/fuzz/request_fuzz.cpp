// libFuzzer target for the chat request path (build with -DRACKSERVE_FUZZ=ON and clang):
// bytes -> the body parser (parse_ordered_json with the server's depth cap) -> the
// OpenAI and both Anthropic request parsers -> the chat template renderer, with a real
// template that renders tools and tool calls. The low bit of the input's last byte picks
// GLM-4.7's template (1) or DeepSeek-V3.1's (0); JSON allows trailing whitespace, so a
// body can end in either. Without the shared models directory a small built-in template
// stands in.
// Bad input must end in an ApiError with a 4xx status, as the routes answer it: anything
// else escaping (a rackserve::Error, an nlohmann exception: a 500), a crash, a hang or a
// sanitizer report is a finding.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "api/anthropic_request.h"
#include "api/api_error.h"
#include "api/assistant_output.h"
#include "api/chat_request.h"
#include "api/ordered_json_parser.h"
#include "api/template_renderer.h"

namespace {

using namespace rackserve;

constexpr int kMaxDepth = 256;  // parse_json_body's cap
const api::FieldLimits kLimits{.max_n = 16, .max_logprobs = 20, .vocab_size = 129280, .max_model_len = 131072};

// Renders tools, tool calls (arguments as a mapping, as GLM's do) and tool results.
constexpr std::string_view kFallbackTemplate = R"({%- if tools -%}
{%- for tool in tools %}<tool>{{ tool.function.name }}: {{ tool | tojson }}</tool>{% endfor -%}
{%- endif -%}
{%- for m in messages -%}
<|{{ m.role }}|>{{ m.content if m.content is string else '' }}
{%- if m.tool_calls %}{% for call in m.tool_calls %}<tool_call>{{ call.function.name }}
{%- for k, v in call.function.arguments.items() %}<arg_key>{{ k }}</arg_key><arg_value>{{ v | tojson }}</arg_value>{% endfor -%}
</tool_call>{% endfor %}{% endif -%}
{%- endfor -%}
{%- if add_generation_prompt %}<|assistant|>{% endif -%})";

struct ServedTemplate {
  std::shared_ptr<const api::ChatPromptRenderer> renderer;
  std::optional<text::ToolCallFormat> tool_call_format;
  std::string answer;  // a tool-call answer in that format, for the output parser
};

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

ServedTemplate load_template(const char* relative_path, text::SpecialTokens tokens, std::string answer) {
  const std::filesystem::path path = std::filesystem::path(RACKSERVE_SHARED_MODELS_DIR) / relative_path;
  text::ChatTemplateSource source{.text = std::string(kFallbackTemplate), .origin = "built-in"};
  if (std::filesystem::exists(path)) {
    source = {.text = read_file(path), .origin = path.string()};
  } else {
    std::fprintf(stderr, "%s not found: rendering with the built-in template\n", path.c_str());
  }
  jinja::TemplateOptions options;
  options.local_time = [] { return std::tm{}; };
  auto chat_template = std::make_shared<const text::ChatTemplate>(std::move(source), std::move(tokens), options);
  const auto format = chat_template->tool_call_format().value_or(text::ToolCallFormat::Glm45);
  return {api::make_template_renderer(chat_template), format, std::move(answer)};
}

const ServedTemplate& served_template(bool glm) {
  static const ServedTemplate glm_template = load_template(
      "glm-4.7/chat_template.jinja", {},
      "<tool_call>get_weather<arg_key>city</arg_key><arg_value>Paris</arg_value><arg_key>days</arg_key>"
      "<arg_value>3</arg_value></tool_call>");
  static const ServedTemplate deepseek_template = load_template(
      "deepseek-v3.1/chat_template.llamacpp.jinja",
      {.bos_token = "<｜begin▁of▁sentence｜>", .eos_token = "<｜end▁of▁sentence｜>", .unk_token = {}, .pad_token = {}},
      "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"city\": \"Paris\"}<｜tool▁call▁end｜>"
      "<｜tool▁calls▁end｜>");
  return glm ? glm_template : deepseek_template;
}

[[noreturn]] void finding(const char* what, const char* detail) {
  std::fprintf(stderr, "finding: %s: %s\n", what, detail);
  std::abort();
}

// What a route does after parsing: render the prompt, then read a tool-call answer with
// the request's tools (their schemas type the arguments).
void render(const ServedTemplate& served, const api::ChatPromptRenderer::Chat& chat) {
  const std::string prompt = served.renderer->render(chat);
  api::ServedModel model;
  model.split_reasoning = true;
  model.tool_call_format = served.tool_call_format;
  api::AssistantOutputParser output(api::assistant_output_options(model, prompt, chat.tools));
  output.append(served.answer);
  output.finish();
}

// One route's steps; only a 4xx ApiError may leave them.
template <typename Steps>
void run_route(const char* route, Steps&& steps) {
  try {
    steps();
  } catch (const api::ApiError& error) {
    if (error.status() < 400 || error.status() >= 500) finding(route, error.what());
    error.body(api::ErrorShape::OpenAI);
    error.body(api::ErrorShape::Anthropic);
  } catch (const std::exception& error) {
    finding(route, error.what());  // the route would answer 500
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const ServedTemplate& served = served_template((data[size - 1] & 1) != 0);
  const auto body = api::parse_ordered_json(input, kMaxDepth);
  if (!body) return 0;  // 400 invalid_json

  run_route("chat", [&] {
    const api::ChatRequest chat = api::parse_chat_request(*body, kLimits);
    render(served, {chat.messages, chat.tools, chat.chat_template_kwargs, chat.add_generation_prompt,
                    chat.continue_final_message});
  });
  // Both Anthropic endpoints read the same conversation; only count_tokens' is rendered.
  run_route("messages", [&] { api::parse_anthropic_request(*body, kLimits, api::AnthropicEndpoint::Messages); });
  run_route("count_tokens", [&] {
    const api::AnthropicRequest messages = api::parse_anthropic_request(*body, kLimits, api::AnthropicEndpoint::CountTokens);
    render(served, {messages.messages, messages.tools, messages.chat_template_kwargs, !messages.continue_final_message,
                    messages.continue_final_message});
  });
  return 0;
}
