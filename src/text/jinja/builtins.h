// The builtin filters, tests, global functions and Python methods templates can call. Filters
// and tests are resolved by name when a template is parsed; each receives the operand and
// the remaining call arguments, bound by name or position as in jinja2's signatures.
#pragma once

#include <string_view>

#include "text/jinja/value.h"

namespace rackserve::jinja {

using FilterFunction = Value (*)(Renderer& renderer, const Value& operand, CallArgs& args);
using TestFunction = bool (*)(Renderer& renderer, const Value& operand, CallArgs& args);

// Null when no filter / test has that name.
FilterFunction find_filter(std::string_view name);
TestFunction find_test(std::string_view name);

// Globals every template sees (range, namespace, dict, raise_exception, strftime_now, ...);
// undefined when unknown.
Value find_global(std::string_view name);

// `object.name` for str, list and dict: a bound method; a plain Value() (undefined without
// details) when Python has no such attribute. Methods that mutate are unsafe in the immutable
// sandbox: they resolve to an undefined value that raises SecurityError when called, unless
// mutation is allowed.
Value find_method(const Value& object, std::string_view name, bool allow_mutation);
// Calls object.name(args) without materializing the bound method; false when not a method.
bool call_method(Renderer& renderer, const Value& object, std::string_view name, CallArgs& args, Value* result);

}  // namespace rackserve::jinja
