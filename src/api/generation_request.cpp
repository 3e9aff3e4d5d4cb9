#include "api/generation_request.h"

#include <ctime>

#include <fmt/format.h>

#include "api/api_error.h"
#include "core/error.h"

namespace rackserve::api {

std::vector<int32_t> tokenize_prompt(const ApiContext& context, const std::string& text, bool add_special_tokens) {
  std::vector<text::TokenId> ids;
  try {
    ids = context.model.tokenizer->encode(text, {.add_special_tokens = add_special_tokens});
  } catch (const Error& error) {
    throw ApiError(400, fmt::format("The prompt cannot be tokenized: {}", error.what()), "prompt");
  }
  std::vector<int32_t> tokens(ids.begin(), ids.end());
  for (int32_t id : tokens)
    if (id < 0 || id >= context.model.vocab_size)
      throw ApiError(400, fmt::format("The prompt contains token id {}, outside the model's vocabulary of {}", id,
                                      context.model.vocab_size), "prompt");
  return tokens;
}

void check_context(const ApiContext& context, size_t prompt_length, const SamplingParams& params) {
  const int64_t limit = context.model.max_model_len;
  if (prompt_length == 0) throw ApiError(400, "The prompt is empty", "prompt");
  if (static_cast<int64_t>(prompt_length) >= limit)
    throw ApiError(400, fmt::format("This model's maximum context length is {} tokens; the prompt has {} tokens", limit,
                                    prompt_length), "messages", "context_length_exceeded");
  if (params.max_tokens && static_cast<int64_t>(prompt_length) + *params.max_tokens > limit)
    throw ApiError(400, fmt::format("This model's maximum context length is {} tokens; the prompt has {} tokens and "
                                    "max_tokens asks for {} more", limit, prompt_length, *params.max_tokens),
                   "max_tokens", "context_length_exceeded");
}

TokenText token_text_of(const ApiContext& context) {
  std::shared_ptr<const text::Tokenizer> tokenizer = context.model.tokenizer;
  return [tokenizer](int32_t id) {
    const text::TokenId ids[] = {static_cast<text::TokenId>(id)};
    try {
      return tokenizer->decode(ids, false);
    } catch (const Error&) {
      return std::string();  // an id outside the tokenizer's vocabulary (padding rows of the model)
    }
  };
}

ResponseHeader header_for(const ApiContext& context, const char* id_prefix) {
  return {make_response_id(id_prefix), static_cast<int64_t>(std::time(nullptr)), context.model.name};
}

TcpEndpoints endpoints_of(const httplib::Request& http_request) {
  return {http_request.local_addr, http_request.local_port, http_request.remote_addr, http_request.remote_port};
}

}  // namespace rackserve::api
