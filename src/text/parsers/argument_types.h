// ArgumentTypes: turns an argument value that a model wrote as bare text (GLM's
// <arg_value>, MiniMax-M2's <parameter>) back into JSON, using the parameter's JSON-schema
// type from the request's tools. The chat templates render a string value verbatim and
// any other value with tojson, so the inverse is:
// - parameter typed "string" (or a type list containing "string"): the text, verbatim,
//   as a JSON string;
// - parameter with another type (integer, number, boolean, object, array, null): the text
//   as JSON when it is valid JSON (kept as the model wrote it, surrounding whitespace
//   trimmed), else the text as a JSON string;
// - parameter without a type, unknown parameter or function, no tools: the text as JSON
//   when it is a JSON number, boolean, null, array or object, else as a JSON string (a
//   quoted text stays a string with its quotes, as a template would render that string).
#pragma once

#include <map>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace rackserve::text {

class ArgumentTypes {
 public:
  ArgumentTypes() = default;
  // `tools`: the request's "tools" array (OpenAI shape) or null. Never throws: entries that
  // are not shaped as expected are ignored.
  explicit ArgumentTypes(const nlohmann::json& tools);

  // The JSON text of argument `parameter` of `function` written as `text`.
  std::string value_json(std::string_view function, std::string_view parameter, std::string_view text) const;

 private:
  enum class Kind { String, Other };
  std::map<std::string, std::map<std::string, Kind, std::less<>>, std::less<>> kinds_;
};

// `text` as a JSON string literal; invalid UTF-8 becomes U+FFFD.
std::string json_string(std::string_view text);

}  // namespace rackserve::text
