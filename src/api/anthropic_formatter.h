// Anthropic Messages responses: one "message" object, or the named SSE events
//   message_start, ping, (content_block_start, content_block_delta…, content_block_stop)
//   per block, message_delta {stop_reason, stop_sequence, usage}, message_stop.
// The answer is read by AssistantOutputParser (as the OpenAI chat formatter reads it) and
// laid out in blocks by AnthropicContentBlocks.
//
// stop_reason: "tool_use" when the answer called a tool and stopped, "stop_sequence" (with
// the matched "stop_sequence") for a stop string, "end_turn" for EOS / stop tokens,
// "max_tokens" at max_tokens, "model_context_window_exceeded" when the route had to shorten
// max_tokens to what the context left and the answer ran into it.
// usage follows Anthropic's split: input_tokens are the prompt tokens the prefix cache did
// not serve, cache_read_input_tokens those it did (their sum is the prompt length).
//
// An engine error mid-stream ends the stream with an "error" event (api_error); so does a
// request the engine aborted while its client still listened (a server shutdown:
// overloaded_error). A non-streaming aborted request throws ApiError 503.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "api/anthropic_content_blocks.h"
#include "api/assistant_output.h"
#include "api/openai_format.h"
#include "api/response_formatter.h"

namespace rackserve::api {

struct AnthropicFormatOptions {
  AssistantOutputOptions output;  // reasoning and tool-call parsing of the answer
  int32_t prompt_tokens = 0;      // for message_start's usage, before the engine reports
  bool max_tokens_shortened = false;  // the route cut max_tokens to the room the context left
};

class AnthropicFormatter : public ResponseFormatter {
 public:
  // `header.id` is the message id ("msg_…").
  AnthropicFormatter(ResponseHeader header, AnthropicFormatOptions options);

  std::string stream_start() override;
  std::string stream_output(const RequestOutput& output) override;
  nlohmann::json full_response(const RequestOutput& merged) override;
  // Anthropic's "ping" event, which its SDKs skip.
  std::string keep_alive() override;

 private:
  // Parses one sequence delta (finishing the parser on its last) into block events.
  std::vector<nlohmann::json> add(const SequenceDelta& sequence);
  nlohmann::json stop_reason(const SequenceDelta& sequence) const;

  ResponseHeader header_;
  AnthropicFormatOptions options_;
  AssistantOutputParser parser_;
  AnthropicContentBlocks blocks_;
  // The finished sequence's stop fields, for message_delta.
  nlohmann::json stop_reason_ = nullptr, stop_sequence_ = nullptr;
  bool aborted_ = false;
};

// Anthropic's usage object from the engine's counts.
nlohmann::json anthropic_usage(const Usage& usage);

}  // namespace rackserve::api
