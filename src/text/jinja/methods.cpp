// Python methods of str, list and dict that templates call (message.content.strip(),
// tool.get('name'), d.items(), ...). Mutating methods follow jinja2's
// ImmutableSandboxedEnvironment: looking them up yields an undefined value that raises
// SecurityError when used, unless TemplateOptions::allow_mutation is set.
#include <algorithm>

#include "text/jinja/args.h"
#include "text/jinja/builtins.h"
#include "text/jinja/evaluator.h"
#include "text/jinja/operators.h"
#include "text/jinja/py_string.h"
#include "text/jinja/unicode.h"
#include "text/jinja/value_format.h"

namespace rackserve::jinja {

namespace {

constexpr std::string_view kStringMethods[] = {
    "capitalize", "center", "count", "endswith", "find", "format", "index", "isalnum", "isalpha", "isdigit",
    "islower", "isspace", "isupper", "join", "ljust", "lower", "lstrip", "partition", "removeprefix",
    "removesuffix", "replace", "rfind", "rjust", "rpartition", "rsplit", "rstrip", "split", "splitlines",
    "startswith", "strip", "swapcase", "title", "upper", "zfill"};
constexpr std::string_view kListMethods[] = {"copy", "count", "index"};
constexpr std::string_view kListMutators[] = {"append", "clear", "extend", "insert", "pop", "remove", "reverse", "sort"};
constexpr std::string_view kDictMethods[] = {"copy", "get", "items", "keys", "values"};
constexpr std::string_view kDictMutators[] = {"clear", "pop", "popitem", "setdefault", "update"};

template <size_t N>
bool listed(const std::string_view (&names)[N], std::string_view name) {
  return std::find(std::begin(names), std::end(names), name) != std::end(names);
}

bool is_mutator(const Value& object, std::string_view name) {
  if (object.is_dict()) return listed(kDictMutators, name);
  if (object.is_sequence_kind(SequenceKind::List)) return listed(kListMutators, name);
  return false;
}

bool has_method(const Value& object, std::string_view name) {
  if (object.is_string()) return listed(kStringMethods, name);
  if (object.is_dict()) return listed(kDictMethods, name) || listed(kDictMutators, name);
  if (object.is_list()) {
    const SequenceKind kind = object.as_list().kind;
    if (kind == SequenceKind::List) return listed(kListMethods, name) || listed(kListMutators, name);
    if (kind == SequenceKind::Tuple) return name == "count" || name == "index";
  }
  return false;
}

std::optional<std::string> optional_chars(const ArgBinder& bound, size_t index, std::string_view what) {
  if (!bound.has(index) || bound[index].is_none()) return std::nullopt;
  return require_string(bound[index], what);
}

Value string_list(std::vector<std::string> parts) {
  std::vector<Value> items;
  items.reserve(parts.size());
  for (std::string& part : parts) items.push_back(Value::string(std::move(part)));
  return Value::list(std::move(items));
}

// startswith/endswith accept a str or a tuple of str.
bool affix_matches(const std::string& text, const Value& affix, bool prefix) {
  const auto one = [&](const Value& v) {
    if (!v.is_string()) {
      throw Error(ErrorKind::Type, std::string(prefix ? "startswith" : "endswith") +
                                       " first arg must be str or a tuple of str, not " + std::string(type_name(v)));
    }
    const std::string& a = v.as_string();
    if (a.size() > text.size()) return false;
    return prefix ? text.compare(0, a.size(), a) == 0 : text.compare(text.size() - a.size(), a.size(), a) == 0;
  };
  if (affix.is_sequence_kind(SequenceKind::Tuple)) {
    for (const Value& v : affix.as_list().items) {
      if (one(v)) return true;
    }
    return false;
  }
  return one(affix);
}

template <typename Predicate>
bool all_chars(const std::string& text, Predicate predicate) {
  if (text.empty()) return false;
  for (size_t pos = 0; pos < text.size();) {
    if (!predicate(unicode::decode(text, pos))) return false;
  }
  return true;
}

// str.format with automatic or explicit indexes, keyword fields and !s/!r conversions.
std::string format_string(const std::string& format, const CallArgs& args) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < format.size(); ++i) {
    const char c = format[i];
    if (c == '}') {
      if (i + 1 < format.size() && format[i + 1] == '}') {
        out += '}';
        ++i;
        continue;
      }
      throw Error(ErrorKind::Value, "Single '}' encountered in format string");
    }
    if (c != '{') {
      out += c;
      continue;
    }
    if (i + 1 < format.size() && format[i + 1] == '{') {
      out += '{';
      ++i;
      continue;
    }
    const size_t close = format.find('}', i);
    if (close == std::string::npos) throw Error(ErrorKind::Value, "Single '{' encountered in format string");
    std::string field = format.substr(i + 1, close - i - 1);
    i = close;
    char conversion = 's';
    if (const size_t bang = field.find('!'); bang != std::string::npos) {
      if (bang + 2 != field.size()) throw Error(ErrorKind::Value, "expected ':' after conversion specifier");
      conversion = field[bang + 1];
      field.resize(bang);
    }
    if (field.find(':') != std::string::npos || field.find('.') != std::string::npos ||
        field.find('[') != std::string::npos) {
      throw Error(ErrorKind::Value, "format specs and field attributes are not supported in str.format");
    }
    const Value* value = nullptr;
    if (field.empty() || (field[0] >= '0' && field[0] <= '9')) {
      size_t index = auto_index++;
      if (!field.empty()) index = static_cast<size_t>(std::stoul(field.substr(0, 6)));
      if (index >= args.positional.size()) {
        throw Error(ErrorKind::Value, "Replacement index " + std::to_string(index) + " out of range for positional args tuple");
      }
      value = &args.positional[index];
    } else {
      for (const auto& [name, v] : args.keyword) {
        if (name == field) value = &v;
      }
      if (value == nullptr) throw Error(ErrorKind::Value, "KeyError: " + repr_string(field));
    }
    if (conversion == 's') {
      append_str(out, *value);
    } else if (conversion == 'r' || conversion == 'a') {
      out += repr(*value);
    } else {
      throw Error(ErrorKind::Value, std::string("Unknown conversion specifier ") + conversion);
    }
  }
  return out;
}

Value call_string_method(Renderer& renderer, const std::string& s, std::string_view name, CallArgs& args) {
  const size_t limit = renderer.max_size();
  const std::string fn(name);
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    ArgBinder bound(fn, args, {"chars"});
    const py::StripSide side = name == "strip" ? py::StripSide::Both : name == "lstrip" ? py::StripSide::Left : py::StripSide::Right;
    return Value::string(py::strip(s, optional_chars(bound, 0, "strip arg"), side));
  }
  if (name == "split" || name == "rsplit") {
    ArgBinder bound(fn, args, {"sep", "maxsplit"});
    const int64_t maxsplit = bound.has(1) ? require_int(bound[1], "maxsplit") : -1;
    const auto sep = optional_chars(bound, 0, "sep");
    return string_list(name == "split" ? py::split(s, sep, maxsplit) : py::rsplit(s, sep, maxsplit));
  }
  if (name == "splitlines") {
    ArgBinder bound(fn, args, {"keepends"});
    return string_list(py::splitlines(s, truthy(bound[0])));
  }
  if (name == "startswith" || name == "endswith") {
    ArgBinder bound(fn, args, {"affix", "start", "end"});
    if (!bound.has(0)) throw Error(ErrorKind::Type, fn + "() takes at least 1 argument (0 given)");
    std::string text = s;
    if (bound.has(1) || bound.has(2)) {
      const Value sliced = *slice(Value::string(s), bound.get(1, Value::none()), bound.get(2, Value::none()), Value::none());
      text = sliced.as_string();
    }
    return Value::boolean(affix_matches(text, bound[0], name == "startswith"));
  }
  if (name == "replace") {
    ArgBinder bound(fn, args, {"old", "new", "count"});
    const int64_t count = bound.has(2) ? require_int(bound[2], "count") : -1;
    return Value::string(py::replace(s, require_string(bound[0], "replace() argument 1"),
                                     require_string(bound[1], "replace() argument 2"), count, limit));
  }
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize" || name == "swapcase") {
    ArgBinder(fn, args, {});
    if (name == "upper") return Value::string(unicode::upper(s));
    if (name == "lower") return Value::string(unicode::lower(s));
    if (name == "title") return Value::string(py::title(s));
    if (name == "swapcase") return Value::string(py::swapcase(s));
    return Value::string(py::capitalize(s));
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "count") {
    ArgBinder bound(fn, args, {"sub"});
    const std::string& sub = require_string(bound[0], "must be str");
    if (name == "count") return Value::integer(py::count(s, sub));
    const int64_t at = py::find(s, sub, name == "rfind");
    if (name == "index" && at < 0) throw Error(ErrorKind::Value, "substring not found");
    return Value::integer(at);
  }
  if (name == "join") {
    ArgBinder bound(fn, args, {"iterable"});
    std::string out;
    size_t index = 0;
    for (const Value& item : renderer.iterate(bound[0])) {
      if (!item.is_string()) {
        throw Error(ErrorKind::Type, "sequence item " + std::to_string(index) + ": expected str instance, " +
                                         std::string(type_name(item)) + " found");
      }
      if (index++ > 0) out += s;
      out += item.as_string();
      check_size(out.size(), limit);
    }
    return Value::string(std::move(out));
  }
  if (name == "center" || name == "ljust" || name == "rjust" || name == "zfill") {
    ArgBinder bound(fn, args, {"width"});
    const int64_t width = require_int(bound[0], "width");
    check_size(static_cast<size_t>(std::max<int64_t>(width, 0)), limit);
    const int64_t length = static_cast<int64_t>(unicode::count_code_points(s));
    if (width <= length) return Value::string(s);
    const std::string fill(static_cast<size_t>(width - length), name == "zfill" ? '0' : ' ');
    if (name == "center") return Value::string(py::center(s, width));
    if (name == "ljust") return Value::string(s + fill);
    if (name == "rjust") return Value::string(fill + s);
    if (!s.empty() && (s[0] == '-' || s[0] == '+')) return Value::string(s.substr(0, 1) + fill + s.substr(1));
    return Value::string(fill + s);
  }
  if (name == "partition" || name == "rpartition") {
    ArgBinder bound(fn, args, {"sep"});
    const std::string& sep = require_string(bound[0], "must be str");
    if (sep.empty()) throw Error(ErrorKind::Value, "empty separator");
    const size_t at = name == "partition" ? s.find(sep) : s.rfind(sep);
    if (at == std::string::npos) {
      return name == "partition" ? Value::tuple({Value::string(s), Value::string(""), Value::string("")})
                                 : Value::tuple({Value::string(""), Value::string(""), Value::string(s)});
    }
    return Value::tuple({Value::string(s.substr(0, at)), Value::string(sep), Value::string(s.substr(at + sep.size()))});
  }
  if (name == "removeprefix" || name == "removesuffix") {
    ArgBinder bound(fn, args, {"affix"});
    const std::string& affix = require_string(bound[0], "must be str");
    if (name == "removeprefix" && s.compare(0, affix.size(), affix) == 0) return Value::string(s.substr(affix.size()));
    if (name == "removesuffix" && !affix.empty() && affix.size() <= s.size() &&
        s.compare(s.size() - affix.size(), affix.size(), affix) == 0) {
      return Value::string(s.substr(0, s.size() - affix.size()));
    }
    return Value::string(s);
  }
  if (name == "format") {
    std::string out = format_string(s, args);
    check_size(out.size(), limit);
    return Value::string(std::move(out));
  }
  ArgBinder(fn, args, {});
  if (name == "isdigit") return Value::boolean(all_chars(s, unicode::is_digit));
  if (name == "isalpha") return Value::boolean(all_chars(s, unicode::is_alpha));
  if (name == "isalnum") return Value::boolean(all_chars(s, [](char32_t c) { return unicode::is_alpha(c) || unicode::is_digit(c); }));
  if (name == "isspace") return Value::boolean(all_chars(s, unicode::is_space));
  bool has_upper = false, has_lower = false;
  for (size_t pos = 0; pos < s.size();) {
    const char32_t c = unicode::decode(s, pos);
    has_upper = has_upper || unicode::is_upper(c);
    has_lower = has_lower || unicode::is_lower(c);
  }
  if (name == "islower") return Value::boolean(has_lower && !has_upper);
  return Value::boolean(has_upper && !has_lower);  // isupper
}

int64_t list_index(int64_t index, size_t size, bool clamp) {
  const int64_t n = static_cast<int64_t>(size);
  if (index < 0) index += n;
  if (clamp) return std::clamp<int64_t>(index, 0, n);
  if (index < 0 || index >= n) throw Error(ErrorKind::Value, "pop index out of range");
  return index;
}

Value call_list_method(Renderer& renderer, const Value& object, std::string_view name, CallArgs& args) {
  List& list = object.as_list();
  const std::string fn(name);
  if (name == "count") {
    ArgBinder bound(fn, args, {"value"});
    int64_t n = 0;
    for (const Value& item : list.items) n += equals(item, bound[0]) ? 1 : 0;
    return Value::integer(n);
  }
  if (name == "index") {
    ArgBinder bound(fn, args, {"value"});
    for (size_t i = 0; i < list.items.size(); ++i) {
      if (equals(list.items[i], bound[0])) return Value::integer(static_cast<int64_t>(i));
    }
    throw Error(ErrorKind::Value, repr(bound[0]) + " is not in list");
  }
  if (name == "copy") {
    ArgBinder(fn, args, {});
    return Value::list(list.items, list.kind);
  }
  // Mutators (only reached with allow_mutation).
  renderer.track_mutated(object);
  const auto grow = [&](size_t extra) { check_size(list.items.size() + extra, renderer.max_size()); };
  if (name == "append") {
    ArgBinder bound(fn, args, {"object"});
    grow(1);
    list.items.push_back(bound[0]);
    list.depth = std::max(list.depth, nesting_depth(bound[0]) + 1);
    if (list.depth > kMaxValueDepth) throw Error(ErrorKind::Limit, "value nested too deeply");
    return Value::none();
  }
  if (name == "extend") {
    ArgBinder bound(fn, args, {"iterable"});
    std::vector<Value> extra = renderer.iterate(bound[0]);
    grow(extra.size());
    for (Value& item : extra) {
      list.depth = std::max(list.depth, nesting_depth(item) + 1);
      list.items.push_back(std::move(item));
    }
    if (list.depth > kMaxValueDepth) throw Error(ErrorKind::Limit, "value nested too deeply");
    return Value::none();
  }
  if (name == "insert") {
    ArgBinder bound(fn, args, {"index", "object"});
    grow(1);
    const int64_t at = list_index(require_int(bound[0], "index"), list.items.size(), true);
    list.items.insert(list.items.begin() + at, bound[1]);
    list.depth = std::max(list.depth, nesting_depth(bound[1]) + 1);
    if (list.depth > kMaxValueDepth) throw Error(ErrorKind::Limit, "value nested too deeply");
    return Value::none();
  }
  if (name == "pop") {
    ArgBinder bound(fn, args, {"index"});
    if (list.items.empty()) throw Error(ErrorKind::Value, "pop from empty list");
    const int64_t at = list_index(bound.has(0) ? require_int(bound[0], "index") : -1, list.items.size(), false);
    Value item = list.items[static_cast<size_t>(at)];
    list.items.erase(list.items.begin() + at);
    return item;
  }
  if (name == "remove") {
    ArgBinder bound(fn, args, {"value"});
    for (size_t i = 0; i < list.items.size(); ++i) {
      if (equals(list.items[i], bound[0])) {
        list.items.erase(list.items.begin() + static_cast<std::ptrdiff_t>(i));
        return Value::none();
      }
    }
    throw Error(ErrorKind::Value, "list.remove(x): x not in list");
  }
  ArgBinder(fn, args, {});
  if (name == "clear") list.items.clear();
  if (name == "reverse") std::reverse(list.items.begin(), list.items.end());
  if (name == "sort") {
    std::stable_sort(list.items.begin(), list.items.end(), [](const Value& a, const Value& b) { return compare(a, b, "<"); });
  }
  return Value::none();
}

Value call_dict_method(Renderer& renderer, const Value& object, std::string_view name, CallArgs& args) {
  Dict& dict = object.as_dict();
  const std::string fn(name);
  if (name == "get") {
    ArgBinder bound(fn, args, {"key", "default"});
    if (!bound.has(0)) throw Error(ErrorKind::Type, "get expected at least 1 argument, got 0");
    if (!is_hashable(bound[0])) throw Error(ErrorKind::Type, "unhashable type: " + repr_string(type_name(bound[0])));
    if (const Value* value = dict.find(bound[0])) return *value;
    return bound.has(1) ? bound[1] : Value::none();
  }
  if (name == "items" || name == "keys" || name == "values") {
    ArgBinder(fn, args, {});
    std::vector<Value> items;
    items.reserve(dict.size());
    for (const auto& [key, value] : dict.entries) {
      if (name == "items") items.push_back(Value::tuple({key, value}));
      if (name == "keys") items.push_back(key);
      if (name == "values") items.push_back(value);
    }
    const SequenceKind kind = name == "items" ? SequenceKind::DictItems : name == "keys" ? SequenceKind::DictKeys : SequenceKind::DictValues;
    return Value::list(std::move(items), kind);
  }
  if (name == "copy") {
    ArgBinder(fn, args, {});
    return Value::dict(std::make_shared<Dict>(dict));
  }
  // Mutators (only reached with allow_mutation).
  renderer.track_mutated(object);
  if (name == "pop") {
    ArgBinder bound(fn, args, {"key", "default"});
    if (const Value* value = dict.find(bound[0])) {
      Value result = *value;
      dict.erase(bound[0]);
      return result;
    }
    if (bound.has(1)) return bound[1];
    throw Error(ErrorKind::Value, "KeyError: " + repr(bound[0]));
  }
  if (name == "setdefault") {
    ArgBinder bound(fn, args, {"key", "default"});
    if (const Value* value = dict.find(bound[0])) return *value;
    const Value fallback = bound.has(1) ? bound[1] : Value::none();
    check_size(dict.size() + 1, renderer.max_size());
    dict.set(bound[0], fallback);
    return fallback;
  }
  if (name == "update") {
    Dict incoming;
    if (!args.positional.empty() && args.positional[0].is_dict()) {
      incoming = args.positional[0].as_dict();
      args.positional.erase(args.positional.begin());
    }
    if (!args.positional.empty()) throw Error(ErrorKind::Type, "update() expects a mapping");
    for (auto& [key, value] : args.keyword) incoming.set(Value::string(key), value);
    check_size(dict.size() + incoming.size(), renderer.max_size());
    for (auto& [key, value] : incoming.entries) dict.set(key, value);
    return Value::none();
  }
  if (name == "popitem") {
    ArgBinder(fn, args, {});
    if (dict.size() == 0) throw Error(ErrorKind::Value, "KeyError: 'popitem(): dictionary is empty'");
    auto entry = dict.entries.back();
    dict.entries.pop_back();
    return Value::tuple({entry.first, entry.second});
  }
  ArgBinder(fn, args, {});
  dict.entries.clear();  // clear
  return Value::none();
}

}  // namespace

bool call_method(Renderer& renderer, const Value& object, std::string_view name, CallArgs& args, Value* result) {
  if (!has_method(object, name)) return false;
  if (is_mutator(object, name) && !renderer.options().allow_mutation) return false;
  if (object.is_string()) {
    *result = call_string_method(renderer, object.as_string(), name, args);
  } else if (object.is_dict()) {
    *result = call_dict_method(renderer, object, name, args);
  } else {
    *result = call_list_method(renderer, object, name, args);
  }
  return true;
}

Value find_method(const Value& object, std::string_view name, bool allow_mutation) {
  if (!has_method(object, name)) return Value();
  if (is_mutator(object, name) && !allow_mutation) {
    return Value::undefined("access to attribute " + repr_string(name) + " of " + repr_string(type_name(object)) +
                                " object is unsafe.",
                            ErrorKind::Security);
  }
  auto callable = std::make_shared<Callable>();
  callable->name = std::string(name) + " of " + std::string(type_name(object)) + " object";
  callable->kind = Callable::Kind::Method;
  const std::string method(name);
  callable->function = [object, method](Renderer& renderer, CallArgs& args) -> Value {
    Value result;
    if (!call_method(renderer, object, method, args, &result)) {
      throw Error(ErrorKind::Security, "access to attribute " + repr_string(method) + " is unsafe.");
    }
    return result;
  };
  return Value::callable(std::move(callable));
}

}  // namespace rackserve::jinja
