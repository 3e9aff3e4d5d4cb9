#include "api/template_renderer.h"

#include <fmt/format.h>

#include "api/api_error.h"
#include "text/jinja/error.h"

namespace rackserve::api {
namespace {

class TemplateRenderer : public ChatPromptRenderer {
 public:
  explicit TemplateRenderer(std::shared_ptr<const text::ChatTemplate> chat_template) : template_(std::move(chat_template)) {}

  std::string render(const Chat& chat) const override {
    text::ChatRequest request;
    request.messages = nlohmann::ordered_json::parse(chat.messages.dump());
    request.tools = chat.tools.is_null() ? nlohmann::ordered_json() : nlohmann::ordered_json::parse(chat.tools.dump());
    request.kwargs = nlohmann::ordered_json::parse(chat.kwargs.dump());
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
    size_t at = content.empty() ? std::string::npos : prompt.rfind(content);
    if (at == std::string::npos)
      throw ApiError(400, "continue_final_message: the final message's content does not appear in the prompt", "messages");
    prompt.resize(at + content.size());
  }

  std::shared_ptr<const text::ChatTemplate> template_;
};

}  // namespace

std::shared_ptr<const ChatPromptRenderer> make_template_renderer(std::shared_ptr<const text::ChatTemplate> chat_template) {
  return std::make_shared<TemplateRenderer>(std::move(chat_template));
}

}  // namespace rackserve::api
