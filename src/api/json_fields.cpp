#include "api/json_fields.h"

#include <cmath>

#include "api/api_error.h"

namespace rackserve::api {

const char* json_type_name(const nlohmann::ordered_json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::null: return "null";
    case nlohmann::json::value_t::object: return "object";
    case nlohmann::json::value_t::array: return "array";
    case nlohmann::json::value_t::string: return "string";
    case nlohmann::json::value_t::boolean: return "boolean";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned: return "integer";
    case nlohmann::json::value_t::number_float: return "number";
    default: return "binary";
  }
}

JsonFields::JsonFields(const nlohmann::ordered_json& object, std::string where)
    : object_(object), where_(std::move(where)) {
  if (!object_.is_object()) {
    std::string what = where_.empty() ? "the request body" : where_.substr(0, where_.size() - 1);
    throw bad_request(what, "{} must be a JSON object, got {}", what, json_type_name(object_));
  }
}

std::string JsonFields::name(std::string_view key) const { return where_ + std::string(key); }

const nlohmann::ordered_json* JsonFields::find(std::string_view key) const {
  auto it = object_.find(key);
  if (it == object_.end() || it->is_null()) return nullptr;
  return &*it;
}

std::optional<std::string> JsonFields::string(std::string_view key) const {
  const auto* value = find(key);
  if (!value) return std::nullopt;
  if (!value->is_string()) throw bad_request(name(key), "'{}' must be a string, got {}", name(key), json_type_name(*value));
  return value->get<std::string>();
}

std::optional<bool> JsonFields::boolean(std::string_view key) const {
  const auto* value = find(key);
  if (!value) return std::nullopt;
  if (!value->is_boolean())
    throw bad_request(name(key), "'{}' must be a boolean, got {}", name(key), json_type_name(*value));
  return value->get<bool>();
}

namespace {

// The integer `value` holds, or nullopt when it holds a non-integral number or another type.
std::optional<int64_t> as_integer(const nlohmann::ordered_json& value) {
  if (value.is_number_integer()) return value.get<int64_t>();
  if (value.is_number_unsigned()) {
    uint64_t unsigned_value = value.get<uint64_t>();
    if (unsigned_value > static_cast<uint64_t>(INT64_MAX)) return INT64_MAX;
    return static_cast<int64_t>(unsigned_value);
  }
  if (value.is_number_float()) {
    double number = value.get<double>();
    if (std::isfinite(number) && std::floor(number) == number && std::fabs(number) < 9.0e15)
      return static_cast<int64_t>(number);
  }
  return std::nullopt;
}

}  // namespace

std::optional<int64_t> JsonFields::integer(std::string_view key, int64_t low, int64_t high) const {
  const auto* value = find(key);
  if (!value) return std::nullopt;
  auto result = as_integer(*value);
  if (!result) throw bad_request(name(key), "'{}' must be an integer, got {}", name(key), json_type_name(*value));
  if (*result < low || *result > high)
    throw bad_request(name(key), "'{}' must be between {} and {}, got {}", name(key), low, high, *result);
  return result;
}

std::optional<double> JsonFields::number(std::string_view key, double low, double high) const {
  const auto* value = find(key);
  if (!value) return std::nullopt;
  if (!value->is_number())
    throw bad_request(name(key), "'{}' must be a number, got {}", name(key), json_type_name(*value));
  double result = value->get<double>();
  if (!std::isfinite(result) || result < low || result > high)
    throw bad_request(name(key), "'{}' must be between {} and {}, got {}", name(key), low, high, result);
  return result;
}

std::vector<std::string> JsonFields::string_or_strings(std::string_view key, size_t max_items) const {
  const auto* value = find(key);
  if (!value) return {};
  if (value->is_string()) return {value->get<std::string>()};
  if (!value->is_array())
    throw bad_request(name(key), "'{}' must be a string or an array of strings, got {}", name(key),
                      json_type_name(*value));
  if (value->size() > max_items)
    throw bad_request(name(key), "'{}' may hold at most {} entries, got {}", name(key), max_items, value->size());
  std::vector<std::string> result;
  for (const auto& item : *value) {
    if (!item.is_string())
      throw bad_request(name(key), "'{}' entries must be strings, got {}", name(key), json_type_name(item));
    result.push_back(item.get<std::string>());
  }
  return result;
}

std::vector<int64_t> JsonFields::integers(std::string_view key, int64_t low, int64_t high, size_t max_items) const {
  const auto* value = find(key);
  if (!value) return {};
  if (!value->is_array())
    throw bad_request(name(key), "'{}' must be an array of integers, got {}", name(key), json_type_name(*value));
  if (value->size() > max_items)
    throw bad_request(name(key), "'{}' may hold at most {} entries, got {}", name(key), max_items, value->size());
  std::vector<int64_t> result;
  result.reserve(value->size());
  for (const auto& item : *value) {
    auto number = as_integer(item);
    if (!number || *number < low || *number > high)
      throw bad_request(name(key), "'{}' entries must be integers between {} and {}", name(key), low, high);
    result.push_back(*number);
  }
  return result;
}

std::optional<nlohmann::ordered_json> JsonFields::object(std::string_view key) const {
  const auto* value = find(key);
  if (!value) return std::nullopt;
  if (!value->is_object())
    throw bad_request(name(key), "'{}' must be an object, got {}", name(key), json_type_name(*value));
  return *value;
}

}  // namespace rackserve::api
