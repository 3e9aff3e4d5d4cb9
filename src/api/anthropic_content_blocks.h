// AnthropicContentBlocks: turns one answer's parsed deltas (AssistantDelta: reasoning,
// content, tool-call deltas) into Anthropic content blocks: "thinking", "text" and
// "tool_use", indexed in the order they begin. One block is open at a time: a delta of
// another kind (or another tool call) stops it and starts the next, so a stream never
// interleaves blocks. The same object yields the stream events and the final content
// array, so the streamed and the non-streamed answer cannot differ.
//
// Thinking blocks carry an EMPTY "signature": there is nothing to verify it against (our
// models do not sign their reasoning), the field is required by the SDKs, and this server
// ignores the signature of thinking blocks sent back in the history. Streams still send
// the signature_delta Anthropic sends before a thinking block stops.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/assistant_output.h"

namespace rackserve::api {

class AnthropicContentBlocks {
 public:
  // The content_block_start / content_block_delta / content_block_stop events (each a JSON
  // object whose "type" is the SSE event name) that `delta` adds. Tool-call ids the model
  // did not write are made up as "toolu_…".
  std::vector<nlohmann::json> append(const AssistantDelta& delta);
  // Stops the open block, if any (the end of the answer).
  std::vector<nlohmann::json> finish();

  // The blocks so far, as a response's "content": tool_use "input" is the parsed
  // arguments object ({} when the arguments are not a JSON object, e.g. cut off by
  // max_tokens, or nest deeper than 256 levels).
  nlohmann::json content() const;

 private:
  enum class Kind { Thinking, Text, ToolUse };
  struct Block {
    Kind kind;
    std::string text;       // thinking or text; a tool call's arguments JSON text
    std::string id, name;   // tool_use
    int32_t call_index = 0;  // tool_use: the parser's call index
  };

  // Stops the open block unless it is of `kind` (and, for tool_use, the same call);
  // starts a new one when needed. Returns the index of the open block. `call` is the
  // tool call for ToolUse, nullptr otherwise.
  size_t open(Kind kind, const text::ToolCallDelta* call, std::vector<nlohmann::json>& events);
  void stop_open(std::vector<nlohmann::json>& events);

  std::vector<Block> blocks_;
  bool open_ = false;  // the last block is still open
};

}  // namespace rackserve::api
