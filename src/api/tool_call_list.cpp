#include "api/tool_call_list.h"

#include <fmt/format.h>

#include "api/api_error.h"
#include "engine/json_schema_compile.h"

namespace rackserve::api {
namespace {

using Json = nlohmann::ordered_json;

constexpr const char* kSections[] = {"$defs", "definitions"};
// Whitespace bytes in a row the list may hold: one keeps {"city": "Paris"} writable, and a
// model gets no room to pad the calls (the calls are read back, never shown as written).
constexpr int kListWhitespaceRun = 1;

// Rewrites every "$ref": "#/<section>/NAME" string under `schema` to "#/<section>/<prefix>NAME".
void prefix_references(Json& schema, const std::string& prefix) {
  if (schema.is_array()) {
    for (Json& item : schema) prefix_references(item, prefix);
    return;
  }
  if (!schema.is_object()) return;
  for (auto& [key, value] : schema.items()) {
    if (key == "$ref" && value.is_string()) {
      std::string reference = value.get<std::string>();
      for (const char* section : kSections) {
        const std::string head = fmt::format("#/{}/", section);
        if (reference.starts_with(head)) reference = head + prefix + reference.substr(head.size());
      }
      value = reference;
    } else {
      prefix_references(value, prefix);
    }
  }
}

}  // namespace

Json tool_parameters_schema(const Json& function) {
  Json parameters = function.value("parameters", Json());
  if (parameters.is_null() || (parameters.is_object() && parameters.empty()))
    parameters = {{"type", "object"}, {"properties", Json::object()}};
  return parameters;
}

std::shared_ptr<const JsonSchema> compile_tool_call_list(const Json& tools, bool one_call) {
  Json calls = Json::array();
  Json definitions = Json::object();  // section -> {prefixed name -> schema}
  for (size_t i = 0; i < tools.size(); ++i) {
    const Json& function = tools[i]["function"];
    Json parameters = tool_parameters_schema(function);
    const std::string where = fmt::format("tools[{}].function.parameters", i);
    try {
      compile_json_schema(parameters);  // its own errors, with pointers into its own text
    } catch (const JsonSchemaError& error) {
      throw bad_request(where, "'{}': {}", where, error.what());
    }
    const std::string prefix = fmt::format("t{}.", i);
    prefix_references(parameters, prefix);
    for (const char* section : kSections) {
      if (!parameters.contains(section)) continue;
      for (auto& [name, schema] : parameters[section].items()) definitions[section][prefix + name] = schema;
      parameters.erase(section);
    }
    Json call = {{"type", "object"},
                 {"properties", {{"name", {{"const", function["name"]}}}, {"arguments", std::move(parameters)}}},
                 {"required", {"name", "arguments"}},
                 {"additionalProperties", false}};
    calls.push_back(std::move(call));
  }
  Json list = {{"type", "array"}, {"minItems", 1u}, {"items", {{"anyOf", std::move(calls)}}}};
  if (one_call) list["maxItems"] = 1u;
  for (auto& [section, named] : definitions.items()) list[section] = std::move(named);
  try {
    return compile_json_schema(list, {.top_level = TopLevel::Array, .max_whitespace_run = kListWhitespaceRun});
  } catch (const JsonSchemaError& error) {
    // Two tools of one name: their calls cannot be told apart.
    throw bad_request("tools", "the tools cannot be called by name: {}", error.what());
  }
}

std::vector<text::ToolCallDelta> ToolCallListReader::append(std::string_view text) {
  out_.clear();
  size_t arguments_from = 0;  // where this append's arguments text starts, while in_arguments_
  auto flush_arguments = [&](size_t end, bool closed) {
    if (in_arguments_ && named_) emit_arguments(text.substr(arguments_from, end - arguments_from), closed);
  };
  for (size_t at = 0; at < text.size(); ++at) {
    const char byte = text[at];
    if (scan_.in_string()) {
      if (!in_arguments_) string_ += byte;
      if (scan_.step(byte) && !in_arguments_) end_string();
      continue;
    }
    switch (byte) {
      case '"':
        scan_.open();
        if (!in_arguments_) string_ = "\"";
        break;
      case '{':
      case '[':
        ++depth_;
        if (depth_ == 2 && byte == '{') {  // a call opens
          call_open_ = true;
          named_ = false;
          key_.clear();
          expect_key_ = true;
        } else if (depth_ == 3 && byte == '{' && call_open_ && !in_arguments_ && key_ == "arguments") {
          in_arguments_ = true;
          arguments_from = at;
        }
        break;
      case '}':
      case ']':
        --depth_;
        if (depth_ < 2) call_open_ = false;
        if (in_arguments_ && depth_ == 2) {
          flush_arguments(at + 1, /*closed=*/true);
          in_arguments_ = false;
        }
        break;
      case ':':
        if (depth_ == 2) expect_key_ = false;
        break;
      case ',':
        if (depth_ == 2) expect_key_ = true;
        break;
      default:
        break;
    }
  }
  flush_arguments(text.size(), /*closed=*/false);
  return std::move(out_);
}

std::vector<text::ToolCallDelta> ToolCallListReader::finish() {
  out_.clear();
  if (named_) emit_arguments({}, /*flush=*/true);
  return std::move(out_);
}

void ToolCallListReader::emit_arguments(std::string_view text, bool flush) {
  std::string whole;
  argument_bytes_.append(text, whole);
  if (flush) argument_bytes_.flush(whole);
  if (whole.empty()) return;
  if (out_.empty() || out_.back().index != call_) out_.push_back({.index = call_, .id = {}, .name = {}, .arguments = {}});
  out_.back().arguments += whole;
}

// A string outside the arguments just closed: a key of the call, or the value of its "name".
void ToolCallListReader::end_string() {
  if (depth_ != 2 || !call_open_) return;
  std::string decoded;
  try {
    decoded = Json::parse(string_).get<std::string>();
  } catch (const Json::exception&) {
    return;  // not a string JSON reads: nothing to name
  }
  if (expect_key_) {
    key_ = std::move(decoded);
  } else if (key_ == "name" && !named_ && !decoded.empty()) {
    named_ = true;
    call_ = calls_named_++;  // a call without a name takes no number
    out_.push_back({.index = call_, .id = {}, .name = std::move(decoded), .arguments = {}});
  }
}

}  // namespace rackserve::api
