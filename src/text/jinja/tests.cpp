// jinja2's tests (`x is defined`, `x is mapping`, `x is divisibleby 3`, ...) with Python's
// type rules: bool counts as a number, undefined is iterable, dicts are sequences.
#include <cmath>

#include "text/jinja/args.h"
#include "text/jinja/builtins.h"
#include "text/jinja/evaluator.h"
#include "text/jinja/operators.h"
#include "text/jinja/unicode.h"
#include "text/jinja/value_format.h"

namespace rackserve::jinja {

namespace {

#define RS_JINJA_UNARY_TEST(fn, name, expr)                 \
  bool fn(Renderer&, const Value& v, CallArgs& args) {      \
    ArgBinder(name, args, {});                              \
    (void)v;                                                \
    return (expr);                                          \
  }

RS_JINJA_UNARY_TEST(test_defined, "defined", !v.is_undefined())
RS_JINJA_UNARY_TEST(test_undefined, "undefined", v.is_undefined())
RS_JINJA_UNARY_TEST(test_none, "none", v.is_none())
RS_JINJA_UNARY_TEST(test_boolean, "boolean", v.is_bool())
RS_JINJA_UNARY_TEST(test_false, "false", v.is_bool() && !v.as_bool())
RS_JINJA_UNARY_TEST(test_true, "true", v.is_bool() && v.as_bool())
RS_JINJA_UNARY_TEST(test_integer, "integer", v.is_int())
RS_JINJA_UNARY_TEST(test_float, "float", v.is_float())
RS_JINJA_UNARY_TEST(test_number, "number", v.is_number())
RS_JINJA_UNARY_TEST(test_string, "string", v.is_string())
RS_JINJA_UNARY_TEST(test_mapping, "mapping", v.is_dict())
RS_JINJA_UNARY_TEST(test_iterable, "iterable", v.is_undefined() || v.is_string() || v.is_list() || v.is_dict())
RS_JINJA_UNARY_TEST(test_callable, "callable", v.is_callable() || v.is_undefined())
RS_JINJA_UNARY_TEST(test_escaped, "escaped", false)

#undef RS_JINJA_UNARY_TEST

// Sequence: len() and __getitem__ (str, list, tuple, dict and undefined; not generators or views).
bool test_sequence(Renderer&, const Value& v, CallArgs& args) {
  ArgBinder("sequence", args, {});
  if (v.is_undefined() || v.is_string() || v.is_dict()) return true;
  if (!v.is_list()) return false;
  const SequenceKind kind = v.as_list().kind;
  return kind == SequenceKind::List || kind == SequenceKind::Tuple;
}

bool test_lower(Renderer&, const Value& v, CallArgs& args) {
  ArgBinder("lower", args, {});
  const std::string text = to_str(v);
  bool cased = false;
  for (size_t pos = 0; pos < text.size();) {
    const char32_t c = unicode::decode(text, pos);
    if (unicode::is_upper(c)) return false;
    cased = cased || unicode::is_lower(c);
  }
  return cased;
}

bool test_upper(Renderer&, const Value& v, CallArgs& args) {
  ArgBinder("upper", args, {});
  const std::string text = to_str(v);
  bool cased = false;
  for (size_t pos = 0; pos < text.size();) {
    const char32_t c = unicode::decode(text, pos);
    if (unicode::is_lower(c)) return false;
    cased = cased || unicode::is_upper(c);
  }
  return cased;
}

int64_t integer_operand(const Value& v) {
  if (v.is_integral()) return v.as_int();
  if (v.is_undefined()) v.throw_undefined();
  throw Error(ErrorKind::Type, "not all arguments converted during string formatting");
}

bool test_odd(Renderer&, const Value& v, CallArgs& args) {
  ArgBinder("odd", args, {});
  if (v.is_float()) return std::fmod(std::fabs(v.as_float()), 2.0) == 1.0;
  return (integer_operand(v) % 2) != 0;
}

bool test_even(Renderer&, const Value& v, CallArgs& args) {
  ArgBinder("even", args, {});
  if (v.is_float()) return std::fmod(std::fabs(v.as_float()), 2.0) == 0.0;
  return (integer_operand(v) % 2) == 0;
}

bool test_divisibleby(Renderer& renderer, const Value& v, CallArgs& args) {
  ArgBinder bound("divisibleby", args, {"num"});
  const Value remainder = binary_operation(BinaryOp::Mod, v, bound[0], renderer.max_size());
  return equals(remainder, Value::integer(0));
}

bool test_sameas(Renderer&, const Value& v, CallArgs& args) {
  ArgBinder bound("sameas", args, {"other"});
  return v.identical(bound[0]);
}

bool test_in(Renderer&, const Value& v, CallArgs& args) {
  ArgBinder bound("in", args, {"seq"});
  return contains(bound[0], v);
}

bool compare_test(const Value& v, CallArgs& args, const char* name, const char* op) {
  ArgBinder bound(name, args, {"b"});
  const std::string_view o(op);
  if (o == "==") return equals(v, bound[0]);
  if (o == "!=") return !equals(v, bound[0]);
  return compare(v, bound[0], o);
}

bool test_eq(Renderer&, const Value& v, CallArgs& args) { return compare_test(v, args, "eq", "=="); }
bool test_ne(Renderer&, const Value& v, CallArgs& args) { return compare_test(v, args, "ne", "!="); }
bool test_lt(Renderer&, const Value& v, CallArgs& args) { return compare_test(v, args, "lt", "<"); }
bool test_le(Renderer&, const Value& v, CallArgs& args) { return compare_test(v, args, "le", "<="); }
bool test_gt(Renderer&, const Value& v, CallArgs& args) { return compare_test(v, args, "gt", ">"); }
bool test_ge(Renderer&, const Value& v, CallArgs& args) { return compare_test(v, args, "ge", ">="); }

bool test_filter(Renderer&, const Value& v, CallArgs& args) {
  ArgBinder("filter", args, {});
  return v.is_string() && find_filter(v.as_string()) != nullptr;
}

bool test_test(Renderer&, const Value& v, CallArgs& args) {
  ArgBinder("test", args, {});
  return v.is_string() && find_test(v.as_string()) != nullptr;
}

struct TestEntry {
  std::string_view name;
  TestFunction function;
};

constexpr TestEntry kTests[] = {
    {"!=", test_ne},          {"<", test_lt},
    {"<=", test_le},          {"==", test_eq},
    {">", test_gt},           {">=", test_ge},
    {"boolean", test_boolean}, {"callable", test_callable},
    {"defined", test_defined}, {"divisibleby", test_divisibleby},
    {"eq", test_eq},          {"equalto", test_eq},
    {"escaped", test_escaped}, {"even", test_even},
    {"false", test_false},    {"filter", test_filter},
    {"float", test_float},    {"ge", test_ge},
    {"greaterthan", test_gt}, {"gt", test_gt},
    {"in", test_in},          {"integer", test_integer},
    {"iterable", test_iterable}, {"le", test_le},
    {"lessthan", test_lt},    {"lower", test_lower},
    {"lt", test_lt},          {"mapping", test_mapping},
    {"ne", test_ne},          {"none", test_none},
    {"number", test_number},  {"odd", test_odd},
    {"sameas", test_sameas},  {"sequence", test_sequence},
    {"string", test_string},  {"test", test_test},
    {"true", test_true},      {"undefined", test_undefined},
    {"upper", test_upper},
};

}  // namespace

TestFunction find_test(std::string_view name) {
  for (const TestEntry& entry : kTests) {
    if (entry.name == name) return entry.function;
  }
  return nullptr;
}

}  // namespace rackserve::jinja
