// Value: the dynamic type templates compute with, modelled on the Python objects jinja2
// sees (None, bool, int, float, str, list/tuple, dict, functions, namespaces). Containers
// and strings are shared by reference like Python objects, so copying a Value is cheap.
// Dicts keep insertion order. Python's printing rules (str/repr) live in value_format.h.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "text/jinja/error.h"

namespace rackserve::jinja {

class Renderer;
class Value;
struct List;
struct Dict;
struct Callable;
class Object;

enum class ValueKind : uint8_t { Undefined, None, Bool, Int, Float, String, List, Dict, Callable, Object };

// Python has several sequence types that print and behave differently; a List carries which.
enum class SequenceKind : uint8_t {
  List,
  Tuple,
  Generator,   // from map/select/...: single pass, always truthy, no len(), prints <generator object>
  DictKeys,    // d.keys(), d.values(), d.items(): views that print as dict_keys([...]) etc.
  DictValues,
  DictItems,
};

// What an undefined value reports when it is used where a real value is required.
struct UndefinedInfo {
  std::string message;  // e.g. "'foo' is undefined"
  ErrorKind kind = ErrorKind::Undefined;
};

class Value {
 public:
  Value() = default;  // undefined, reported as "value is undefined"

  static Value undefined(std::string message, ErrorKind kind = ErrorKind::Undefined);
  // jinja2's messages: "'name' is undefined" / "'dict object' has no attribute 'x'".
  static Value undefined_name(std::string_view name);
  static Value missing_attribute(const Value& object, std::string_view attribute);
  static Value missing_element(const Value& object, const Value& key);
  static Value none();
  static Value boolean(bool value);
  static Value integer(int64_t value);
  static Value number(double value);
  static Value string(std::string value);
  static Value list(std::vector<Value> items, SequenceKind kind = SequenceKind::List);
  static Value tuple(std::vector<Value> items) { return list(std::move(items), SequenceKind::Tuple); }
  static Value dict(std::shared_ptr<Dict> dict);
  static Value empty_dict();
  static Value callable(std::shared_ptr<Callable> callable);
  static Value object(std::shared_ptr<Object> object);

  ValueKind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == ValueKind::Undefined; }
  bool is_none() const { return kind_ == ValueKind::None; }
  bool is_bool() const { return kind_ == ValueKind::Bool; }
  bool is_int() const { return kind_ == ValueKind::Int; }
  bool is_float() const { return kind_ == ValueKind::Float; }
  // Python numbers: bool is an int subclass.
  bool is_number() const { return kind_ == ValueKind::Bool || kind_ == ValueKind::Int || kind_ == ValueKind::Float; }
  bool is_integral() const { return kind_ == ValueKind::Bool || kind_ == ValueKind::Int; }
  bool is_string() const { return kind_ == ValueKind::String; }
  bool is_list() const { return kind_ == ValueKind::List; }
  bool is_dict() const { return kind_ == ValueKind::Dict; }
  bool is_callable() const { return kind_ == ValueKind::Callable; }
  bool is_object() const { return kind_ == ValueKind::Object; }
  bool is_sequence_kind(SequenceKind kind) const;

  bool as_bool() const { return scalar_.b; }
  // Int or Bool as a Python int.
  int64_t as_int() const { return kind_ == ValueKind::Bool ? (scalar_.b ? 1 : 0) : scalar_.i; }
  // Any number as a Python float.
  double as_float() const;
  const std::string& as_string() const { return *static_cast<const std::string*>(ref_.get()); }
  List& as_list() const { return *static_cast<List*>(ref_.get()); }
  Dict& as_dict() const { return *static_cast<Dict*>(ref_.get()); }
  Callable& as_callable() const { return *static_cast<Callable*>(ref_.get()); }
  Object& as_object() const { return *static_cast<Object*>(ref_.get()); }
  // Null for the plain default-constructed undefined.
  const UndefinedInfo* undefined_info() const { return static_cast<const UndefinedInfo*>(ref_.get()); }
  // Throws the error this undefined value stands for.
  [[noreturn]] void throw_undefined() const;

  // Python `is`: same object for containers, same value for scalars.
  bool identical(const Value& other) const;

 private:
  ValueKind kind_ = ValueKind::Undefined;
  union {
    bool b;
    int64_t i;
    double f;
  } scalar_{};
  std::shared_ptr<void> ref_;
};

struct List {
  std::vector<Value> items;
  SequenceKind kind = SequenceKind::List;
  size_t consumed = 0;  // Generator only: items already yielded
  uint32_t depth = 1;   // nesting depth of containers, bounded so values never nest without limit
};

// Insertion-ordered mapping with Python key equality (1 == 1.0 == True).
struct Dict {
  std::vector<std::pair<Value, Value>> entries;
  uint32_t depth = 1;  // as List::depth

  const Value* find(std::string_view key) const;
  const Value* find(const Value& key) const;
  // Replaces the value in place when the key exists, else appends.
  void set(Value key, Value value);
  bool erase(const Value& key);
  size_t size() const { return entries.size(); }
};

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

using NativeFunction = std::function<Value(Renderer& renderer, CallArgs& args)>;

struct Callable {
  enum class Kind : uint8_t { Function, Macro, Method };
  std::string name;
  Kind kind = Kind::Function;
  NativeFunction function;
};

// Objects with attributes: namespace(), the loop variable, cycler, joiner.
class Object {
 public:
  virtual ~Object() = default;
  virtual std::string_view type_name() const = 0;
  // Undefined when absent.
  virtual Value attribute(std::string_view name) const = 0;
  // False when the object does not allow assignment (only namespaces do).
  virtual bool set_attribute(std::string_view name, Value value);
  // `depth` is the nesting level of the enclosing print; pass it on (value_format.h's
  // repr_nested) so that self-referencing objects end in a Limit error, not a stack overflow.
  virtual std::string repr(int depth) const = 0;
  // Drops the values the object refers to. The Renderer calls it on every object it created
  // when the render ends: a namespace may hold itself (ns.me = ns), and such reference
  // cycles would otherwise keep their memory alive forever.
  virtual void release() {}
};

// Python semantics shared by the evaluator, filters, tests and methods.
bool truthy(const Value& value);
bool equals(const Value& a, const Value& b);
// Python `a op b` for op in "<", "<=", ">", ">="; throws ErrorKind::Type for unorderable operands.
bool compare(const Value& a, const Value& b, std::string_view op);
bool is_hashable(const Value& value);
// Containers nest at most this deep (JSON input, literals, filters); deeper is a Limit error.
constexpr uint32_t kMaxValueDepth = 512;
uint32_t nesting_depth(const Value& value);
// Python's type(x).__name__: 'str', 'dict', 'NoneType', 'Undefined', ...
std::string_view type_name(const Value& value);
// jinja2's object_type_repr: 'dict object', 'None', ...
std::string object_type_repr(const Value& value);

}  // namespace rackserve::jinja
