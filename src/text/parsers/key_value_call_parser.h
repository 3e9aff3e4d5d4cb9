// KeyValueCallParser: the tool-call formats that write each argument as a key and a bare
// text value (GLM-4.5 … 5, MiniMax-M2). Their markup has the same shape:
//
//   content [SECTION_BEGIN]
//     ( CALL_BEGIN name ( KEY_BEGIN key KEY_END [VALUE_BEGIN] value VALUE_END )* CALL_END )*
//   [SECTION_END] content
//
// Each format is a KeyValueCallSyntax. The name runs to the first of `name_end_bytes`
// (which are left for the markup that follows); names and keys lose surrounding
// whitespace and quotes; a value is everything up to VALUE_END, verbatim, typed by
// ArgumentTypes. Whitespace and other text between the pieces of markup is dropped.
//
// The arguments are emitted as one JSON object a pair at a time: `{"k": v` when the first
// pair is complete, `, "k": v` for each next one, `}` (or `{}`) at the call's end. The
// end of a call is CALL_END, or markup that can only follow one (the next CALL_BEGIN,
// SECTION_END). A key without a value is dropped. A value cannot contain VALUE_END.
// At finish(), a call whose name never ended is dropped; a call cut short keeps the pairs
// it completed and stays unclosed (incomplete JSON); held-back text inside markup is
// dropped.
#pragma once

#include <string>
#include <string_view>

#include "text/parsers/argument_types.h"
#include "text/parsers/marker_buffer.h"
#include "text/parsers/tool_call_parser.h"
#include "text/parsers/tool_call_writer.h"

namespace rackserve::text {

struct KeyValueCallSyntax {
  std::string_view section_begin;  // empty: calls stand in the content on their own (GLM)
  std::string_view section_end;
  std::string_view call_begin;
  std::string_view name_end_bytes;  // the name ends before the first of these bytes
  std::string_view key_begin;
  std::string_view key_end;
  std::string_view value_begin;  // empty: the value starts right after KEY_END
  std::string_view value_end;
  std::string_view call_end;
};

class KeyValueCallParser final : public ToolCallParser {
 public:
  KeyValueCallParser(const KeyValueCallSyntax& syntax, ArgumentTypes types)
      : syntax_(syntax), types_(std::move(types)) {}

  ToolCallParse append(std::string_view text) override;
  ToolCallParse finish() override;

 private:
  enum class State { Content, Section, Name, Body, Key, BeforeValue, Value };

  // One step of the state machine; false when it needs more text.
  bool step();
  bool step_content();
  bool step_section();
  bool step_name();
  bool step_body();
  bool step_key();
  bool step_before_value();
  bool step_value();
  // Closes the call in progress; `marker` (0 CALL_END, 1 SECTION_END, 2 CALL_BEGIN) at
  // `position` says what comes next.
  void end_call_at(size_t position, size_t marker);
  // Where the text after a call or a section's end goes.
  State outside_call() const { return syntax_.section_begin.empty() ? State::Content : State::Section; }
  void advance(size_t consumed, State next);

  const KeyValueCallSyntax& syntax_;
  ArgumentTypes types_;
  MarkerBuffer buffer_;
  ToolCallWriter writer_;
  State state_ = State::Content;
  std::string name_;  // of the call in progress
  std::string key_;   // of the pair in progress
  int pairs_ = 0;     // emitted in the call in progress
};

}  // namespace rackserve::text
