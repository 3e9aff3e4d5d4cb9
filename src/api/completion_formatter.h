// Text completions in OpenAI's shape: "text_completion" objects, streamed as chunks of
// the same object type, then usage (when requested) and [DONE].
#pragma once

#include <map>

#include "api/openai_format.h"
#include "api/response_formatter.h"

namespace rackserve::api {

class CompletionFormatter : public ResponseFormatter {
 public:
  // return_token_ids: add "token_ids" to every choice (vLLM extension).
  CompletionFormatter(ResponseHeader header, bool include_usage, bool return_token_ids, TokenText token_text);

  std::string stream_start() override { return {}; }
  std::string stream_output(const RequestOutput& output) override;
  nlohmann::json full_response(const RequestOutput& merged) override;

 private:
  nlohmann::json object(nlohmann::json choices) const;

  ResponseHeader header_;
  bool include_usage_;
  bool return_token_ids_;
  TokenText token_text_;
  std::map<int32_t, int64_t> text_offsets_;  // by choice index: bytes of text sent so far
};

}  // namespace rackserve::api
