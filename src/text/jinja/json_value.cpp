// JSON conversion with Python's json module semantics.
#include "text/jinja/json_value.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "text/jinja/unicode.h"
#include "text/jinja/value_format.h"

namespace rackserve::jinja {

namespace {

constexpr int kMaxJsonDepth = 512;

Value from_json_at(const nlohmann::ordered_json& json, int depth) {
  if (depth > kMaxJsonDepth) throw Error(ErrorKind::Limit, "JSON input nested too deeply");
  switch (json.type()) {
    case nlohmann::ordered_json::value_t::null: return Value::none();
    case nlohmann::ordered_json::value_t::boolean: return Value::boolean(json.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return Value::integer(json.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      const uint64_t v = json.get<uint64_t>();
      if (v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Value::integer(static_cast<int64_t>(v));
      }
      return Value::number(static_cast<double>(v));
    }
    case nlohmann::ordered_json::value_t::number_float: return Value::number(json.get<double>());
    case nlohmann::ordered_json::value_t::string: return Value::string(json.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      std::vector<Value> items;
      items.reserve(json.size());
      for (const auto& item : json) items.push_back(from_json_at(item, depth + 1));
      return Value::list(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      auto dict = std::make_shared<Dict>();
      dict->entries.reserve(json.size());
      // ordered_json keys are unique already: append without the equality scan of Dict::set.
      for (const auto& [key, item] : json.items()) {
        Value value = from_json_at(item, depth + 1);
        dict->depth = std::max(dict->depth, nesting_depth(value) + 1);
        dict->entries.emplace_back(Value::string(key), std::move(value));
      }
      return Value::dict(std::move(dict));
    }
    default: throw Error(ErrorKind::Type, "unsupported JSON value (binary or discarded)");
  }
}

class JsonWriter {
 public:
  explicit JsonWriter(const JsonDumpOptions& options)
      : options_(options),
        item_separator_(options.item_separator ? *options.item_separator : (options.indent ? "," : ", ")) {}

  void write(const Value& value, int depth) {
    if (depth > kMaxJsonDepth) throw Error(ErrorKind::Value, "Circular reference detected or nesting too deep");
    switch (value.kind()) {
      case ValueKind::None: out_ += "null"; return;
      case ValueKind::Bool: out_ += value.as_bool() ? "true" : "false"; return;
      case ValueKind::Int: out_ += std::to_string(value.as_int()); return;
      case ValueKind::Float: write_float(value.as_float()); return;
      case ValueKind::String: write_string(value.as_string()); return;
      case ValueKind::List: {
        const List& list = value.as_list();
        if (list.kind != SequenceKind::List && list.kind != SequenceKind::Tuple) not_serializable(value);
        write_array(list.items, depth);
        return;
      }
      case ValueKind::Dict: write_object(value.as_dict(), depth); return;
      default: not_serializable(value);
    }
  }

  std::string take() { return std::move(out_); }

 private:
  [[noreturn]] static void not_serializable(const Value& value) {
    throw Error(ErrorKind::Type, "Object of type " + std::string(type_name(value)) + " is not JSON serializable");
  }

  void check_size() const {
    if (out_.size() > options_.max_bytes) {
      throw Error(ErrorKind::Limit, "JSON output exceeds " + std::to_string(options_.max_bytes) + " bytes");
    }
  }

  void newline(int level) {
    if (!options_.indent) return;
    out_ += '\n';
    for (int i = 0; i < level; ++i) out_ += *options_.indent;
  }

  void write_float(double v) {
    if (std::isnan(v)) {
      out_ += "NaN";
    } else if (std::isinf(v)) {
      out_ += v < 0 ? "-Infinity" : "Infinity";
    } else {
      out_ += format_float(v);
    }
  }

  void write_escape(char32_t c) {
    char buf[16];
    std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
    out_ += buf;
  }

  void write_string(std::string_view text) {
    out_ += '"';
    for (size_t pos = 0; pos < text.size();) {
      const size_t start = pos;
      const char32_t c = unicode::decode(text, pos);
      switch (c) {
        case '"': out_ += "\\\""; continue;
        case '\\': out_ += "\\\\"; continue;
        case '\n': out_ += "\\n"; continue;
        case '\r': out_ += "\\r"; continue;
        case '\t': out_ += "\\t"; continue;
        case '\b': out_ += "\\b"; continue;
        case '\f': out_ += "\\f"; continue;
        default: break;
      }
      if (c < 0x20) {
        write_escape(c);
      } else if (options_.ensure_ascii && c >= 0x7F) {
        if (c > 0xFFFF) {
          const char32_t v = c - 0x10000;
          write_escape(0xD800 | (v >> 10));
          write_escape(0xDC00 | (v & 0x3FF));
        } else {
          write_escape(c);
        }
      } else if (c == 0xFFFD && pos - start == 1) {
        unicode::append_utf8(out_, c);  // an invalid byte: never emit invalid UTF-8
      } else {
        out_.append(text.substr(start, pos - start));
      }
    }
    out_ += '"';
  }

  void write_array(const std::vector<Value>& items, int depth) {
    if (items.empty()) {
      out_ += "[]";
      return;
    }
    out_ += '[';
    for (size_t i = 0; i < items.size(); ++i) {
      if (i > 0) out_ += item_separator_;
      newline(depth + 1);
      write(items[i], depth + 1);
      check_size();
    }
    newline(depth);
    out_ += ']';
  }

  void write_key(const Value& key) {
    switch (key.kind()) {
      case ValueKind::String: write_string(key.as_string()); return;
      case ValueKind::Int: write_string(std::to_string(key.as_int())); return;
      case ValueKind::Bool: write_string(key.as_bool() ? "true" : "false"); return;
      case ValueKind::None: write_string("null"); return;
      case ValueKind::Float: {
        const double v = key.as_float();
        write_string(std::isnan(v) ? "NaN" : std::isinf(v) ? (v < 0 ? "-Infinity" : "Infinity") : format_float(v));
        return;
      }
      default:
        throw Error(ErrorKind::Type,
                    "keys must be str, int, float, bool or None, not " + std::string(type_name(key)));
    }
  }

  void write_object(const Dict& dict, int depth) {
    if (dict.size() == 0) {
      out_ += "{}";
      return;
    }
    std::vector<const std::pair<Value, Value>*> entries;
    entries.reserve(dict.size());
    for (const auto& entry : dict.entries) entries.push_back(&entry);
    if (options_.sort_keys) {
      std::stable_sort(entries.begin(), entries.end(),
                       [](const auto* a, const auto* b) { return compare(a->first, b->first, "<"); });
    }
    out_ += '{';
    for (size_t i = 0; i < entries.size(); ++i) {
      if (i > 0) out_ += item_separator_;
      newline(depth + 1);
      write_key(entries[i]->first);
      out_ += options_.key_separator;
      write(entries[i]->second, depth + 1);
      check_size();
    }
    newline(depth);
    out_ += '}';
  }

  const JsonDumpOptions& options_;
  std::string item_separator_;
  std::string out_;
};

}  // namespace

Value from_json(const nlohmann::ordered_json& json) { return from_json_at(json, 0); }

std::string dump_json(const Value& value, const JsonDumpOptions& options) {
  JsonWriter writer(options);
  writer.write(value, 0);
  return writer.take();
}

}  // namespace rackserve::jinja
