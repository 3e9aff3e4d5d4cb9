// Python arithmetic, containment, slicing and %-formatting on template values.
#include "text/jinja/operators.h"

#include <cmath>
#include <cstdio>
#include <string_view>

#include "text/jinja/unicode.h"
#include "text/jinja/value_format.h"

namespace rackserve::jinja {

void check_size(size_t size, size_t max_size) {
  if (size > max_size) {
    throw Error(ErrorKind::Limit, "result too large (" + std::to_string(size) + " > " + std::to_string(max_size) + ")");
  }
}

namespace {

[[noreturn]] void unsupported(std::string_view symbol, const Value& a, const Value& b) {
  throw Error(ErrorKind::Type, "unsupported operand type(s) for " + std::string(symbol) + ": " +
                                   repr_string(type_name(a)) + " and " + repr_string(type_name(b)));
}

[[noreturn]] void overflow() { throw Error(ErrorKind::Value, "integer overflow (template integers are 64-bit)"); }

const char* symbol(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add: return "+";
    case BinaryOp::Sub: return "-";
    case BinaryOp::Mul: return "*";
    case BinaryOp::Div: return "/";
    case BinaryOp::FloorDiv: return "//";
    case BinaryOp::Mod: return "%";
    case BinaryOp::Pow: return "** or pow()";
    case BinaryOp::Concat: return "~";
  }
  return "?";
}

// Python's float floor division and modulo (Objects/floatobject.c float_divmod).
std::pair<double, double> float_divmod(double vx, double wx) {
  double mod = std::fmod(vx, wx);
  double div = (vx - mod) / wx;
  if (mod != 0.0) {
    if ((wx < 0) != (mod < 0)) {
      mod += wx;
      div -= 1.0;
    }
  } else {
    mod = std::copysign(0.0, wx);
  }
  double floordiv;
  if (div != 0.0) {
    floordiv = std::floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
  } else {
    floordiv = std::copysign(0.0, vx / wx);
  }
  return {floordiv, mod};
}

Value repeat(const Value& sequence, int64_t count, size_t max_size) {
  if (count < 0) count = 0;
  if (sequence.is_string()) {
    const std::string& s = sequence.as_string();
    if (!s.empty()) check_size(static_cast<size_t>(count) > max_size / s.size() ? max_size + 1 : s.size() * count, max_size);
    std::string out;
    out.reserve(s.size() * static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) out += s;
    return Value::string(std::move(out));
  }
  const List& list = sequence.as_list();
  if (!list.items.empty()) {
    check_size(static_cast<size_t>(count) > max_size / list.items.size() ? max_size + 1 : list.items.size() * count, max_size);
  }
  std::vector<Value> items;
  items.reserve(list.items.size() * static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) items.insert(items.end(), list.items.begin(), list.items.end());
  return Value::list(std::move(items), list.kind);
}

bool is_plain_sequence(const Value& v) {
  return v.is_list() && (v.as_list().kind == SequenceKind::List || v.as_list().kind == SequenceKind::Tuple);
}

Value int_power(int64_t base, int64_t exponent) {
  int64_t result = 1;
  while (exponent > 0) {
    if (exponent & 1) {
      if (__builtin_mul_overflow(result, base, &result)) overflow();
    }
    exponent >>= 1;
    if (exponent > 0 && __builtin_mul_overflow(base, base, &base)) overflow();
  }
  return Value::integer(result);
}

}  // namespace

Value binary_operation(BinaryOp op, const Value& a, const Value& b, size_t max_string) {
  if (op == BinaryOp::Concat) {
    std::string out = to_str(a);
    if (b.is_string()) {
      check_size(out.size() + b.as_string().size(), max_string);
      out += b.as_string();
    } else {
      append_str(out, b, max_string);
      check_size(out.size(), max_string);
    }
    return Value::string(std::move(out));
  }
  if (a.is_undefined()) a.throw_undefined();
  if (b.is_undefined()) b.throw_undefined();

  if (a.is_number() && b.is_number()) {
    const bool as_float = a.is_float() || b.is_float();
    if (!as_float) {
      const int64_t x = a.as_int();
      const int64_t y = b.as_int();
      int64_t r = 0;
      switch (op) {
        case BinaryOp::Add:
          if (__builtin_add_overflow(x, y, &r)) overflow();
          return Value::integer(r);
        case BinaryOp::Sub:
          if (__builtin_sub_overflow(x, y, &r)) overflow();
          return Value::integer(r);
        case BinaryOp::Mul:
          if (__builtin_mul_overflow(x, y, &r)) overflow();
          return Value::integer(r);
        case BinaryOp::Div:
          if (y == 0) throw Error(ErrorKind::Value, "division by zero");
          return Value::number(static_cast<double>(x) / static_cast<double>(y));
        case BinaryOp::FloorDiv:
        case BinaryOp::Mod: {
          if (y == 0) throw Error(ErrorKind::Value, "integer division or modulo by zero");
          if (x == INT64_MIN && y == -1) {
            if (op == BinaryOp::Mod) return Value::integer(0);
            overflow();
          }
          int64_t q = x / y;
          int64_t m = x % y;
          if (m != 0 && ((m < 0) != (y < 0))) {
            m += y;
            q -= 1;
          }
          return Value::integer(op == BinaryOp::FloorDiv ? q : m);
        }
        case BinaryOp::Pow:
          if (y >= 0) return int_power(x, y);
          if (x == 0) throw Error(ErrorKind::Value, "0.0 cannot be raised to a negative power");
          return Value::number(std::pow(static_cast<double>(x), static_cast<double>(y)));
        case BinaryOp::Concat: break;
      }
    }
    const double x = a.as_float();
    const double y = b.as_float();
    switch (op) {
      case BinaryOp::Add: return Value::number(x + y);
      case BinaryOp::Sub: return Value::number(x - y);
      case BinaryOp::Mul: return Value::number(x * y);
      case BinaryOp::Div:
        if (y == 0.0) throw Error(ErrorKind::Value, "float division by zero");
        return Value::number(x / y);
      case BinaryOp::FloorDiv:
        if (y == 0.0) throw Error(ErrorKind::Value, "float floor division by zero");
        return Value::number(float_divmod(x, y).first);
      case BinaryOp::Mod:
        if (y == 0.0) throw Error(ErrorKind::Value, "float modulo");
        return Value::number(float_divmod(x, y).second);
      case BinaryOp::Pow:
        if (x == 0.0 && y < 0) throw Error(ErrorKind::Value, "0.0 cannot be raised to a negative power");
        if (x < 0 && std::floor(y) != y) throw Error(ErrorKind::Value, "negative number cannot be raised to a fractional power");
        return Value::number(std::pow(x, y));
      case BinaryOp::Concat: break;
    }
  }

  switch (op) {
    case BinaryOp::Add:
      if (a.is_string() && b.is_string()) {
        check_size(a.as_string().size() + b.as_string().size(), max_string);
        return Value::string(a.as_string() + b.as_string());
      }
      if (a.is_string()) {
        throw Error(ErrorKind::Type, "can only concatenate str (not \"" + std::string(type_name(b)) + "\") to str");
      }
      if (is_plain_sequence(a) && is_plain_sequence(b) && a.as_list().kind == b.as_list().kind) {
        const List& x = a.as_list();
        const List& y = b.as_list();
        check_size(x.items.size() + y.items.size(), max_string);
        std::vector<Value> items = x.items;
        items.insert(items.end(), y.items.begin(), y.items.end());
        return Value::list(std::move(items), x.kind);
      }
      if (is_plain_sequence(a) && (b.is_list() || b.is_string() || b.is_dict())) {
        throw Error(ErrorKind::Type, "can only concatenate " + std::string(type_name(a)) + " (not \"" +
                                         std::string(type_name(b)) + "\") to " + std::string(type_name(a)));
      }
      break;
    case BinaryOp::Mul:
      if ((a.is_string() || is_plain_sequence(a)) && b.is_integral()) return repeat(a, b.as_int(), max_string);
      if ((b.is_string() || is_plain_sequence(b)) && a.is_integral()) return repeat(b, a.as_int(), max_string);
      if (a.is_string() || b.is_string() || is_plain_sequence(a) || is_plain_sequence(b)) {
        const Value& other = a.is_string() || is_plain_sequence(a) ? b : a;
        throw Error(ErrorKind::Type, "can't multiply sequence by non-int of type " + repr_string(type_name(other)));
      }
      break;
    case BinaryOp::Mod:
      if (a.is_string()) {
        std::string out = percent_format(a.as_string(), b);
        check_size(out.size(), max_string);
        return Value::string(std::move(out));
      }
      break;
    default: break;
  }
  unsupported(symbol(op), a, b);
}

Value unary_operation(UnaryOp op, const Value& v) {
  if (op == UnaryOp::Not) return Value::boolean(!truthy(v));
  if (v.is_undefined()) v.throw_undefined();
  if (v.is_float()) return Value::number(op == UnaryOp::Negate ? -v.as_float() : v.as_float());
  if (v.is_integral()) {
    const int64_t x = v.as_int();
    if (op == UnaryOp::Plus) return Value::integer(x);
    if (x == INT64_MIN) overflow();
    return Value::integer(-x);
  }
  throw Error(ErrorKind::Type, std::string("bad operand type for unary ") + (op == UnaryOp::Negate ? "-" : "+") + ": " +
                                   repr_string(type_name(v)));
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case ValueKind::String:
      if (!item.is_string()) {
        throw Error(ErrorKind::Type, "'in <string>' requires string as left operand, not " + std::string(type_name(item)));
      }
      return container.as_string().find(item.as_string()) != std::string::npos;
    case ValueKind::List: {
      List& list = container.as_list();
      const size_t start = list.kind == SequenceKind::Generator ? list.consumed : 0;
      for (size_t i = start; i < list.items.size(); ++i) {
        if (equals(list.items[i], item)) {
          if (list.kind == SequenceKind::Generator) list.consumed = i + 1;
          return true;
        }
      }
      if (list.kind == SequenceKind::Generator) list.consumed = list.items.size();
      return false;
    }
    case ValueKind::Dict:
      if (!is_hashable(item)) throw Error(ErrorKind::Type, "unhashable type: " + repr_string(type_name(item)));
      return container.as_dict().find(item) != nullptr;
    case ValueKind::Undefined: return false;  // Undefined iterates as empty
    default:
      throw Error(ErrorKind::Type, "argument of type " + repr_string(type_name(container)) + " is not iterable");
  }
}

namespace {

// PySlice_AdjustIndices for one bound.
int64_t adjust_bound(const Value& bound, int64_t length, int64_t step, bool is_start) {
  if (bound.is_none()) {
    if (step > 0) return is_start ? 0 : length;
    return is_start ? length - 1 : -1;
  }
  int64_t index = bound.as_int();
  if (index < 0) {
    index += length;
    if (index < 0) index = step < 0 ? -1 : 0;
  } else if (index >= length) {
    index = step < 0 ? length - 1 : length;
  }
  return index;
}

}  // namespace

std::optional<Value> slice(const Value& sequence, const Value& start, const Value& stop, const Value& step_value) {
  if (sequence.is_undefined()) sequence.throw_undefined();
  const auto valid = [](const Value& v) { return v.is_none() || v.is_integral(); };
  if (!valid(start) || !valid(stop) || !valid(step_value)) return std::nullopt;
  const int64_t step = step_value.is_none() ? 1 : step_value.as_int();
  const bool sliceable = sequence.is_string() || is_plain_sequence(sequence);
  if (!sliceable) return std::nullopt;
  if (step == 0) throw Error(ErrorKind::Value, "slice step cannot be zero");

  std::u32string chars;
  int64_t length;
  if (sequence.is_string()) {
    chars = unicode::to_u32(sequence.as_string());
    length = static_cast<int64_t>(chars.size());
  } else {
    length = static_cast<int64_t>(sequence.as_list().items.size());
  }
  const int64_t first = adjust_bound(start, length, step, true);
  const int64_t last = adjust_bound(stop, length, step, false);
  if (sequence.is_string()) {
    std::string out;
    for (int64_t i = first; step > 0 ? i < last : i > last; i += step) unicode::append_utf8(out, chars[static_cast<size_t>(i)]);
    return Value::string(std::move(out));
  }
  const List& list = sequence.as_list();
  std::vector<Value> items;
  for (int64_t i = first; step > 0 ? i < last : i > last; i += step) items.push_back(list.items[static_cast<size_t>(i)]);
  return Value::list(std::move(items), list.kind);
}

namespace {

struct FormatSpec {
  std::string flags;
  int width = -1;
  int precision = -1;
  char conversion = 0;
};

std::string pad(std::string text, const FormatSpec& spec, bool numeric) {
  const int length = static_cast<int>(unicode::count_code_points(text));
  if (spec.width <= length) return text;
  const size_t fill = static_cast<size_t>(spec.width - length);
  if (spec.flags.find('-') != std::string::npos) return text + std::string(fill, ' ');
  if (numeric && spec.flags.find('0') != std::string::npos) {
    size_t sign = 0;
    if (!text.empty() && (text[0] == '-' || text[0] == '+' || text[0] == ' ')) sign = 1;
    if (text.size() > sign + 1 && text[sign] == '0' && (text[sign + 1] == 'x' || text[sign + 1] == 'X' || text[sign + 1] == 'o')) sign += 2;
    return text.substr(0, sign) + std::string(fill, '0') + text.substr(sign);
  }
  return std::string(fill, ' ') + text;
}

std::string format_one(const FormatSpec& spec, const Value& value) {
  const char c = spec.conversion;
  if (c == 's' || c == 'r' || c == 'a') {
    std::string text = c == 's' ? to_str(value) : repr(value);
    if (spec.precision >= 0) {
      const std::u32string chars = unicode::to_u32(text);
      if (chars.size() > static_cast<size_t>(spec.precision)) text = unicode::to_utf8(chars.substr(0, spec.precision));
    }
    return pad(std::move(text), spec, false);
  }
  if (value.is_undefined()) value.throw_undefined();
  const bool plus = spec.flags.find('+') != std::string::npos;
  const bool space = spec.flags.find(' ') != std::string::npos;
  const bool alternate = spec.flags.find('#') != std::string::npos;
  if (c == 'c') {
    std::string out;
    if (value.is_integral()) {
      unicode::append_utf8(out, static_cast<char32_t>(value.as_int()));
    } else if (value.is_string() && unicode::count_code_points(value.as_string()) == 1) {
      out = value.as_string();
    } else {
      throw Error(ErrorKind::Type, "%c requires int or char");
    }
    return pad(out, spec, false);
  }
  if (!value.is_number()) {
    throw Error(ErrorKind::Type, std::string("%") + c + " format: a real number is required, not " + std::string(type_name(value)));
  }
  char buf[512];
  std::string flags = std::string(plus ? "+" : "") + (space && !plus ? " " : "") + (alternate ? "#" : "");
  if (c == 'd' || c == 'i' || c == 'u' || c == 'x' || c == 'X' || c == 'o') {
    int64_t n = value.is_float() ? static_cast<int64_t>(std::trunc(value.as_float())) : value.as_int();
    if (value.is_float() && (c == 'x' || c == 'X' || c == 'o')) {
      throw Error(ErrorKind::Type, std::string("%") + c + " format: an integer is required, not float");
    }
    const char conv = c == 'i' || c == 'u' ? 'd' : c;
    std::string fmt = "%" + flags + (conv == 'd' ? "lld" : std::string("ll") + conv);
    if (conv != 'd' && n < 0) {
      std::snprintf(buf, sizeof(buf), fmt.c_str(), static_cast<long long>(-n));
      std::string text = std::string("-") + buf;
      if (alternate && conv == 'o') text = "-0o" + text.substr(2);
      return pad(text, spec, true);
    }
    std::snprintf(buf, sizeof(buf), fmt.c_str(), static_cast<long long>(n));
    std::string text = buf;
    if (alternate && conv == 'o' && text != "0") {
      // Python prints 0o17 where C prints 017.
      const size_t zero = text.find('0');
      text = text.substr(0, zero) + "0o" + text.substr(zero + 1);
    }
    if (spec.precision >= 0 && conv == 'd') {
      const bool negative = n < 0;
      std::string digits = std::to_string(negative ? -n : n);
      if (static_cast<int>(digits.size()) < spec.precision) digits.insert(0, spec.precision - digits.size(), '0');
      text = (negative ? "-" : plus ? "+" : space ? " " : "") + digits;
    }
    return pad(text, spec, true);
  }
  if (c == 'f' || c == 'F' || c == 'e' || c == 'E' || c == 'g' || c == 'G') {
    const int precision = spec.precision >= 0 ? std::min(spec.precision, 100) : 6;
    std::string fmt = "%" + flags + "." + std::to_string(precision) + c;
    std::snprintf(buf, sizeof(buf), fmt.c_str(), value.as_float());
    return pad(buf, spec, true);
  }
  throw Error(ErrorKind::Value, std::string("unsupported format character '") + c + "'");
}

}  // namespace

std::string percent_format(const std::string& format, const Value& args) {
  std::vector<Value> positional;
  const bool mapping = args.is_dict();
  if (args.is_sequence_kind(SequenceKind::Tuple)) {
    positional = args.as_list().items;
  } else {
    positional.push_back(args);
  }
  size_t next_arg = 0;
  std::string out;
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%') {
      out += format[i];
      continue;
    }
    if (++i >= format.size()) throw Error(ErrorKind::Value, "incomplete format");
    const Value* value = nullptr;
    Value keyed;
    if (format[i] == '(') {
      const size_t close = format.find(')', i);
      if (close == std::string::npos) throw Error(ErrorKind::Value, "incomplete format key");
      if (!mapping) throw Error(ErrorKind::Type, "format requires a mapping");
      const Value* found = args.as_dict().find(std::string_view(format).substr(i + 1, close - i - 1));
      if (found == nullptr) throw Error(ErrorKind::Value, "KeyError: " + repr_string(format.substr(i + 1, close - i - 1)));
      keyed = *found;
      value = &keyed;
      i = close + 1;
    }
    FormatSpec spec;
    while (i < format.size() && std::string_view("-+ #0").find(format[i]) != std::string_view::npos) spec.flags += format[i++];
    const auto read_number = [&](int& target) {
      if (i < format.size() && format[i] == '*') {
        if (next_arg >= positional.size() || !positional[next_arg].is_integral()) throw Error(ErrorKind::Type, "* wants int");
        target = static_cast<int>(positional[next_arg++].as_int());
        ++i;
        return;
      }
      if (i < format.size() && format[i] >= '0' && format[i] <= '9') {
        target = 0;
        while (i < format.size() && format[i] >= '0' && format[i] <= '9') target = std::min(target * 10 + (format[i++] - '0'), 100000);
      }
    };
    read_number(spec.width);
    if (i < format.size() && format[i] == '.') {
      ++i;
      spec.precision = 0;
      read_number(spec.precision);
    }
    while (i < format.size() && (format[i] == 'l' || format[i] == 'h' || format[i] == 'L')) ++i;
    if (i >= format.size()) throw Error(ErrorKind::Value, "incomplete format");
    spec.conversion = format[i];
    if (spec.conversion == '%') {
      out += '%';
      continue;
    }
    if (value == nullptr) {
      if (mapping) {
        value = &args;
      } else {
        if (next_arg >= positional.size()) throw Error(ErrorKind::Type, "not enough arguments for format string");
        value = &positional[next_arg++];
      }
    }
    out += format_one(spec, *value);
  }
  if (!mapping && next_arg < positional.size()) {
    throw Error(ErrorKind::Type, "not all arguments converted during string formatting");
  }
  return out;
}

}  // namespace rackserve::jinja
