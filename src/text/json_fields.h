// Typed access to JSON fields with errors that name the file and the field path
// ("tokenizer.json: model.merges[12]: expected a string"). Used by the tokenizer loaders.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace rackserve::text {

class JsonField {
 public:
  JsonField(const nlohmann::json& value, std::string origin, std::string path)
      : value_(&value), origin_(std::move(origin)), path_(std::move(path)) {}

  const nlohmann::json& json() const { return *value_; }
  const std::string& path() const { return path_; }
  bool is_null() const { return value_->is_null(); }
  bool has(std::string_view key) const { return value_->is_object() && value_->contains(key) && !(*value_)[std::string(key)].is_null(); }

  JsonField operator[](std::string_view key) const {
    expect_object();
    auto it = value_->find(key);
    if (it == value_->end()) fail(fmt::format("missing field \"{}\"", key));
    return JsonField(*it, origin_, child(key));
  }
  JsonField at(size_t index) const { return JsonField((*value_)[index], origin_, path_ + "[" + std::to_string(index) + "]"); }
  size_t size() const { return value_->size(); }

  std::string string() const {
    if (!value_->is_string()) fail("expected a string, got " + std::string(value_->type_name()));
    return value_->get<std::string>();
  }
  bool boolean() const {
    if (!value_->is_boolean()) fail("expected true or false, got " + std::string(value_->type_name()));
    return value_->get<bool>();
  }
  uint64_t unsigned_integer(uint64_t max) const {
    if (!value_->is_number_unsigned() || value_->get<uint64_t>() > max) {
      fail(fmt::format("expected an integer in [0, {}], got {}", max, value_->dump()));
    }
    return value_->get<uint64_t>();
  }
  // Optional fields: the default when absent or null.
  std::string string_or(std::string_view key, std::string fallback) const {
    return has(key) ? (*this)[key].string() : std::move(fallback);
  }
  bool boolean_or(std::string_view key, bool fallback) const { return has(key) ? (*this)[key].boolean() : fallback; }

  void expect_object() const {
    if (!value_->is_object()) fail("expected an object, got " + std::string(value_->type_name()));
  }
  void expect_array() const {
    if (!value_->is_array()) fail("expected an array, got " + std::string(value_->type_name()));
  }
  [[noreturn]] void fail(std::string_view message) const {
    RS_FAIL("{}: {}: {}", origin_, path_.empty() ? "(top level)" : path_, message);
  }

 private:
  std::string child(std::string_view key) const { return path_.empty() ? std::string(key) : path_ + "." + std::string(key); }

  const nlohmann::json* value_;
  std::string origin_;
  std::string path_;
};

}  // namespace rackserve::text
