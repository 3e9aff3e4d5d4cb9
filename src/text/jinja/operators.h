// Python operator semantics for template expressions: arithmetic with int/float promotion,
// floor division and modulo signs, string and list concatenation and repetition, `in`,
// slicing and printf-style `%` formatting. Ints are 64-bit: overflow is an error instead of
// a Python bigint.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "text/jinja/ast.h"
#include "text/jinja/value.h"

namespace rackserve::jinja {

// `max_string` bounds the byte size of strings and item count of lists an operator builds.
Value binary_operation(BinaryOp op, const Value& left, const Value& right, size_t max_string);
Value unary_operation(UnaryOp op, const Value& operand);
// Python `item in container`.
bool contains(const Value& container, const Value& item);

// Python's slice of a str, list or tuple; nullopt where jinja2's getitem would give undefined
// (not sliceable, non-integer bounds). Throws for a zero step.
std::optional<Value> slice(const Value& sequence, const Value& start, const Value& stop, const Value& step);

// `format % args` (args: a tuple for several values, a dict for %(name)s).
std::string percent_format(const std::string& format, const Value& args);

// Throws ErrorKind::Limit when a built string or list would exceed the limit.
void check_size(size_t size, size_t max_size);

}  // namespace rackserve::jinja
