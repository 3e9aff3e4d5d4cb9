// Bridges between JSON and template values: request JSON (messages, tools, kwargs) becomes
// Values with key order preserved, and the `tojson` filter reproduces Python's json.dumps
// byte for byte (separators, indentation, float repr, ensure_ascii escapes).
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "text/jinja/value.h"

namespace rackserve::jinja {

// Objects keep their key order (use nlohmann::ordered_json when parsing requests, or the
// order of the client's JSON is lost). Integers beyond int64 become floats.
Value from_json(const nlohmann::ordered_json& json);

struct JsonDumpOptions {
  bool ensure_ascii = false;          // transformers' tojson default (json.dumps defaults to true)
  std::optional<std::string> indent;  // nullopt: single line; else the per-level indent text
  std::optional<std::string> item_separator;  // default ", " without indent, "," with it
  std::string key_separator = ": ";
  bool sort_keys = false;
  size_t max_bytes = size_t{64} << 20;  // larger output is an ErrorKind::Limit
};

// json.dumps(value, ...). Throws ErrorKind::Type for values JSON cannot hold (undefined,
// generators, macros) as Python does.
std::string dump_json(const Value& value, const JsonDumpOptions& options);

}  // namespace rackserve::jinja
