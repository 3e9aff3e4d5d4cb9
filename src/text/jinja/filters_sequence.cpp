// Sequence filters, following jinja2/filters.py: argument names and defaults, the
// "if value:" guard that makes undefined and empty operands produce nothing, and the
// errors jinja2 raises.
#include "text/jinja/filters_sequence.h"

#include <algorithm>

#include "text/jinja/args.h"
#include "text/jinja/attribute_path.h"
#include "text/jinja/evaluator.h"
#include "text/jinja/operators.h"
#include "text/jinja/unicode.h"
#include "text/jinja/value_format.h"

namespace rackserve::jinja::filters {

namespace {

Value generator(std::vector<Value> items) { return Value::list(std::move(items), SequenceKind::Generator); }

// Items of an operand that jinja2 guards with `if value:` (falsy operands yield nothing).
std::vector<Value> guarded_items(Renderer& renderer, const Value& value) {
  if (!truthy(value)) return {};
  return renderer.iterate(value);
}

// select/reject/selectattr/rejectattr share jinja2's select_or_reject.
Value select_or_reject(Renderer& renderer, const Value& operand, CallArgs& args, bool lookup_attribute, bool keep) {
  size_t next = 0;
  std::optional<AttributePath> path;
  if (lookup_attribute) {
    if (args.positional.empty()) throw Error(ErrorKind::Runtime, "Missing parameter for attribute name");
    path.emplace(args.positional[0]);
    next = 1;
  }
  std::string test_name;
  CallArgs test_args;
  const bool has_test = args.positional.size() > next;
  if (has_test) {
    test_name = require_string(args.positional[next], "test name");
    test_args.positional.assign(args.positional.begin() + static_cast<std::ptrdiff_t>(next + 1), args.positional.end());
    test_args.keyword = args.keyword;
  }
  std::vector<Value> kept;
  for (const Value& item : guarded_items(renderer, operand)) {
    renderer.step();
    const Value subject = path ? path->get(renderer, item) : item;
    bool passed;
    if (has_test) {
      CallArgs call = test_args;
      passed = renderer.apply_test(test_name, subject, call);
    } else {
      passed = truthy(subject);
    }
    if (passed == keep) kept.push_back(item);
  }
  return generator(std::move(kept));
}

bool less_than(const Value& a, const Value& b) { return compare(a, b, "<"); }

Value aggregate(Renderer& renderer, const Value& operand, CallArgs& args, bool want_max) {
  ArgBinder bound(want_max ? "max" : "min", args, {"case_sensitive", "attribute"});
  const bool case_sensitive = truthy(bound[0]);
  std::optional<AttributePath> path;
  if (bound.has(1) && !bound[1].is_none()) path.emplace(bound[1]);
  const std::vector<Value> items = renderer.iterate(operand);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  const auto key = [&](const Value& item) {
    Value k = path ? path->get(renderer, item) : item;
    return case_sensitive ? k : ignore_case(k);
  };
  size_t best = 0;
  Value best_key = key(items[0]);
  for (size_t i = 1; i < items.size(); ++i) {
    Value k = key(items[i]);
    if (want_max ? less_than(best_key, k) : less_than(k, best_key)) {
      best = i;
      best_key = std::move(k);
    }
  }
  return items[best];
}

}  // namespace

Value first(Renderer& renderer, const Value& operand, CallArgs& args) {
  ArgBinder("first", args, {});
  if (operand.is_list() && operand.as_list().kind == SequenceKind::Generator) {
    std::vector<Value> items = renderer.iterate(operand);
    if (!items.empty()) return items[0];
  } else {
    const std::vector<Value> items = renderer.iterate(operand);
    if (!items.empty()) return items[0];
  }
  return Value::undefined("No first item, sequence was empty.");
}

Value last(Renderer& renderer, const Value& operand, CallArgs& args) {
  ArgBinder("last", args, {});
  if (operand.is_list() && operand.as_list().kind == SequenceKind::Generator) {
    throw Error(ErrorKind::Type, "'generator' object is not reversible");
  }
  if (!operand.is_list() && !operand.is_string() && !operand.is_dict() && !operand.is_undefined()) {
    throw Error(ErrorKind::Type, repr_string(type_name(operand)) + " object is not reversible");
  }
  const std::vector<Value> items = renderer.iterate(operand);
  if (items.empty()) return Value::undefined("No last item, sequence was empty.");
  return items.back();
}

Value length(Renderer&, const Value& operand, CallArgs& args) {
  ArgBinder("length", args, {});
  switch (operand.kind()) {
    case ValueKind::Undefined: return Value::integer(0);
    case ValueKind::String: return Value::integer(static_cast<int64_t>(unicode::count_code_points(operand.as_string())));
    case ValueKind::Dict: return Value::integer(static_cast<int64_t>(operand.as_dict().size()));
    case ValueKind::List:
      if (operand.as_list().kind != SequenceKind::Generator) {
        return Value::integer(static_cast<int64_t>(operand.as_list().items.size()));
      }
      break;
    default: break;
  }
  throw Error(ErrorKind::Type, "object of type " + repr_string(type_name(operand)) + " has no len()");
}

Value list(Renderer& renderer, const Value& operand, CallArgs& args) {
  ArgBinder("list", args, {});
  return Value::list(renderer.iterate(operand));
}

Value join(Renderer& renderer, const Value& operand, CallArgs& args) {
  ArgBinder bound("join", args, {"d", "attribute"});
  const std::string separator = bound.has(0) ? to_str(bound[0]) : std::string();
  std::optional<AttributePath> path;
  if (bound.has(1) && !bound[1].is_none()) path.emplace(bound[1]);
  std::string out;
  bool first_item = true;
  for (const Value& item : renderer.iterate(operand)) {
    if (!first_item) out += separator;
    first_item = false;
    append_str(out, path ? path->get(renderer, item) : item);
    check_size(out.size(), renderer.max_size());
  }
  return Value::string(std::move(out));
}

Value map(Renderer& renderer, const Value& operand, CallArgs& args) {
  std::vector<Value> out;
  if (args.positional.empty()) {
    std::optional<AttributePath> path;
    Value fallback = Value::none();
    bool has_default = false;
    for (const auto& [name, value] : args.keyword) {
      if (name == "attribute") {
        path.emplace(value);
      } else if (name == "default") {
        fallback = value;
        has_default = true;
      } else {
        throw Error(ErrorKind::Runtime, "Unexpected keyword argument " + repr_string(name));
      }
    }
    if (!path) throw Error(ErrorKind::Runtime, "map requires a filter argument");
    for (const Value& item : guarded_items(renderer, operand)) {
      renderer.step();
      Value v = path->get(renderer, item);
      if (has_default && v.is_undefined()) v = fallback;
      out.push_back(std::move(v));
    }
    return generator(std::move(out));
  }
  const std::string name = require_string(args.positional[0], "filter name");
  CallArgs rest;
  rest.positional.assign(args.positional.begin() + 1, args.positional.end());
  rest.keyword = args.keyword;
  for (const Value& item : guarded_items(renderer, operand)) {
    renderer.step();
    CallArgs call = rest;
    out.push_back(renderer.apply_filter(name, item, call));
  }
  return generator(std::move(out));
}

Value select(Renderer& renderer, const Value& operand, CallArgs& args) {
  return select_or_reject(renderer, operand, args, false, true);
}
Value reject(Renderer& renderer, const Value& operand, CallArgs& args) {
  return select_or_reject(renderer, operand, args, false, false);
}
Value selectattr(Renderer& renderer, const Value& operand, CallArgs& args) {
  return select_or_reject(renderer, operand, args, true, true);
}
Value rejectattr(Renderer& renderer, const Value& operand, CallArgs& args) {
  return select_or_reject(renderer, operand, args, true, false);
}

Value unique(Renderer& renderer, const Value& operand, CallArgs& args) {
  ArgBinder bound("unique", args, {"case_sensitive", "attribute"});
  const bool case_sensitive = truthy(bound[0]);
  std::optional<AttributePath> path;
  if (bound.has(1) && !bound[1].is_none()) path.emplace(bound[1]);
  std::vector<Value> seen;
  std::vector<Value> out;
  for (const Value& item : renderer.iterate(operand)) {
    renderer.step();
    Value key = path ? path->get(renderer, item) : item;
    if (!case_sensitive) key = ignore_case(key);
    if (!is_hashable(key)) throw Error(ErrorKind::Type, "unhashable type: " + repr_string(type_name(key)));
    bool found = false;
    for (const Value& s : seen) {
      if (equals(s, key)) {
        found = true;
        break;
      }
    }
    if (!found) {
      seen.push_back(std::move(key));
      out.push_back(item);
    }
  }
  return generator(std::move(out));
}

Value sort(Renderer& renderer, const Value& operand, CallArgs& args) {
  ArgBinder bound("sort", args, {"reverse", "case_sensitive", "attribute"});
  const bool descending = truthy(bound[0]);
  const bool case_sensitive = truthy(bound[1]);
  std::optional<AttributePath> path;
  if (bound.has(2) && !bound[2].is_none()) path.emplace(bound[2]);
  std::vector<std::pair<Value, Value>> keyed;
  for (const Value& item : renderer.iterate(operand)) {
    Value key = path ? path->get(renderer, item) : item;
    keyed.emplace_back(case_sensitive ? key : ignore_case(key), item);
  }
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& a, const auto& b) {
    return descending ? less_than(b.first, a.first) : less_than(a.first, b.first);
  });
  std::vector<Value> out;
  out.reserve(keyed.size());
  for (auto& [key, item] : keyed) out.push_back(std::move(item));
  return Value::list(std::move(out));
}

Value dictsort(Renderer&, const Value& operand, CallArgs& args) {
  ArgBinder bound("dictsort", args, {"case_sensitive", "by", "reverse"});
  const bool case_sensitive = truthy(bound[0]);
  int position = 0;
  if (bound.has(1)) {
    const std::string& by = require_string(bound[1], "by");
    if (by == "value") {
      position = 1;
    } else if (by != "key") {
      throw Error(ErrorKind::Runtime, "You can only sort by either \"key\" or \"value\"");
    }
  }
  const bool descending = truthy(bound[2]);
  if (!operand.is_dict()) {
    if (operand.is_undefined()) operand.throw_undefined();
    throw Error(ErrorKind::Value, "dictsort needs a mapping");
  }
  std::vector<Value> pairs;
  for (const auto& [key, value] : operand.as_dict().entries) pairs.push_back(Value::tuple({key, value}));
  std::stable_sort(pairs.begin(), pairs.end(), [&](const Value& a, const Value& b) {
    Value x = a.as_list().items[position];
    Value y = b.as_list().items[position];
    if (!case_sensitive) {
      x = ignore_case(x);
      y = ignore_case(y);
    }
    return descending ? less_than(y, x) : less_than(x, y);
  });
  return Value::list(std::move(pairs));
}

Value items(Renderer&, const Value& operand, CallArgs& args) {
  ArgBinder("items", args, {});
  if (operand.is_undefined()) return generator({});
  if (!operand.is_dict()) throw Error(ErrorKind::Type, "Can only get item pairs from a mapping.");
  std::vector<Value> pairs;
  for (const auto& [key, value] : operand.as_dict().entries) pairs.push_back(Value::tuple({key, value}));
  return generator(std::move(pairs));
}

Value reverse(Renderer& renderer, const Value& operand, CallArgs& args) {
  ArgBinder("reverse", args, {});
  if (operand.is_string()) {
    std::u32string chars = unicode::to_u32(operand.as_string());
    std::reverse(chars.begin(), chars.end());
    return Value::string(unicode::to_utf8(chars));
  }
  const bool is_generator = operand.is_sequence_kind(SequenceKind::Generator);
  if (!operand.is_list() && !operand.is_dict() && !operand.is_undefined()) {
    throw Error(ErrorKind::Runtime, "argument must be iterable");
  }
  std::vector<Value> items = renderer.iterate(operand);
  std::reverse(items.begin(), items.end());
  // reversed(list) is an iterator; a generator has no reversed() and becomes a list.
  return Value::list(std::move(items), is_generator ? SequenceKind::List : SequenceKind::Generator);
}

Value sum(Renderer& renderer, const Value& operand, CallArgs& args) {
  ArgBinder bound("sum", args, {"attribute", "start"});
  std::optional<AttributePath> path;
  if (bound.has(0) && !bound[0].is_none()) path.emplace(bound[0]);
  Value total = bound.has(1) ? bound[1] : Value::integer(0);
  for (const Value& item : renderer.iterate(operand)) {
    total = binary_operation(BinaryOp::Add, total, path ? path->get(renderer, item) : item, renderer.max_size());
  }
  return total;
}

Value min(Renderer& renderer, const Value& operand, CallArgs& args) { return aggregate(renderer, operand, args, false); }
Value max(Renderer& renderer, const Value& operand, CallArgs& args) { return aggregate(renderer, operand, args, true); }

Value batch(Renderer& renderer, const Value& operand, CallArgs& args) {
  ArgBinder bound("batch", args, {"linecount", "fill_with"});
  const int64_t count = require_int(bound[0], "linecount");
  if (count <= 0) throw Error(ErrorKind::Value, "linecount must be positive");
  std::vector<Value> batches;
  std::vector<Value> current;
  for (const Value& item : renderer.iterate(operand)) {
    if (static_cast<int64_t>(current.size()) == count) {
      batches.push_back(Value::list(std::move(current)));
      current.clear();
    }
    current.push_back(item);
  }
  if (!current.empty()) {
    if (bound.has(1) && !bound[1].is_none()) {
      while (static_cast<int64_t>(current.size()) < count) current.push_back(bound[1]);
    }
    batches.push_back(Value::list(std::move(current)));
  }
  return generator(std::move(batches));
}

}  // namespace rackserve::jinja::filters
