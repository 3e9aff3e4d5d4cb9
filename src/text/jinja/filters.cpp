// Scalar and string filters of jinja2 (plus transformers' tojson), and the filter table.
// Autoescaping is off in the chat-template environment, so `safe` and `escape` produce
// plain strings (escape's text is HTML-escaped).
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "text/jinja/args.h"
#include "text/jinja/builtins.h"
#include "text/jinja/evaluator.h"
#include "text/jinja/filters_sequence.h"
#include "text/jinja/json_value.h"
#include "text/jinja/operators.h"
#include "text/jinja/py_string.h"
#include "text/jinja/unicode.h"
#include "text/jinja/value_format.h"

namespace rackserve::jinja {

namespace {

// soft_str: str() of the value, undefined as "".
std::string text_of(const Value& value) { return to_str(value); }

Value filter_default(Renderer&, const Value& operand, CallArgs& args) {
  ArgBinder bound("default", args, {"default_value", "boolean"});
  const bool boolean = truthy(bound[1]);
  if (operand.is_undefined() || (boolean && !truthy(operand))) {
    return bound.has(0) ? bound[0] : Value::string("");
  }
  return operand;
}

Value filter_string(Renderer&, const Value& operand, CallArgs& args) {
  ArgBinder("string", args, {});
  return Value::string(text_of(operand));
}

Value filter_safe(Renderer&, const Value& operand, CallArgs& args) {
  ArgBinder("safe", args, {});
  return Value::string(text_of(operand));
}

Value filter_escape(Renderer&, const Value& operand, CallArgs& args) {
  ArgBinder("escape", args, {});
  std::string out;
  for (char c : text_of(operand)) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return Value::string(std::move(out));
}

// Python int(str, base): surrounding whitespace, sign, digit underscores.
std::optional<int64_t> parse_python_int(const std::string& text, int64_t base) {
  const std::string s = py::strip(text, std::nullopt, py::StripSide::Both);
  size_t i = 0;
  bool negative = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) negative = s[i++] == '-';
  if (base == 16 && i + 1 < s.size() && s[i] == '0' && (s[i + 1] == 'x' || s[i + 1] == 'X')) i += 2;
  if (base < 2 || base > 36 || i >= s.size()) return std::nullopt;
  int64_t value = 0;
  bool previous_digit = false;
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '_' && previous_digit && i + 1 < s.size()) {
      previous_digit = false;
      continue;
    }
    int digit = -1;
    if (c >= '0' && c <= '9') digit = c - '0';
    if (c >= 'a' && c <= 'z') digit = c - 'a' + 10;
    if (c >= 'A' && c <= 'Z') digit = c - 'A' + 10;
    if (digit < 0 || digit >= base) return std::nullopt;
    if (__builtin_mul_overflow(value, base, &value) || __builtin_add_overflow(value, digit, &value)) {
      throw Error(ErrorKind::Value, "integer overflow (template integers are 64-bit)");
    }
    previous_digit = true;
  }
  if (!previous_digit) return std::nullopt;
  return negative ? -value : value;
}

// Python float(str): strtod on the stripped text, which must be consumed entirely.
std::optional<double> parse_python_float(const std::string& text) {
  std::string s = py::strip(text, std::nullopt, py::StripSide::Both);
  if (s.empty()) return std::nullopt;
  std::string cleaned;
  for (size_t i = 0; i < s.size(); ++i) {
    const bool digit_before = i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9';
    const bool digit_after = i + 1 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '9';
    if (s[i] == '_' && digit_before && digit_after) continue;
    if (s[i] == 'x' || s[i] == 'X' || s[i] == 'p' || s[i] == 'P' || s[i] == '_') return std::nullopt;
    cleaned += s[i];
  }
  char* end = nullptr;
  const double value = std::strtod(cleaned.c_str(), &end);
  if (end != cleaned.c_str() + cleaned.size()) return std::nullopt;
  return value;
}

Value float_to_int(double value) {
  if (std::isnan(value)) throw Error(ErrorKind::Value, "cannot convert float NaN to integer");
  if (std::isinf(value)) throw Error(ErrorKind::Value, "cannot convert float infinity to integer");
  const double truncated = std::trunc(value);
  if (truncated >= 9.2233720368547758e18 || truncated < -9.2233720368547758e18) {
    throw Error(ErrorKind::Value, "integer overflow (template integers are 64-bit)");
  }
  return Value::integer(static_cast<int64_t>(truncated));
}

Value filter_int(Renderer&, const Value& operand, CallArgs& args) {
  ArgBinder bound("int", args, {"default", "base"});
  const Value fallback = bound.has(0) ? bound[0] : Value::integer(0);
  const int64_t base = bound.has(1) ? require_int(bound[1], "base") : 10;
  if (operand.is_integral()) return Value::integer(operand.as_int());
  if (operand.is_float()) return float_to_int(operand.as_float());
  if (operand.is_string()) {
    if (auto parsed = parse_python_int(operand.as_string(), base)) return Value::integer(*parsed);
    if (auto parsed = parse_python_float(operand.as_string())) return float_to_int(*parsed);
  }
  return fallback;
}

Value filter_float(Renderer&, const Value& operand, CallArgs& args) {
  ArgBinder bound("float", args, {"default"});
  const Value fallback = bound.has(0) ? bound[0] : Value::number(0.0);
  if (operand.is_number()) return Value::number(operand.as_float());
  if (operand.is_string()) {
    if (auto parsed = parse_python_float(operand.as_string())) return Value::number(*parsed);
  }
  return fallback;
}

Value filter_abs(Renderer&, const Value& operand, CallArgs& args) {
  ArgBinder("abs", args, {});
  if (operand.is_float()) return Value::number(std::fabs(operand.as_float()));
  if (operand.is_integral()) {
    if (operand.as_int() == INT64_MIN) throw Error(ErrorKind::Value, "integer overflow (template integers are 64-bit)");
    return Value::integer(std::llabs(operand.as_int()));
  }
  if (operand.is_undefined()) operand.throw_undefined();
  throw Error(ErrorKind::Type, "bad operand type for abs(): " + repr_string(type_name(operand)));
}

Value filter_round(Renderer&, const Value& operand, CallArgs& args) {
  ArgBinder bound("round", args, {"precision", "method"});
  const int64_t precision = bound.has(0) ? require_int(bound[0], "precision") : 0;
  const std::string method = bound.has(1) ? require_string(bound[1], "method") : "common";
  if (method != "common" && method != "ceil" && method != "floor") {
    throw Error(ErrorKind::Runtime, "method must be common, ceil or floor");
  }
  if (operand.is_undefined()) operand.throw_undefined();
  if (!operand.is_number()) {
    throw Error(ErrorKind::Type, "type " + std::string(type_name(operand)) + " doesn't define __round__ method");
  }
  if (method == "common") {
    if (operand.is_integral() && precision >= 0) return Value::integer(operand.as_int());
    const double x = operand.as_float();
    if (!std::isfinite(x) || precision > 300) return Value::number(x);
    if (precision < -308) return Value::number(0.0 * x);
    char buf[512];
    if (precision >= 0) {
      std::snprintf(buf, sizeof(buf), "%.*f", static_cast<int>(precision), x);
      return Value::number(std::strtod(buf, nullptr));
    }
    const double scale = std::pow(10.0, static_cast<double>(-precision));
    return Value::number(std::nearbyint(x / scale) * scale);
  }
  const double scale = std::pow(10.0, static_cast<double>(precision));
  const double x = operand.as_float() * scale;
  return Value::number((method == "ceil" ? std::ceil(x) : std::floor(x)) / scale);
}

Value filter_trim(Renderer&, const Value& operand, CallArgs& args) {
  ArgBinder bound("trim", args, {"chars"});
  std::optional<std::string> chars;
  if (bound.has(0) && !bound[0].is_none()) chars = require_string(bound[0], "strip arg");
  return Value::string(py::strip(text_of(operand), chars, py::StripSide::Both));
}

Value filter_upper(Renderer&, const Value& operand, CallArgs& args) {
  ArgBinder("upper", args, {});
  return Value::string(unicode::upper(text_of(operand)));
}

Value filter_lower(Renderer&, const Value& operand, CallArgs& args) {
  ArgBinder("lower", args, {});
  return Value::string(unicode::lower(text_of(operand)));
}

Value filter_capitalize(Renderer&, const Value& operand, CallArgs& args) {
  ArgBinder("capitalize", args, {});
  return Value::string(py::capitalize(text_of(operand)));
}

Value filter_title(Renderer&, const Value& operand, CallArgs& args) {
  ArgBinder("title", args, {});
  return Value::string(py::title(text_of(operand)));
}

Value filter_replace(Renderer& renderer, const Value& operand, CallArgs& args) {
  ArgBinder bound("replace", args, {"old", "new", "count"});
  const int64_t count = bound.has(2) && !bound[2].is_none() ? require_int(bound[2], "count") : -1;
  return Value::string(py::replace(text_of(operand), text_of(bound[0]), text_of(bound[1]), count, renderer.max_size()));
}

Value filter_center(Renderer& renderer, const Value& operand, CallArgs& args) {
  ArgBinder bound("center", args, {"width"});
  const int64_t width = bound.has(0) ? require_int(bound[0], "width") : 80;
  check_size(static_cast<size_t>(std::max<int64_t>(width, 0)), renderer.max_size());
  return Value::string(py::center(text_of(operand), width));
}

Value filter_indent(Renderer& renderer, const Value& operand, CallArgs& args) {
  ArgBinder bound("indent", args, {"width", "first", "blank"});
  std::string indention;
  if (bound.has(0) && bound[0].is_string()) {
    indention = bound[0].as_string();
  } else {
    const int64_t width = bound.has(0) ? require_int(bound[0], "width") : 4;
    check_size(static_cast<size_t>(std::max<int64_t>(width, 0)), renderer.max_size());
    indention.assign(static_cast<size_t>(std::max<int64_t>(width, 0)), ' ');
  }
  const bool first = truthy(bound[1]);
  const bool blank = truthy(bound[2]);
  const std::vector<std::string> lines = py::splitlines(text_of(operand) + "\n", false);
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) {
      out += '\n';
      if (blank || !lines[i].empty()) out += indention;
    }
    out += lines[i];
    check_size(out.size(), renderer.max_size());
  }
  if (first) out = indention + out;
  return Value::string(std::move(out));
}

Value filter_truncate(Renderer&, const Value& operand, CallArgs& args) {
  ArgBinder bound("truncate", args, {"length", "killwords", "end", "leeway"});
  const int64_t length = bound.has(0) ? require_int(bound[0], "length") : 255;
  const bool killwords = truthy(bound[1]);
  const std::string end = bound.has(2) ? text_of(bound[2]) : "...";
  const int64_t leeway = bound.has(3) && !bound[3].is_none() ? require_int(bound[3], "leeway") : 5;
  const std::u32string end_chars = unicode::to_u32(end);
  if (length < static_cast<int64_t>(end_chars.size())) {
    throw Error(ErrorKind::Runtime, "expected length >= " + std::to_string(end_chars.size()) + ", got " + std::to_string(length));
  }
  if (leeway < 0) throw Error(ErrorKind::Runtime, "expected leeway >= 0, got " + std::to_string(leeway));
  const std::string text = text_of(operand);
  const std::u32string chars = unicode::to_u32(text);
  if (static_cast<int64_t>(chars.size()) <= length + leeway) return Value::string(text);
  const std::string head = unicode::to_utf8(std::u32string_view(chars).substr(0, length - end_chars.size()));
  if (killwords) return Value::string(head + end);
  return Value::string(py::rsplit(head, std::string(" "), 1)[0] + end);
}

Value filter_wordcount(Renderer&, const Value& operand, CallArgs& args) {
  ArgBinder("wordcount", args, {});
  const std::string text = text_of(operand);
  int64_t words = 0;
  bool in_word = false;
  for (size_t pos = 0; pos < text.size();) {
    const char32_t c = unicode::decode(text, pos);
    const bool word_char = c == '_' || unicode::is_alpha(c) || unicode::is_digit(c);
    if (word_char && !in_word) ++words;
    in_word = word_char;
  }
  return Value::integer(words);
}

Value filter_format(Renderer& renderer, const Value& operand, CallArgs& args) {
  if (!args.positional.empty() && !args.keyword.empty()) {
    throw Error(ErrorKind::Runtime, "can't handle positional and keyword arguments at the same time");
  }
  Value format_args;
  if (!args.keyword.empty()) {
    auto dict = std::make_shared<Dict>();
    for (auto& [name, value] : args.keyword) dict->set(Value::string(name), value);
    format_args = Value::dict(std::move(dict));
  } else {
    format_args = Value::tuple(args.positional);
  }
  std::string out = percent_format(text_of(operand), format_args);
  check_size(out.size(), renderer.max_size());
  return Value::string(std::move(out));
}

Value filter_attr(Renderer& renderer, const Value& operand, CallArgs& args) {
  ArgBinder bound("attr", args, {"name"});
  const std::string& name = require_string(bound[0], "attribute name");
  // getattr() only: a dict's keys are items, not attributes.
  if (operand.is_dict() || operand.is_string() || operand.is_list()) {
    Value method = find_method(operand, name, renderer.options().allow_mutation);
    if (!method.is_undefined() || method.undefined_info() != nullptr) return method;
    return Value::missing_attribute(operand, name);
  }
  return renderer.get_attribute(operand, name);
}

// transformers' tojson: json.dumps(x, ensure_ascii=False, indent=None, separators=None,
// sort_keys=False).
Value filter_tojson(Renderer& renderer, const Value& operand, CallArgs& args) {
  ArgBinder bound("tojson", args, {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonDumpOptions options;
  options.ensure_ascii = truthy(bound[0]);
  if (bound.has(1) && !bound[1].is_none()) {
    const Value& indent = bound[1];
    if (indent.is_string()) {
      options.indent = indent.as_string();
    } else if (indent.is_integral()) {
      const int64_t n = indent.as_int();
      check_size(static_cast<size_t>(std::max<int64_t>(n, 0)), 4096);
      options.indent = std::string(static_cast<size_t>(std::max<int64_t>(n, 0)), ' ');
    } else {
      throw Error(ErrorKind::Type, "indent must be an int or a str");
    }
  }
  if (bound.has(2) && !bound[2].is_none()) {
    const std::vector<Value> parts = renderer.iterate(bound[2]);
    if (parts.size() != 2) throw Error(ErrorKind::Value, "separators must be an (item_separator, key_separator) pair");
    options.item_separator = require_string(parts[0], "item separator");
    options.key_separator = require_string(parts[1], "key separator");
  }
  options.sort_keys = truthy(bound[3]);
  options.max_bytes = renderer.max_size();
  std::string out = dump_json(operand, options);
  check_size(out.size(), renderer.max_size());
  return Value::string(std::move(out));
}

struct FilterEntry {
  std::string_view name;
  FilterFunction function;
};

constexpr FilterEntry kFilters[] = {
    {"abs", filter_abs},
    {"attr", filter_attr},
    {"batch", filters::batch},
    {"capitalize", filter_capitalize},
    {"center", filter_center},
    {"count", filters::length},
    {"d", filter_default},
    {"default", filter_default},
    {"dictsort", filters::dictsort},
    {"e", filter_escape},
    {"escape", filter_escape},
    {"first", filters::first},
    {"float", filter_float},
    {"forceescape", filter_escape},
    {"format", filter_format},
    {"indent", filter_indent},
    {"int", filter_int},
    {"items", filters::items},
    {"join", filters::join},
    {"last", filters::last},
    {"length", filters::length},
    {"list", filters::list},
    {"lower", filter_lower},
    {"map", filters::map},
    {"max", filters::max},
    {"min", filters::min},
    {"reject", filters::reject},
    {"rejectattr", filters::rejectattr},
    {"replace", filter_replace},
    {"reverse", filters::reverse},
    {"round", filter_round},
    {"safe", filter_safe},
    {"select", filters::select},
    {"selectattr", filters::selectattr},
    {"sort", filters::sort},
    {"string", filter_string},
    {"sum", filters::sum},
    {"title", filter_title},
    {"tojson", filter_tojson},
    {"trim", filter_trim},
    {"truncate", filter_truncate},
    {"unique", filters::unique},
    {"upper", filter_upper},
    {"wordcount", filter_wordcount},
};

}  // namespace

FilterFunction find_filter(std::string_view name) {
  for (const FilterEntry& entry : kFilters) {
    if (entry.name == name) return entry.function;
  }
  return nullptr;
}

}  // namespace rackserve::jinja
