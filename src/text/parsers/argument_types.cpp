#include "text/parsers/argument_types.h"

#include <optional>

#include "text/parsers/markup_name.h"

namespace rackserve::text {
namespace {

// Validates without building a value (and without recursion, so any nesting is safe).
bool is_json(std::string_view text) { return !text.empty() && nlohmann::json::accept(text); }

}  // namespace

std::string json_string(std::string_view text) {
  return nlohmann::json(std::string(text)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

ArgumentTypes::ArgumentTypes(const nlohmann::json& tools) {
  if (!tools.is_array()) return;
  for (const auto& tool : tools) {
    if (!tool.is_object() || !tool.contains("function")) continue;
    const auto& function = tool["function"];
    if (!function.is_object() || !function.contains("name") || !function["name"].is_string()) continue;
    auto& kinds = kinds_[function["name"].get<std::string>()];
    if (!function.contains("parameters") || !function["parameters"].is_object()) continue;
    const auto& parameters = function["parameters"];
    if (!parameters.contains("properties") || !parameters["properties"].is_object()) continue;
    for (const auto& [name, schema] : parameters["properties"].items()) {
      if (!schema.is_object() || !schema.contains("type")) continue;
      const auto& type = schema["type"];
      if (type.is_string()) {
        kinds[name] = type == "string" ? Kind::String : Kind::Other;
      } else if (type.is_array() && !type.empty()) {
        bool has_string = false;
        for (const auto& entry : type) has_string = has_string || entry == "string";
        kinds[name] = has_string ? Kind::String : Kind::Other;
      }
    }
  }
}

std::string ArgumentTypes::value_json(std::string_view function, std::string_view parameter,
                                      std::string_view text) const {
  std::optional<Kind> kind;
  if (auto found = kinds_.find(function); found != kinds_.end()) {
    if (auto entry = found->second.find(parameter); entry != found->second.end()) kind = entry->second;
  }
  if (kind == Kind::String) return json_string(text);
  const std::string_view value = trim_whitespace(text);
  const bool typed = kind.has_value();
  if (is_json(value) && (typed || value.front() != '"')) return std::string(value);
  return json_string(text);
}

}  // namespace rackserve::text
