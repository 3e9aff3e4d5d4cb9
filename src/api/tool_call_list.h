// The answer format for forced calls of any offered tool (OpenAI tool_choice "required",
// Anthropic tool_choice "any" / "tool"), as vLLM does it: the answer is decoded under a
// schema of a JSON list of calls, each {"name": <a tool's name>, "arguments": <an object
// under that tool's parameters>}, and read back as tool calls while it streams:
//
//   [{"name": "get_weather", "arguments": {"city": "Paris"}}, {"name": "get_time", ...}]
//
// The calls are told apart by "name", the first property of each (a discriminated anyOf:
// json_schema_compile.h), so the model writes the name first and the arguments follow that
// tool's schema. Not the model family's own call markup: the grammar leaves it no way to
// write any.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/json_schema.h"
#include "text/parsers/json_string_scan.h"
#include "text/parsers/tool_call_parser.h"
#include "text/parsers/tool_call_writer.h"

namespace rackserve::api {

// A function tool's "parameters" as a schema to decode under: absent, null or {} (what some
// clients send for a function without arguments) is an object without properties.
nlohmann::ordered_json tool_parameters_schema(const nlohmann::ordered_json& function);

// The schema of the list for `tools` (OpenAI-shaped function tools, checked, non-empty): at
// least one call, at most one when `one_call`; at most one whitespace byte in a row. Each tool's "$defs" / "definitions" are moved
// to the list's top level under "t<index>." names, its "$ref"s rewritten to match. Throws a
// 400 ApiError naming tools[i].function.parameters when a tool's parameters are outside the
// supported subset (json_schema_compile.h).
std::shared_ptr<const JsonSchema> compile_tool_call_list(const nlohmann::ordered_json& tools, bool one_call);

// Reads a list in that format as it streams: each call's first delta carries its name (as
// soon as the name is complete), then its arguments' text streams unchanged, call i with
// index i. Text outside the calls' names and arguments (brackets, keys, whitespace) yields
// nothing. The text is assumed to be a prefix of a list the schema accepts; anything else
// never makes it throw (a call whose name is never complete is dropped).
class ToolCallListReader {
 public:
  // Argument text is emitted in whole UTF-8 characters: the bytes of one cut by the end of
  // `text` wait for the next append (or finish()).
  std::vector<text::ToolCallDelta> append(std::string_view text);
  // The end of the answer: the bytes still held.
  std::vector<text::ToolCallDelta> finish();

 private:
  void end_string();
  // Adds argument text of the current call to out_ (whole characters; held ones later).
  void emit_arguments(std::string_view text, bool flush);

  int depth_ = 0;             // open brackets and braces, the list's included
  text::JsonStringScan scan_;
  std::string string_;        // the string being read (outside arguments), quotes included
  std::string key_;           // the last key read in the current call (decoded)
  bool expect_key_ = false;   // in a call, between '{' or ',' and the next key
  bool in_arguments_ = false;  // inside the current call's arguments object
  int32_t call_ = -1;          // the index of the current call, once named
  int32_t calls_named_ = 0;
  bool call_open_ = false;     // depth 2 is that call's object (not an array a broken list holds)
  bool named_ = false;         // the current call's name went out
  text::Utf8Joiner argument_bytes_;
  std::vector<text::ToolCallDelta> out_;
};

}  // namespace rackserve::api
