// Chat template discovery and rendering. The render context mirrors transformers'
// render_jinja_template: messages, tools, documents=None, add_generation_prompt, then the
// special tokens and the chat_template_kwargs.
#include "text/chat_template.h"

#include <fstream>
#include <sstream>

#include "core/error.h"

namespace rackserve::text {

namespace {

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  RS_CHECK(in.good(), "cannot read chat template file {}", path.string());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

nlohmann::ordered_json read_json(const std::filesystem::path& path) {
  try {
    return nlohmann::ordered_json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    RS_FAIL("{} is not valid JSON: {}", path.string(), e.what());
  }
}

std::optional<std::string> token_text(const nlohmann::ordered_json& config, const char* key) {
  if (!config.contains(key)) return std::nullopt;
  const auto& token = config[key];
  if (token.is_string()) return token.get<std::string>();
  if (token.is_object() && token.contains("content") && token["content"].is_string()) {
    return token["content"].get<std::string>();
  }
  return std::nullopt;  // null or malformed: not passed to the template
}

ChatTemplateSource pick_named(const nlohmann::ordered_json& list, const std::string& origin,
                              const std::optional<std::string>& name, bool has_tools) {
  const auto find = [&](const std::string& wanted) -> const nlohmann::ordered_json* {
    for (const auto& entry : list) {
      if (entry.is_object() && entry.value("name", "") == wanted && entry.contains("template") &&
          entry["template"].is_string()) {
        return &entry;
      }
    }
    return nullptr;
  };
  std::string wanted = name ? *name : (has_tools && find("tool_use") ? "tool_use" : "default");
  const nlohmann::ordered_json* entry = find(wanted);
  RS_CHECK(entry != nullptr, "{} has no chat template named '{}'", origin, wanted);
  return {(*entry)["template"].get<std::string>(), origin + "[" + wanted + "]"};
}

}  // namespace

ChatTemplateSource find_chat_template(const std::filesystem::path& model_dir,
                                      const std::optional<std::filesystem::path>& override_file,
                                      const std::optional<std::string>& name, bool has_tools) {
  if (override_file) return {read_file(*override_file), override_file->string()};
  const auto jinja_file = model_dir / "chat_template.jinja";
  if (std::filesystem::exists(jinja_file)) return {read_file(jinja_file), jinja_file.string()};
  const auto config_file = model_dir / "tokenizer_config.json";
  if (std::filesystem::exists(config_file)) {
    const auto config = read_json(config_file);
    const std::string origin = config_file.string() + ":chat_template";
    if (config.contains("chat_template")) {
      const auto& value = config["chat_template"];
      if (value.is_string()) return {value.get<std::string>(), origin};
      if (value.is_array()) return pick_named(value, origin, name, has_tools);
      RS_FAIL("{} must be a string or a list of {{name, template}}", origin);
    }
  }
  RS_FAIL("no chat template in {}: looked for chat_template.jinja and tokenizer_config.json's chat_template "
          "(pass --chat-template FILE)",
          model_dir.string());
}

SpecialTokens read_special_tokens(const std::filesystem::path& model_dir) {
  const auto config_file = model_dir / "tokenizer_config.json";
  SpecialTokens tokens;
  if (!std::filesystem::exists(config_file)) return tokens;
  const auto config = read_json(config_file);
  tokens.bos_token = token_text(config, "bos_token");
  tokens.eos_token = token_text(config, "eos_token");
  tokens.unk_token = token_text(config, "unk_token");
  tokens.pad_token = token_text(config, "pad_token");
  return tokens;
}

ChatTemplate::ChatTemplate(ChatTemplateSource source, SpecialTokens tokens, jinja::TemplateOptions options)
    : origin_(std::move(source.origin)),
      tool_call_format_(detect_tool_call_format(source.text)),
      tokens_(std::move(tokens)),
      template_(source.text, std::move(options)) {}

ChatTemplate ChatTemplate::from_model_dir(const std::filesystem::path& model_dir,
                                          const std::optional<std::filesystem::path>& override_file,
                                          jinja::TemplateOptions options) {
  return ChatTemplate(find_chat_template(model_dir, override_file), read_special_tokens(model_dir), std::move(options));
}

std::string ChatTemplate::render(const ChatRequest& request) const {
  RS_CHECK(request.messages.is_array(), "messages must be a JSON array");
  RS_CHECK(request.tools.is_null() || request.tools.is_array(), "tools must be a JSON array or absent");
  RS_CHECK(request.kwargs.is_object(), "chat_template_kwargs must be a JSON object");
  nlohmann::ordered_json context = nlohmann::ordered_json::object();
  context["messages"] = request.messages;
  context["tools"] = request.tools;
  context["documents"] = nullptr;
  context["add_generation_prompt"] = request.add_generation_prompt;
  const auto put = [&](const char* key, const std::optional<std::string>& value) {
    if (value) context[key] = *value;
  };
  put("bos_token", tokens_.bos_token);
  put("eos_token", tokens_.eos_token);
  put("unk_token", tokens_.unk_token);
  put("pad_token", tokens_.pad_token);
  for (const auto& [key, value] : request.kwargs.items()) {
    RS_CHECK(key != "messages" && key != "tools" && key != "documents" && key != "add_generation_prompt",
             "chat_template_kwargs may not set '{}'", key);
    context[key] = value;
  }
  return template_.render(context);
}

}  // namespace rackserve::text
