// ToolCallParser: turns a model's answer text into plain content and OpenAI-style tool
// calls, while the text streams in. Each model family writes tool calls in the format its
// chat template renders an assistant's `tool_calls` in (the format the model was trained
// to produce), e.g. DeepSeek-V3's "<｜tool▁calls▁begin｜>…", Kimi-K2's
// "<|tool_calls_section_begin|>…", GLM's "<tool_call>name<arg_key>…", MiniMax-M2's
// "<minimax:tool_call><invoke name=…>". The reasoning ("<think>…</think>") is split off
// before this parser sees the text.
//
// Contract of every parser:
// - append() may be called with any split of the text (a marker may arrive in pieces, even
//   inside a UTF-8 character); text that could still become markup is held back until it
//   cannot. finish() releases what is held at the end of the answer. Deltas hold whole
//   UTF-8 characters: the bytes of one cut by a split wait for the next append.
// - The concatenation of the content of all results equals the answer without its
//   tool-call markup; whitespace between calls and around the call section is dropped.
// - Calls are numbered 0, 1, … in order. The first delta of a call carries its name (and
//   its id when the format writes one, as Kimi-K2's "functions.name:0"); the arguments of
//   all deltas of a call, concatenated, are one JSON object's text once the call is
//   complete. The result does not depend on how the text was split. Markup that names no
//   function (an empty name) is not a call: it is dropped with its arguments.
// - The name is emitted as soon as it is complete. JSON arguments (DeepSeek, Kimi-K2)
//   stream as they arrive, holding back only what could start a marker; key/value
//   arguments (GLM, MiniMax-M2) are emitted a pair at a time: `{"k": v`, `, "k": v`, `}`.
// - Model output never makes a parser throw; an append costs (amortized) time linear in
//   its text: nothing already searched is searched again.
// - A call cut off by the end of the answer (max_tokens) keeps what was emitted; its
//   arguments may then be incomplete JSON (a key/value call is closed only by markup that
//   ends it). A call whose name was not complete is dropped, and text held back inside
//   markup is dropped; held-back text outside markup is content.
// - Broken markup inside the call section is read as far as it goes: a call that ends
//   before its arguments begin has "{}", a marker outside JSON strings ends JSON arguments
//   that never closed, a key without a value is dropped. Each format's file states its
//   syntax; json_call_parser.h and key_value_call_parser.h state the rest.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace rackserve::text {

enum class ToolCallFormat {
  DeepSeekV3,   // DeepSeek-V3 / R1: function<｜tool▁sep｜>name\n```json\n{…}\n```
  DeepSeekV31,  // DeepSeek-V3.1 / V3.2: name<｜tool▁sep｜>{…}
  KimiK2,       // Kimi-K2 / K2.5: functions.name:index<|tool_call_argument_begin|>{…}
  Glm45,        // GLM-4.5 / 4.6 / 4.7 / 5: <tool_call>name<arg_key>k</arg_key><arg_value>v</arg_value></tool_call>
  MiniMaxM2,    // MiniMax-M2: <minimax:tool_call><invoke name="…"><parameter name="k">v</parameter></invoke>
};

// "deepseek_v3", "deepseek_v31", "kimi_k2", "glm45", "minimax_m2" (the --tool-call-parser names).
std::string_view tool_call_format_name(ToolCallFormat format);
std::optional<ToolCallFormat> tool_call_format_named(std::string_view name);

// The format a chat template renders assistant tool calls in, recognised by its markers
// (Kimi-K2's first template renders no calls; its tool declaration names the family);
// nullopt when the template renders no format we know. DeepSeek-V3 / R1 fence the
// arguments in ```json, V3.1 does not.
std::optional<ToolCallFormat> detect_tool_call_format(std::string_view chat_template_source);

// The form a family's chat templates read an assistant tool call's `function.arguments`
// in. Clients send either: OpenAI's JSON text or Hugging Face's mapping, and a template
// given the other form fails to render.
enum class ToolArgumentsForm {
  AsGiven,   // either renders (Kimi-K2 tests `is string` and writes a mapping with tojson)
  JsonText,  // a string, concatenated into the prompt (DeepSeek-V3 / R1 / V3.1)
  Mapping,   // an object, iterated with .items() (GLM-4.5+, MiniMax-M2)
};
ToolArgumentsForm tool_arguments_form(ToolCallFormat format);

struct ToolCallDelta {
  int32_t index = 0;      // the call's position in this answer
  std::string id;         // first delta only, when the model wrote an id (Kimi-K2)
  std::string name;       // first delta only
  std::string arguments;  // JSON text to append to the call's arguments
};

struct ToolCallParse {
  std::string content;               // answer text outside tool-call markup
  std::vector<ToolCallDelta> calls;  // in order
};

class ToolCallParser {
 public:
  virtual ~ToolCallParser() = default;
  virtual ToolCallParse append(std::string_view text) = 0;
  virtual ToolCallParse finish() = 0;
};

// `tools` is the request's "tools" array (OpenAI shape) or null. Formats that write
// argument values as bare text (GLM, MiniMax-M2) use each parameter's JSON-schema type to
// turn a value into JSON: a "string" parameter stays a string; a parameter of another
// type is parsed as JSON and kept as a string when it does not parse; a value of an
// untyped or unknown parameter (or without tools) becomes JSON when it is a JSON number,
// boolean, null, array or object, else a string (argument_types.h).
std::unique_ptr<ToolCallParser> make_tool_call_parser(ToolCallFormat format, const nlohmann::json& tools);

}  // namespace rackserve::text
