// Python printing rules. Nested containers print their items with repr(), as Python does.
#include "text/jinja/value_format.h"

#include <charconv>
#include <cmath>
#include <cstdio>

#include "text/jinja/unicode.h"

namespace rackserve::jinja {

namespace {

constexpr int kMaxPrintDepth = 512;

void append_hex(std::string& out, char prefix, uint32_t value, int digits) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "\\%c%0*x", prefix, digits, value);
  out += buf;
}

void append_repr(std::string& out, const Value& value, int depth, size_t limit);

// Containers check the size after each item, so a huge (or shared, exponentially large)
// structure stops at the limit instead of printing for minutes.
void check_limit(const std::string& out, size_t limit) {
  if (out.size() > limit) throw Error(ErrorKind::Limit, "printed value exceeds " + std::to_string(limit) + " bytes");
}

void append_items(std::string& out, const std::vector<Value>& items, int depth, size_t limit) {
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ", ";
    append_repr(out, items[i], depth + 1, limit);
    check_limit(out, limit);
  }
}

void append_value(std::string& out, const Value& value, int depth, bool as_repr, size_t limit) {
  if (depth > kMaxPrintDepth) throw Error(ErrorKind::Limit, "maximum nesting depth exceeded while printing");
  switch (value.kind()) {
    case ValueKind::Undefined:
      if (as_repr) out += "Undefined";
      return;
    case ValueKind::None: out += "None"; return;
    case ValueKind::Bool: out += value.as_bool() ? "True" : "False"; return;
    case ValueKind::Int: out += std::to_string(value.as_int()); return;
    case ValueKind::Float: out += format_float(value.as_float()); return;
    case ValueKind::String:
      if (as_repr) {
        out += repr_string(value.as_string());
      } else {
        out += value.as_string();
      }
      return;
    case ValueKind::List: {
      const List& list = value.as_list();
      switch (list.kind) {
        case SequenceKind::List:
          out += '[';
          append_items(out, list.items, depth, limit);
          out += ']';
          return;
        case SequenceKind::Tuple:
          out += '(';
          append_items(out, list.items, depth, limit);
          if (list.items.size() == 1) out += ',';
          out += ')';
          return;
        case SequenceKind::Generator: out += "<generator object>"; return;
        case SequenceKind::DictKeys: out += "dict_keys(["; break;
        case SequenceKind::DictValues: out += "dict_values(["; break;
        case SequenceKind::DictItems: out += "dict_items(["; break;
      }
      append_items(out, list.items, depth, limit);
      out += "])";
      return;
    }
    case ValueKind::Dict: {
      out += '{';
      bool first = true;
      for (const auto& [key, item] : value.as_dict().entries) {
        if (!first) out += ", ";
        first = false;
        append_repr(out, key, depth + 1, limit);
        out += ": ";
        append_repr(out, item, depth + 1, limit);
        check_limit(out, limit);
      }
      out += '}';
      return;
    }
    case ValueKind::Callable: {
      const Callable& callable = value.as_callable();
      switch (callable.kind) {
        case Callable::Kind::Macro: out += "<Macro " + repr_string(callable.name) + ">"; return;
        case Callable::Kind::Method: out += "<built-in method " + callable.name + ">"; return;
        case Callable::Kind::Function: out += "<function " + callable.name + ">"; return;
      }
      return;
    }
    case ValueKind::Object: out += value.as_object().repr(depth + 1); return;
  }
}

void append_repr(std::string& out, const Value& value, int depth, size_t limit) {
  append_value(out, value, depth, true, limit);
}

}  // namespace

std::string format_float(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value < 0 ? "-inf" : "inf";
  char buf[64];
  const auto result = std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::scientific);
  const std::string_view text(buf, static_cast<size_t>(result.ptr - buf));
  // text looks like "-1.2345e+17": split sign, digits and decimal exponent.
  size_t pos = 0;
  std::string out;
  if (text[pos] == '-') {
    out += '-';
    ++pos;
  }
  const size_t e = text.find('e');
  std::string digits;
  for (size_t i = pos; i < e; ++i) {
    if (text[i] != '.') digits += text[i];
  }
  const int exponent = std::stoi(std::string(text.substr(e + 1)));
  const int point = exponent + 1;  // digits are 0.d1d2... x 10^point
  if (point <= -4 || point > 16) {
    out += digits[0];
    if (digits.size() > 1) {
      out += '.';
      out.append(digits, 1, std::string::npos);
    }
    char exp_buf[16];
    std::snprintf(exp_buf, sizeof(exp_buf), "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    out += exp_buf;
  } else if (point <= 0) {
    out += "0.";
    out.append(static_cast<size_t>(-point), '0');
    out += digits;
  } else if (static_cast<size_t>(point) >= digits.size()) {
    out += digits;
    out.append(static_cast<size_t>(point) - digits.size(), '0');
    out += ".0";
  } else {
    out.append(digits, 0, static_cast<size_t>(point));
    out += '.';
    out.append(digits, static_cast<size_t>(point), std::string::npos);
  }
  return out;
}

std::string repr_string(std::string_view text) {
  const bool has_single = text.find('\'') != std::string_view::npos;
  const bool has_double = text.find('"') != std::string_view::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out;
  out.reserve(text.size() + 2);
  out += quote;
  for (size_t pos = 0; pos < text.size();) {
    const char32_t c = unicode::decode(text, pos);
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7F) {
      append_hex(out, 'x', c, 2);
    } else if (c < 0x7F || unicode::is_printable(c)) {
      unicode::append_utf8(out, c);
    } else if (c <= 0xFF) {
      append_hex(out, 'x', c, 2);
    } else if (c <= 0xFFFF) {
      append_hex(out, 'u', c, 4);
    } else {
      append_hex(out, 'U', c, 8);
    }
  }
  out += quote;
  return out;
}

void append_str(std::string& out, const Value& value, size_t limit) { append_value(out, value, 0, false, limit); }

std::string to_str(const Value& value) {
  if (value.is_string()) return value.as_string();
  std::string out;
  append_value(out, value, 0, false, kDefaultPrintLimit);
  return out;
}

std::string repr(const Value& value) { return repr_nested(value, 0); }

std::string repr_nested(const Value& value, int depth) {
  std::string out;
  append_value(out, value, depth, true, kDefaultPrintLimit);
  return out;
}

}  // namespace rackserve::jinja
