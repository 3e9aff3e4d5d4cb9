// JSON parsing for files we do not trust (safetensors headers, index.json). nlohmann
// silently keeps one of two repeated object keys, checks UTF-8 only inside strings and
// stops at a raw NUL as if the text ended there; this wrapper rejects all three, so no
// two readers of one file can disagree on what it says.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace rackserve {

// Offset of the first byte of `text` that does not start a well-formed UTF-8 sequence
// (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF); nullopt if none.
std::optional<size_t> first_invalid_utf8(std::string_view text);

// Parses `text` as one JSON value. Throws rackserve::Error whose message starts with
// `label` (e.g. "<file>: header") when the text is not UTF-8, not JSON (a raw NUL
// anywhere counts as not JSON), or holds an object that repeats a key at any depth.
// The parser is iterative, so deep nesting cannot overflow the stack; callers must not
// copy or dump() untrusted values, which recurse.
nlohmann::json parse_strict_json(std::string_view text, std::string_view label);

// A short, bounded description of an untrusted value for error messages: numbers and
// short strings verbatim, anything else by its type name (never a recursive dump).
std::string describe_json(const nlohmann::json& value);

}  // namespace rackserve
