// ChatTemplate: a chat request (messages, tools, add_generation_prompt, chat_template_kwargs)
// → the prompt string, rendered exactly as transformers' apply_chat_template does with the
// model's Jinja template. The template comes from the model directory (chat_template.jinja,
// else tokenizer_config.json's `chat_template`, a string or a list of named templates) or
// from an explicit file (--chat-template FILE). Immutable once built; render() is thread-safe.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "text/jinja/template.h"
#include "text/parsers/tool_call_parser.h"

namespace rackserve::text {

// What the template sees besides the messages (transformers passes the tokenizer's
// special_tokens_map); an absent token is not defined in the template.
struct SpecialTokens {
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
  std::optional<std::string> unk_token;
  std::optional<std::string> pad_token;
};

struct ChatRequest {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();  // [{role, content, ...}]
  nlohmann::ordered_json tools;  // null when the request has none (the template sees None)
  bool add_generation_prompt = true;
  // chat_template_kwargs, e.g. {"enable_thinking": false}; they may override special tokens
  // but not messages/tools/documents/add_generation_prompt.
  nlohmann::ordered_json kwargs = nlohmann::ordered_json::object();
};

struct ChatTemplateSource {
  std::string text;
  std::string origin;  // e.g. "DIR/chat_template.jinja" or "tokenizer_config.json:chat_template[default]"
};

// Finds the template of a model directory. `override_file` wins when set. Named template
// lists resolve `name` if given, else "tool_use" when `has_tools` and present, else
// "default". Throws rackserve::Error naming the files looked at when there is none.
ChatTemplateSource find_chat_template(const std::filesystem::path& model_dir,
                                      const std::optional<std::filesystem::path>& override_file = std::nullopt,
                                      const std::optional<std::string>& name = std::nullopt, bool has_tools = false);

// bos/eos/unk/pad from DIR/tokenizer_config.json (a string or an {"content": ...} object);
// all absent when the file is missing.
SpecialTokens read_special_tokens(const std::filesystem::path& model_dir);

class ChatTemplate {
 public:
  // Parses the template (jinja::Error with line and column on a syntax error).
  ChatTemplate(ChatTemplateSource source, SpecialTokens tokens, jinja::TemplateOptions options = {});

  // find_chat_template + read_special_tokens.
  static ChatTemplate from_model_dir(const std::filesystem::path& model_dir,
                                     const std::optional<std::filesystem::path>& override_file = std::nullopt,
                                     jinja::TemplateOptions options = {});

  // Throws jinja::Error when the template fails (including its own raise_exception), and
  // rackserve::Error for a malformed request.
  std::string render(const ChatRequest& request) const;

  const std::string& origin() const { return origin_; }
  const SpecialTokens& special_tokens() const { return tokens_; }
  // The format the template renders assistant tool calls in, when it is one we parse.
  std::optional<ToolCallFormat> tool_call_format() const { return tool_call_format_; }

 private:
  std::string origin_;
  std::optional<ToolCallFormat> tool_call_format_;
  SpecialTokens tokens_;
  jinja::Template template_;
};

}  // namespace rackserve::text
