// Chat completions in OpenAI's shape: "chat.completion" objects and
// "chat.completion.chunk" SSE events (role chunk first, content deltas, a finish chunk
// with an empty delta, then usage and [DONE]). With a reasoning parser, "<think>" text is
// reported as "reasoning_content" beside "content", streamed too. With a tool-call format,
// calls in the answer become "tool_calls" (streamed as OpenAI does: the first delta of a
// call carries its id, type and name, later ones append to its arguments) and a sequence
// that stopped after calling tools finishes with "tool_calls".
#pragma once

#include <map>

#include "api/assistant_output.h"
#include "api/openai_format.h"
#include "api/response_formatter.h"

namespace rackserve::api {

struct ChatFormatOptions {
  int32_t n = 1;
  bool include_usage = false;       // stream_options.include_usage
  bool return_token_ids = false;    // add "token_ids" to every choice (vLLM extension)
  AssistantOutputOptions output;    // reasoning and tool-call parsing of the answer
};

class ChatFormatter : public ResponseFormatter {
 public:
  ChatFormatter(ResponseHeader header, ChatFormatOptions options, TokenText token_text);

  std::string stream_start() override;
  std::string stream_output(const RequestOutput& output) override;
  nlohmann::json full_response(const RequestOutput& merged) override;

 private:
  // One choice's answer parser and the ids given to its tool calls so far.
  struct Choice {
    AssistantOutputParser parser;
    std::vector<std::string> call_ids;
  };

  nlohmann::json chunk(nlohmann::json choices) const;
  Choice& choice(int32_t index);
  // The parsed news of one delta (the whole answer, for a merged output).
  AssistantDelta parse(Choice& choice, const SequenceDelta& sequence);
  // The "tool_calls" entries of a stream delta; assigns ids to new calls.
  nlohmann::json tool_call_deltas(Choice& choice, const std::vector<text::ToolCallDelta>& calls);
  nlohmann::json finish_reason(const Choice& choice, const SequenceDelta& sequence) const;

  ResponseHeader header_;
  ChatFormatOptions options_;
  TokenText token_text_;
  std::map<int32_t, Choice> choices_;  // by choice index
};

}  // namespace rackserve::api
