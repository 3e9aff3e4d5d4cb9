// Chat completions in OpenAI's shape: "chat.completion" objects and
// "chat.completion.chunk" SSE events (role chunk first, content deltas, a finish chunk
// with an empty delta, then usage and [DONE]). With a reasoning parser, "<think>" text is
// reported as "reasoning_content" beside "content", streamed too.
#pragma once

#include <map>

#include "api/openai_format.h"
#include "api/reasoning_splitter.h"
#include "api/response_formatter.h"

namespace rackserve::api {

struct ChatFormatOptions {
  int32_t n = 1;
  bool include_usage = false;       // stream_options.include_usage
  bool split_reasoning = false;     // the reasoning parser is on
  bool starts_in_reasoning = false; // the prompt already opened <think>
  bool return_token_ids = false;    // add "token_ids" to every choice (vLLM extension)
};

class ChatFormatter : public ResponseFormatter {
 public:
  ChatFormatter(ResponseHeader header, ChatFormatOptions options, TokenText token_text);

  std::string stream_start() override;
  std::string stream_output(const RequestOutput& output) override;
  nlohmann::json full_response(const RequestOutput& merged) override;

 private:
  nlohmann::json chunk(nlohmann::json choices) const;
  ReasoningSplitter& splitter(int32_t index);

  ResponseHeader header_;
  ChatFormatOptions options_;
  TokenText token_text_;
  std::map<int32_t, ReasoningSplitter> splitters_;  // by choice index
};

}  // namespace rackserve::api
