// Global functions of the chat-template environment: jinja2's range (with the sandbox's
// MAX_RANGE), dict, namespace and joiner, plus transformers' raise_exception and
// strftime_now. Each lookup builds a fresh callable; nothing here is shared between renders.
#include <ctime>

#include "text/jinja/args.h"
#include "text/jinja/builtins.h"
#include "text/jinja/evaluator.h"
#include "text/jinja/value_format.h"

namespace rackserve::jinja {

namespace {

constexpr int64_t kMaxRange = 100000;  // jinja2.sandbox.MAX_RANGE

// jinja2.utils.Namespace: attributes assignable with {% set ns.name = value %}.
class Namespace : public Object {
 public:
  std::string_view type_name() const override { return "Namespace"; }
  Value attribute(std::string_view name) const override {
    if (const Value* value = attributes_.find(name)) return *value;
    return Value::undefined("'jinja2.utils.Namespace object' has no attribute " + repr_string(name));
  }
  bool set_attribute(std::string_view name, Value value) override {
    attributes_.set(Value::string(std::string(name)), std::move(value));
    return true;
  }
  std::string repr(int depth) const override {
    auto copy = std::make_shared<Dict>(attributes_);
    return "<Namespace " + repr_nested(Value::dict(std::move(copy)), depth + 1) + ">";
  }
  void release() override { attributes_.entries.clear(); }
  Dict& attributes() { return attributes_; }

 private:
  Dict attributes_;
};

// Python dict(*args, **kwargs) into `out`.
void fill_dict(Renderer& renderer, Dict& out, CallArgs& args, std::string_view function) {
  if (args.positional.size() > 1) {
    throw Error(ErrorKind::Type, std::string(function) + " expected at most 1 argument, got " +
                                     std::to_string(args.positional.size()));
  }
  if (!args.positional.empty()) {
    const Value& source = args.positional[0];
    if (source.is_dict()) {
      for (const auto& [key, value] : source.as_dict().entries) out.set(key, value);
    } else {
      for (const Value& pair : renderer.iterate(source)) {
        const std::vector<Value> items = renderer.iterate(pair);
        if (items.size() != 2) {
          throw Error(ErrorKind::Value, "dictionary update sequence element has length " + std::to_string(items.size()) +
                                            "; 2 is required");
        }
        if (!is_hashable(items[0])) throw Error(ErrorKind::Type, "unhashable type: " + repr_string(type_name(items[0])));
        out.set(items[0], items[1]);
      }
    }
  }
  for (const auto& [name, value] : args.keyword) out.set(Value::string(name), value);
}

Value range(Renderer& renderer, CallArgs& args) {
  if (!args.keyword.empty()) throw Error(ErrorKind::Type, "range() takes no keyword arguments");
  const size_t n = args.positional.size();
  if (n == 0 || n > 3) throw Error(ErrorKind::Type, "range expected at most 3 arguments, got " + std::to_string(n));
  int64_t start = 0, stop = 0, step = 1;
  if (n == 1) {
    stop = require_int(args.positional[0], "range");
  } else {
    start = require_int(args.positional[0], "range");
    stop = require_int(args.positional[1], "range");
    if (n == 3) step = require_int(args.positional[2], "range");
  }
  if (step == 0) throw Error(ErrorKind::Value, "range() arg 3 must not be zero");
  // len(range) without overflow: compute in long double, exact enough to compare to 1e5.
  const long double span = step > 0 ? static_cast<long double>(stop) - start : static_cast<long double>(start) - stop;
  const long double magnitude = step > 0 ? static_cast<long double>(step) : -static_cast<long double>(step);
  const long double length = span <= 0 ? 0 : (span + magnitude - 1) / magnitude;
  if (length > kMaxRange) {
    throw Error(ErrorKind::Value, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
  }
  std::vector<Value> items;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    items.push_back(Value::integer(i));
    if (static_cast<int64_t>(items.size()) >= kMaxRange) break;
  }
  renderer.step();
  return Value::list(std::move(items));
}

Value make_dict(Renderer& renderer, CallArgs& args) {
  auto dict = std::make_shared<Dict>();
  fill_dict(renderer, *dict, args, "dict");
  return Value::dict(std::move(dict));
}

Value make_namespace(Renderer& renderer, CallArgs& args) {
  auto ns = std::make_shared<Namespace>();
  renderer.track(ns);
  fill_dict(renderer, ns->attributes(), args, "namespace");
  return Value::object(std::move(ns));
}

Value make_joiner(Renderer&, CallArgs& args) {
  ArgBinder bound("joiner", args, {"sep"});
  const std::string separator = bound.has(0) ? to_str(bound[0]) : ", ";
  auto used = std::make_shared<bool>(false);
  auto callable = std::make_shared<Callable>();
  callable->name = "joiner";
  callable->function = [separator, used](Renderer&, CallArgs&) -> Value {
    if (!*used) {
      *used = true;
      return Value::string("");
    }
    return Value::string(separator);
  };
  return Value::callable(std::move(callable));
}

Value raise_exception(Renderer&, CallArgs& args) {
  ArgBinder bound("raise_exception", args, {"message"});
  if (!bound.has(0)) throw Error(ErrorKind::Type, "raise_exception() missing 1 required positional argument: 'message'");
  throw Error(ErrorKind::Template, to_str(bound[0]));
}

Value strftime_now(Renderer& renderer, CallArgs& args) {
  ArgBinder bound("strftime_now", args, {"format"});
  if (!bound.has(0)) throw Error(ErrorKind::Type, "strftime_now() missing 1 required positional argument: 'format'");
  const std::string& format = require_string(bound[0], "strftime() argument 1");
  std::tm time{};
  if (renderer.options().local_time) {
    time = renderer.options().local_time();
  } else {
    const std::time_t now = std::time(nullptr);
    localtime_r(&now, &time);
  }
  if (format.empty()) return Value::string("");
  // strftime returns 0 both for "too small" and for an empty result: grow a few times.
  for (size_t capacity = format.size() * 4 + 64; capacity <= (size_t{1} << 20); capacity *= 8) {
    std::string out(capacity, '\0');
    const size_t written = std::strftime(out.data(), out.size(), format.c_str(), &time);
    if (written > 0) {
      out.resize(written);
      return Value::string(std::move(out));
    }
  }
  return Value::string("");
}

Value native(std::string name, NativeFunction function) {
  auto callable = std::make_shared<Callable>();
  callable->name = std::move(name);
  callable->function = std::move(function);
  return Value::callable(std::move(callable));
}

}  // namespace

Value find_global(std::string_view name) {
  if (name == "range") return native("range", range);
  if (name == "dict") return native("dict", make_dict);
  if (name == "namespace") return native("namespace", make_namespace);
  if (name == "joiner") return native("joiner", make_joiner);
  if (name == "raise_exception") return native("raise_exception", raise_exception);
  if (name == "strftime_now") return native("strftime_now", strftime_now);
  return Value();
}

}  // namespace rackserve::jinja
