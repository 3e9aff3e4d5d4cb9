#include "api/anthropic_messages.h"

#include <map>
#include <string>

#include <fmt/format.h>

#include "api/api_error.h"
#include "api/json_fields.h"

namespace rackserve::api {
namespace {

// Long agent conversations send a message per tool call and per result; the body size limit
// bounds the total anyway.
constexpr size_t kMaxMessages = 16384;

// Tool names by tool_use id, from the assistant turns seen so far (tool messages carry
// the name too, for templates that print it).
using ToolNames = std::map<std::string, std::string>;

void append_line(std::string& text, const std::string& line) {
  if (!text.empty()) text += "\n";
  text += line;
}

std::string required_string(const JsonFields& fields, const char* key) {
  auto value = fields.string(key);
  if (!value) throw bad_request(fields.name(key), "'{}' is required", fields.name(key));
  return std::move(*value);
}

// 422 for a block of a type the caller does not handle: images and documents, server-tool
// blocks, and types Anthropic may add later.
ApiError unsupported_block(const std::string& where, const std::string& type) {
  const std::string block = where.substr(0, where.size() - 1);  // "messages[0].content[1]"
  const char* why = type == "image" || type == "document" ? " (the served model reads text only)" : "";
  return ApiError(422, fmt::format("'{}': \"{}\" content blocks are not supported by this server{}", block, type, why),
                  where + "type", "unsupported_parameter");
}

// A string, or an array of text blocks joined with "\n" (system prompts, system-role
// messages and tool results take this form).
std::string text_of(const nlohmann::ordered_json& content, const std::string& name) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array())
    throw bad_request(name, "'{}' must be a string or an array of text blocks, got {}", name, json_type_name(content));
  std::string text;
  for (size_t index = 0; index < content.size(); ++index) {
    const std::string where = fmt::format("{}[{}].", name, index);
    JsonFields block(content[index], where);
    const std::string type = required_string(block, "type");
    if (type != "text") throw unsupported_block(where, type);
    append_line(text, required_string(block, "text"));
  }
  return text;
}

nlohmann::ordered_json tool_message(const JsonFields& block, const ToolNames& tool_names) {
  const std::string id = required_string(block, "tool_use_id");
  std::string text;
  if (const auto* content = block.find("content")) text = text_of(*content, block.name("content"));
  // The chat templates have no place for the flag; the model reads it in the text.
  if (block.boolean("is_error").value_or(false)) text = "Error: " + text;
  nlohmann::ordered_json message = {{"role", "tool"}, {"tool_call_id", id}};
  if (auto name = tool_names.find(id); name != tool_names.end()) message["name"] = name->second;
  message["content"] = std::move(text);
  return message;
}

// A user turn: its tool results as tool messages first, then its text (if any block was
// text, or the content was a plain string) as one user message.
void add_user_turn(const nlohmann::ordered_json& content, const std::string& where, const ToolNames& tool_names,
                   nlohmann::ordered_json& out) {
  if (content.is_string()) {
    out.push_back({{"role", "user"}, {"content", content}});
    return;
  }
  std::string text;
  bool has_text = content.empty();  // an empty array is an empty user message
  for (size_t index = 0; index < content.size(); ++index) {
    const std::string block_where = fmt::format("{}[{}].", where, index);
    JsonFields block(content[index], block_where);
    const std::string type = required_string(block, "type");
    if (type == "text") {
      append_line(text, required_string(block, "text"));
      has_text = true;
    } else if (type == "tool_result") {
      out.push_back(tool_message(block, tool_names));
    } else if (type == "tool_use" || type == "thinking" || type == "redacted_thinking") {
      throw bad_request(block_where + "type", "'{}type' \"{}\" belongs in an assistant message", block_where, type);
    } else {
      throw unsupported_block(block_where, type);
    }
  }
  if (has_text) out.push_back({{"role", "user"}, {"content", std::move(text)}});
}

nlohmann::ordered_json tool_call(const JsonFields& block, ToolNames& tool_names) {
  const std::string id = required_string(block, "id");
  const std::string name = required_string(block, "name");
  const nlohmann::ordered_json* input = block.find("input");
  if (input == nullptr) throw bad_request(block.name("input"), "'{}' is required", block.name("input"));
  if (!input->is_object())
    throw bad_request(block.name("input"), "'{}' must be an object, got {}", block.name("input"), json_type_name(*input));
  tool_names[id] = name;
  return {{"id", id},
          {"type", "function"},
          {"function", {{"name", name}, {"arguments", input->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)}}}};
}

void add_assistant_turn(const nlohmann::ordered_json& content, const std::string& where, ToolNames& tool_names,
                        nlohmann::ordered_json& out) {
  if (content.is_string()) {
    out.push_back({{"role", "assistant"}, {"content", content}});
    return;
  }
  std::string text, reasoning;
  nlohmann::ordered_json calls = nlohmann::ordered_json::array();
  for (size_t index = 0; index < content.size(); ++index) {
    const std::string block_where = fmt::format("{}[{}].", where, index);
    JsonFields block(content[index], block_where);
    const std::string type = required_string(block, "type");
    if (type == "text") {
      append_line(text, required_string(block, "text"));
    } else if (type == "tool_use") {
      calls.push_back(tool_call(block, tool_names));
    } else if (type == "thinking") {
      append_line(reasoning, required_string(block, "thinking"));
    } else if (type == "redacted_thinking") {
      continue;
    } else if (type == "tool_result") {
      throw bad_request(block_where + "type", "'{}type' \"tool_result\" belongs in a user message", block_where);
    } else {
      throw unsupported_block(block_where, type);
    }
  }
  nlohmann::ordered_json message = {{"role", "assistant"}};
  // OpenAI clients send null content beside tool calls; templates test for it.
  message["content"] =
      text.empty() && !calls.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(text);
  if (!calls.empty()) message["tool_calls"] = std::move(calls);
  if (!reasoning.empty()) message["reasoning_content"] = std::move(reasoning);
  out.push_back(std::move(message));
}

}  // namespace

nlohmann::ordered_json chat_messages_from_anthropic(const nlohmann::ordered_json* system,
                                                    const nlohmann::ordered_json* messages) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  if (system != nullptr && !system->is_null()) out.push_back({{"role", "system"}, {"content", text_of(*system, "system")}});

  if (messages == nullptr) throw bad_request("messages", "'messages' is required");
  if (!messages->is_array()) throw bad_request("messages", "'messages' must be an array, got {}", json_type_name(*messages));
  if (messages->empty()) throw bad_request("messages", "'messages' must not be empty");
  if (messages->size() > kMaxMessages) throw bad_request("messages", "'messages' may hold at most {} entries", kMaxMessages);
  ToolNames tool_names;
  for (size_t index = 0; index < messages->size(); ++index) {
    const std::string where = fmt::format("messages[{}].", index);
    JsonFields message(messages->at(index), where);
    const std::string role = required_string(message, "role");
    const nlohmann::ordered_json* content = message.find("content");
    if (content == nullptr) throw bad_request(where + "content", "'{}content' is required", where);
    if (!content->is_string() && !content->is_array())
      throw bad_request(where + "content", "'{}content' must be a string or an array of content blocks, got {}", where,
                        json_type_name(*content));
    if (role == "user") {
      add_user_turn(*content, where + "content", tool_names, out);
    } else if (role == "assistant") {
      add_assistant_turn(*content, where + "content", tool_names, out);
    } else if (role == "system") {
      out.push_back({{"role", "system"}, {"content", text_of(*content, where + "content")}});
    } else {
      throw bad_request(where + "role", "'{}role' must be \"user\" or \"assistant\", got \"{}\"", where, role);
    }
  }
  return out;
}

}  // namespace rackserve::api
