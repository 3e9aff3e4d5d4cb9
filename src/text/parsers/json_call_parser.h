// JsonCallParser: the tool-call formats whose arguments are one JSON object written by
// the model (DeepSeek-V3 / V3.1, Kimi-K2). Their markup has the same shape:
//
//   content SECTION_BEGIN ( CALL_BEGIN head HEAD_END … {json} … CALL_END )* SECTION_END content
//
// Only the head differs (who writes the name, whether an id comes first), so each format
// is a JsonCallSyntax. The arguments stream as they arrive, from the object's "{" to its
// matching "}": a terminating marker is recognised only outside JSON strings, so markers
// quoted inside an argument value are argument text. Anything else inside the section
// (whitespace, a DeepSeek-V3 code fence) is dropped.
//
// Broken markup: a call marker where the arguments should begin gives the call "{}";
// a marker outside strings before the object closes ends the arguments where they stand
// (incomplete JSON). At finish(), a call whose head never ended is dropped, a call with a
// name keeps what was emitted, and held-back text inside markup is dropped.
#pragma once

#include <string>
#include <string_view>

#include "text/parsers/json_string_scan.h"
#include "text/parsers/marker_buffer.h"
#include "text/parsers/tool_call_parser.h"
#include "text/parsers/tool_call_writer.h"

namespace rackserve::text {

struct CallHead {
  std::string id;  // empty when the format writes none
  std::string name;
};

struct JsonCallSyntax {
  std::string_view section_begin;
  std::string_view section_end;
  std::string_view call_begin;
  std::string_view head_end;  // ends the text the name and id are read from
  std::string_view call_end;
  CallHead (*read_head)(std::string_view head);  // the text between CALL_BEGIN and HEAD_END
};

class JsonCallParser final : public ToolCallParser {
 public:
  explicit JsonCallParser(const JsonCallSyntax& syntax) : syntax_(syntax) {}

  ToolCallParse append(std::string_view text) override;
  ToolCallParse finish() override;

 private:
  enum class State { Content, Section, Head, BeforeArguments, Arguments, AfterArguments };

  // One step of the state machine; false when it needs more text.
  bool step();
  bool step_content();
  bool step_section();
  bool step_head();
  bool step_before_arguments();
  bool step_arguments();
  bool step_after_arguments();
  // A call, section or begin marker at `position` ends the call in progress.
  void end_call_at(size_t position, size_t marker);
  void advance(size_t consumed, State next);

  const JsonCallSyntax& syntax_;
  MarkerBuffer buffer_;
  ToolCallWriter writer_;
  State state_ = State::Content;
  // Where the arguments scanned so far stand in their JSON (scanned bytes are consumed).
  size_t depth_ = 0;
  JsonStringScan string_;
};

}  // namespace rackserve::text
