// Typed access to the fields of a request's JSON object. Every reader treats a missing
// field and an explicit null alike (clients send null for "unset"), and throws a 400
// ApiError naming the field for a wrong type or an out-of-range value, so request parsers
// never touch nlohmann's throwing accessors directly. Unknown fields are ignored, as
// vLLM and llama.cpp do (clients send vendor extensions such as "user" or "metadata").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace rackserve::api {

class JsonFields {
 public:
  // `object` must outlive the reader; throws 400 when it is not a JSON object.
  // `where` prefixes field names in messages ("messages[2]." for a nested object).
  explicit JsonFields(const nlohmann::ordered_json& object, std::string where = {});

  // The raw value, nullptr when absent or null.
  const nlohmann::ordered_json* find(std::string_view key) const;
  bool has(std::string_view key) const { return find(key) != nullptr; }

  std::optional<std::string> string(std::string_view key) const;
  std::optional<bool> boolean(std::string_view key) const;
  // Integers in [low, high]; an integral float (3.0) counts as an integer.
  std::optional<int64_t> integer(std::string_view key, int64_t low, int64_t high) const;
  // Finite numbers in [low, high].
  std::optional<double> number(std::string_view key, double low, double high) const;
  // A string or an array of strings (OpenAI's "stop"), at most `max_items` of them.
  std::vector<std::string> string_or_strings(std::string_view key, size_t max_items) const;
  // An array of integers in [low, high].
  std::vector<int64_t> integers(std::string_view key, int64_t low, int64_t high, size_t max_items) const;
  // An object (for pass-through fields such as chat_template_kwargs); nullopt when absent.
  std::optional<nlohmann::ordered_json> object(std::string_view key) const;

  // "where" + key, for messages.
  std::string name(std::string_view key) const;

 private:
  const nlohmann::ordered_json& object_;
  std::string where_;
};

// The JSON type name of `value` as a client would say it ("string", "array", ...).
const char* json_type_name(const nlohmann::ordered_json& value);

}  // namespace rackserve::api
