// Value construction and the Python comparison/truthiness rules.
#include "text/jinja/value.h"

#include <algorithm>
#include <cmath>

#include "text/jinja/value_format.h"

namespace rackserve::jinja {

Value Value::undefined(std::string message, ErrorKind kind) {
  Value v;
  v.ref_ = std::make_shared<UndefinedInfo>(UndefinedInfo{std::move(message), kind});
  return v;
}

Value Value::undefined_name(std::string_view name) { return undefined(repr_string(name) + " is undefined"); }

Value Value::missing_attribute(const Value& object, std::string_view attribute) {
  return undefined(repr_string(object_type_repr(object)) + " has no attribute " + repr_string(attribute));
}

Value Value::missing_element(const Value& object, const Value& key) {
  if (key.is_string()) return missing_attribute(object, key.as_string());
  return undefined(object_type_repr(object) + " has no element " + repr(key));
}

Value Value::none() {
  Value v;
  v.kind_ = ValueKind::None;
  return v;
}

Value Value::boolean(bool value) {
  Value v;
  v.kind_ = ValueKind::Bool;
  v.scalar_.b = value;
  return v;
}

Value Value::integer(int64_t value) {
  Value v;
  v.kind_ = ValueKind::Int;
  v.scalar_.i = value;
  return v;
}

Value Value::number(double value) {
  Value v;
  v.kind_ = ValueKind::Float;
  v.scalar_.f = value;
  return v;
}

Value Value::string(std::string value) {
  Value v;
  v.kind_ = ValueKind::String;
  v.ref_ = std::make_shared<std::string>(std::move(value));
  return v;
}

Value Value::list(std::vector<Value> items, SequenceKind kind) {
  Value v;
  v.kind_ = ValueKind::List;
  auto list = std::make_shared<List>();
  uint32_t depth = 0;
  for (const Value& item : items) depth = std::max(depth, nesting_depth(item));
  if (depth >= kMaxValueDepth) throw Error(ErrorKind::Limit, "value nested too deeply");
  list->items = std::move(items);
  list->kind = kind;
  list->depth = depth + 1;
  v.ref_ = std::move(list);
  return v;
}

Value Value::dict(std::shared_ptr<Dict> dict) {
  Value v;
  v.kind_ = ValueKind::Dict;
  v.ref_ = std::move(dict);
  return v;
}

Value Value::empty_dict() { return dict(std::make_shared<Dict>()); }

Value Value::callable(std::shared_ptr<Callable> callable) {
  Value v;
  v.kind_ = ValueKind::Callable;
  v.ref_ = std::move(callable);
  return v;
}

Value Value::object(std::shared_ptr<Object> object) {
  Value v;
  v.kind_ = ValueKind::Object;
  v.ref_ = std::move(object);
  return v;
}

bool Value::is_sequence_kind(SequenceKind kind) const { return is_list() && as_list().kind == kind; }

double Value::as_float() const {
  switch (kind_) {
    case ValueKind::Bool: return scalar_.b ? 1.0 : 0.0;
    case ValueKind::Int: return static_cast<double>(scalar_.i);
    case ValueKind::Float: return scalar_.f;
    default: return 0.0;
  }
}

void Value::throw_undefined() const {
  const UndefinedInfo* info = undefined_info();
  if (info == nullptr) throw Error(ErrorKind::Undefined, "value is undefined");
  throw Error(info->kind, info->message);
}

bool Value::identical(const Value& other) const {
  if (kind_ != other.kind_) return false;
  switch (kind_) {
    case ValueKind::Undefined: return ref_ == other.ref_;
    case ValueKind::None: return true;
    case ValueKind::Bool: return scalar_.b == other.scalar_.b;
    case ValueKind::Int: return scalar_.i == other.scalar_.i;
    case ValueKind::Float: return scalar_.f == other.scalar_.f;
    default: return ref_ == other.ref_;
  }
}

bool Object::set_attribute(std::string_view, Value) { return false; }

namespace {

constexpr int kMaxCompareDepth = 512;

void check_depth(int depth) {
  if (depth > kMaxCompareDepth) throw Error(ErrorKind::Limit, "maximum nesting depth exceeded while comparing");
}

bool equals_at(const Value& a, const Value& b, int depth) {
  check_depth(depth);
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_float() == b.as_float();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case ValueKind::Undefined:
    case ValueKind::None: return true;
    case ValueKind::String: return a.as_string() == b.as_string();
    case ValueKind::List: {
      const List& x = a.as_list();
      const List& y = b.as_list();
      if (&x == &y) return true;
      const bool x_tuple = x.kind == SequenceKind::Tuple;
      const bool y_tuple = y.kind == SequenceKind::Tuple;
      if (x.kind == SequenceKind::Generator || y.kind == SequenceKind::Generator || x_tuple != y_tuple) return false;
      if (x.items.size() != y.items.size()) return false;
      for (size_t i = 0; i < x.items.size(); ++i) {
        if (!equals_at(x.items[i], y.items[i], depth + 1)) return false;
      }
      return true;
    }
    case ValueKind::Dict: {
      const Dict& x = a.as_dict();
      const Dict& y = b.as_dict();
      if (&x == &y) return true;
      if (x.size() != y.size()) return false;
      for (const auto& [key, value] : x.entries) {
        const Value* other = y.find(key);
        if (other == nullptr || !equals_at(value, *other, depth + 1)) return false;
      }
      return true;
    }
    default: return a.identical(b);
  }
}

enum class Order { Less, Equal, Greater, Unordered };

Order order_at(const Value& a, const Value& b, std::string_view op, int depth) {
  check_depth(depth);
  if (a.is_undefined()) a.throw_undefined();
  if (b.is_undefined()) b.throw_undefined();
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) {
      const double x = a.as_float();
      const double y = b.as_float();
      if (std::isnan(x) || std::isnan(y)) return Order::Unordered;
      return x < y ? Order::Less : (x > y ? Order::Greater : Order::Equal);
    }
    const int64_t x = a.as_int();
    const int64_t y = b.as_int();
    return x < y ? Order::Less : (x > y ? Order::Greater : Order::Equal);
  }
  if (a.is_string() && b.is_string()) {
    const int c = a.as_string().compare(b.as_string());
    return c < 0 ? Order::Less : (c > 0 ? Order::Greater : Order::Equal);
  }
  if (a.is_list() && b.is_list()) {
    const List& x = a.as_list();
    const List& y = b.as_list();
    const bool comparable = (x.kind == SequenceKind::List && y.kind == SequenceKind::List) ||
                            (x.kind == SequenceKind::Tuple && y.kind == SequenceKind::Tuple);
    if (comparable) {
      const size_t n = std::min(x.items.size(), y.items.size());
      for (size_t i = 0; i < n; ++i) {
        if (!equals_at(x.items[i], y.items[i], depth + 1)) return order_at(x.items[i], y.items[i], op, depth + 1);
      }
      if (x.items.size() == y.items.size()) return Order::Equal;
      return x.items.size() < y.items.size() ? Order::Less : Order::Greater;
    }
  }
  throw Error(ErrorKind::Type, "'" + std::string(op) + "' not supported between instances of " +
                                   repr_string(type_name(a)) + " and " + repr_string(type_name(b)));
}

}  // namespace

bool equals(const Value& a, const Value& b) { return equals_at(a, b, 0); }

bool compare(const Value& a, const Value& b, std::string_view op) {
  const Order order = order_at(a, b, op, 0);
  const bool less = order == Order::Less;
  const bool equal = order == Order::Equal;
  const bool greater = order == Order::Greater;
  bool result = false;
  if (op == "<") result = less;
  else if (op == "<=") result = less || equal;
  else if (op == ">") result = greater;
  else if (op == ">=") result = greater || equal;
  return result;
}

bool truthy(const Value& value) {
  switch (value.kind()) {
    case ValueKind::Undefined:
    case ValueKind::None: return false;
    case ValueKind::Bool: return value.as_bool();
    case ValueKind::Int: return value.as_int() != 0;
    case ValueKind::Float: return value.as_float() != 0.0;
    case ValueKind::String: return !value.as_string().empty();
    case ValueKind::List: {
      const List& list = value.as_list();
      return list.kind == SequenceKind::Generator || !list.items.empty();
    }
    case ValueKind::Dict: return value.as_dict().size() != 0;
    case ValueKind::Callable:
    case ValueKind::Object: return true;
  }
  return false;
}

bool is_hashable(const Value& value) {
  if (value.is_dict()) return false;
  if (value.is_list()) {
    const List& list = value.as_list();
    if (list.kind == SequenceKind::Tuple) {
      for (const Value& item : list.items) {
        if (!is_hashable(item)) return false;
      }
      return true;
    }
    return list.kind == SequenceKind::Generator;
  }
  return true;
}

std::string_view type_name(const Value& value) {
  switch (value.kind()) {
    case ValueKind::Undefined: return "Undefined";
    case ValueKind::None: return "NoneType";
    case ValueKind::Bool: return "bool";
    case ValueKind::Int: return "int";
    case ValueKind::Float: return "float";
    case ValueKind::String: return "str";
    case ValueKind::List:
      switch (value.as_list().kind) {
        case SequenceKind::List: return "list";
        case SequenceKind::Tuple: return "tuple";
        case SequenceKind::Generator: return "generator";
        case SequenceKind::DictKeys: return "dict_keys";
        case SequenceKind::DictValues: return "dict_values";
        case SequenceKind::DictItems: return "dict_items";
      }
      return "list";
    case ValueKind::Dict: return "dict";
    case ValueKind::Callable:
      switch (value.as_callable().kind) {
        case Callable::Kind::Macro: return "Macro";
        case Callable::Kind::Method: return "builtin_function_or_method";
        case Callable::Kind::Function: return "function";
      }
      return "function";
    case ValueKind::Object: return value.as_object().type_name();
  }
  return "object";
}

std::string object_type_repr(const Value& value) {
  if (value.is_none()) return "None";
  if (value.is_undefined()) return "jinja2.runtime.Undefined object";
  if (value.is_callable() && value.as_callable().kind == Callable::Kind::Macro) return "jinja2.runtime.Macro object";
  if (value.is_object()) {
    const std::string_view name = value.as_object().type_name();
    return std::string(name == "Namespace" ? "jinja2.utils." : "jinja2.runtime.") + std::string(name) + " object";
  }
  return std::string(type_name(value)) + " object";
}

const Value* Dict::find(std::string_view key) const {
  for (const auto& entry : entries) {
    if (entry.first.is_string() && entry.first.as_string() == key) return &entry.second;
  }
  return nullptr;
}

const Value* Dict::find(const Value& key) const {
  if (key.is_string()) return find(std::string_view(key.as_string()));
  for (const auto& entry : entries) {
    if (equals(entry.first, key)) return &entry.second;
  }
  return nullptr;
}

uint32_t nesting_depth(const Value& value) {
  if (value.is_list()) return value.as_list().depth;
  if (value.is_dict()) return value.as_dict().depth;
  return 0;
}

void Dict::set(Value key, Value value) {
  const uint32_t value_depth = nesting_depth(value);
  if (value_depth >= kMaxValueDepth) throw Error(ErrorKind::Limit, "value nested too deeply");
  depth = std::max(depth, value_depth + 1);
  for (auto& entry : entries) {
    if (equals(entry.first, key)) {
      entry.second = std::move(value);
      return;
    }
  }
  entries.emplace_back(std::move(key), std::move(value));
}

bool Dict::erase(const Value& key) {
  for (auto it = entries.begin(); it != entries.end(); ++it) {
    if (equals(it->first, key)) {
      entries.erase(it);
      return true;
    }
  }
  return false;
}

}  // namespace rackserve::jinja
