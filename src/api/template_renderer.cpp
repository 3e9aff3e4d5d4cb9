#include "api/template_renderer.h"

#include <cstdint>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "api/api_error.h"
#include "api/ordered_json_parser.h"
#include "text/jinja/error.h"

namespace rackserve::api {
namespace {

using text::ToolArgumentsForm;

// Arguments text nested deeper than this stays text (a request body nests at most 256).
constexpr int kMaxArgumentsDepth = 256;

// One call's `arguments` in `form`. Text that is not a JSON object stays text (the
// template then says what it expected). An object becomes its JSON text written
// compactly: no whitespace, non-ASCII characters as they are, keys in the client's order,
// i.e. Python's json.dumps(arguments, ensure_ascii=False, separators=(",", ":")) (numbers
// aside: integers past 64 bits were read as doubles, and doubles in [1e15, 1e16) are
// written with an exponent where Python writes every digit). It is the text the Anthropic
// route writes for a tool_use input, so both APIs give a model the same prompt.
void convert_arguments(nlohmann::ordered_json& arguments, ToolArgumentsForm form) {
  if (form == ToolArgumentsForm::Mapping && arguments.is_string()) {
    auto object = parse_ordered_json(arguments.get_ref<const std::string&>(), kMaxArgumentsDepth);
    if (object && object->is_object()) arguments = std::move(*object);
  } else if (form == ToolArgumentsForm::JsonText && arguments.is_object()) {
    arguments = arguments.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
}

// Every assistant message's tool_calls[].function.arguments in `form`. The messages were
// validated only as far as the template needs, so anything shaped otherwise is left alone.
void convert_tool_call_arguments(nlohmann::ordered_json& messages, ToolArgumentsForm form) {
  if (form == ToolArgumentsForm::AsGiven) return;
  for (auto& message : messages) {
    if (!message.is_object()) continue;
    auto role = message.find("role");
    if (role == message.end() || !role->is_string() || role->get_ref<const std::string&>() != "assistant") continue;
    auto calls = message.find("tool_calls");
    if (calls == message.end() || !calls->is_array()) continue;
    for (auto& call : *calls) {
      if (!call.is_object()) continue;
      auto function = call.find("function");
      if (function == call.end() || !function->is_object()) continue;
      auto arguments = function->find("arguments");
      if (arguments != function->end()) convert_arguments(*arguments, form);
    }
  }
}

// Where `pattern` (not empty, shorter than 4 GiB) last occurs in `text`, or npos, in time
// linear in both: Knuth-Morris-Pratt over both read backwards. std::string::rfind compares
// the whole pattern at every position, so a long final message that the template does not
// render verbatim, over a prompt of similar text, held a thread for seconds.
size_t last_occurrence(std::string_view text, std::string_view pattern) {
  // The i-th byte counted from the end.
  const auto from_end = [](std::string_view bytes, size_t i) { return bytes[bytes.size() - 1 - i]; };
  // border[i]: the longest proper border of the pattern's last i + 1 bytes (read backwards).
  std::vector<uint32_t> border(pattern.size(), 0);
  for (size_t i = 1, k = 0; i < pattern.size(); ++i) {
    while (k > 0 && from_end(pattern, i) != from_end(pattern, k)) k = border[k - 1];
    if (from_end(pattern, i) == from_end(pattern, k)) ++k;
    border[i] = static_cast<uint32_t>(k);
  }
  for (size_t i = 0, k = 0; i < text.size(); ++i) {
    while (k > 0 && from_end(text, i) != from_end(pattern, k)) k = border[k - 1];
    if (from_end(text, i) == from_end(pattern, k)) ++k;
    if (k == pattern.size()) return text.size() - 1 - i;
  }
  return std::string_view::npos;
}

class TemplateRenderer : public ChatPromptRenderer {
 public:
  explicit TemplateRenderer(std::shared_ptr<const text::ChatTemplate> chat_template)
      : template_(std::move(chat_template)),
        arguments_form_(template_->tool_call_format() ? text::tool_arguments_form(*template_->tool_call_format())
                                                      : ToolArgumentsForm::AsGiven) {}

  std::string render(const Chat& chat) const override {
    text::ChatRequest request;
    request.messages = chat.messages;
    convert_tool_call_arguments(request.messages, arguments_form_);
    request.tools = chat.tools;
    request.kwargs = chat.kwargs;
    request.add_generation_prompt = chat.add_generation_prompt;
    try {
      std::string prompt = template_->render(request);
      if (chat.continue_final_message) trim_after_final_message(chat, prompt);
      return prompt;
    } catch (const jinja::Error& error) {
      throw ApiError(400, fmt::format("The chat template rejected the conversation: {}", error.what()), "messages");
    } catch (const Error& error) {
      throw ApiError(400, fmt::format("The conversation cannot be rendered: {}", error.what()), "messages");
    }
  }

 private:
  // continue_final_message: cut the prompt right after the last message's content, so
  // the model continues it (what transformers does with continue_final_message=True).
  static void trim_after_final_message(const Chat& chat, std::string& prompt) {
    const auto& last = chat.messages.back();
    if (!last.contains("content") || !last["content"].is_string()) return;
    const std::string content = last["content"].get<std::string>();
    size_t at = content.empty() ? std::string::npos : last_occurrence(prompt, content);
    if (at == std::string::npos)
      throw ApiError(400, "continue_final_message: the final message's content does not appear in the prompt", "messages");
    prompt.resize(at + content.size());
  }

  std::shared_ptr<const text::ChatTemplate> template_;
  ToolArgumentsForm arguments_form_;  // what the template reads tool-call arguments as
};

}  // namespace

std::shared_ptr<const ChatPromptRenderer> make_template_renderer(std::shared_ptr<const text::ChatTemplate> chat_template) {
  return std::make_shared<TemplateRenderer>(std::move(chat_template));
}

}  // namespace rackserve::api
