// ToolCallWriter: what every tool-call parser emits, collected into the ToolCallParse of
// one append() or finish(). It applies the rules the formats share:
// - whitespace right before tool-call markup and right after it is dropped, so trailing
//   whitespace of content is held until the next non-whitespace shows whether markup
//   follows;
// - calls are numbered in order, the first delta of a call carries its name and id, and
//   consecutive argument pieces of one call within one result are merged into one delta;
// - a call whose markup names no function (an empty name) is dropped with its arguments
//   and takes no number: a client cannot call a function without a name;
// - content and arguments are emitted in whole UTF-8 characters: the bytes of a character
//   cut by the end of an append are held until the next one (or finish()).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "text/parsers/tool_call_parser.h"

namespace rackserve::text {

// Holds the bytes of a UTF-8 character cut at the end of a piece until the next piece.
class Utf8Joiner {
 public:
  // Appends to `out` everything of held + `text` but an unfinished character at the end.
  void append(std::string_view text, std::string& out);
  // Appends whatever is held (an unfinished character stays unfinished).
  void flush(std::string& out);

 private:
  std::string held_;
};

class ToolCallWriter {
 public:
  void content(std::string_view text);
  // Markup starts: whitespace held at the end of the content is dropped.
  void begin_markup();
  // Markup ended: whitespace at the start of the next content is dropped.
  void end_markup();

  // An empty `name` starts a dropped call: arguments() ignores its text.
  void start_call(std::string id, std::string name);
  void arguments(std::string_view text);  // to the call started last
  void end_call();

  // The end of the answer: releases held whitespace and bytes.
  void finish();
  // What was emitted since the last take().
  ToolCallParse take();

 private:
  void emit_content(std::string_view text);

  ToolCallParse out_;
  std::string held_whitespace_;  // trailing content whitespace, dropped if markup follows
  bool skip_whitespace_ = false;  // right after markup
  Utf8Joiner content_bytes_;
  Utf8Joiner argument_bytes_;
  int32_t calls_ = 0;  // calls started so far
  bool dropping_call_ = false;  // the call in progress has no name
};

}  // namespace rackserve::text
