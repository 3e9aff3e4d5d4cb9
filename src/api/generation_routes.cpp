#include "api/generation_routes.h"

#include <fmt/format.h>

#include "api/api_error.h"
#include "api/chat_formatter.h"
#include "api/chat_request.h"
#include "api/completion_formatter.h"
#include "api/completion_request.h"
#include "api/generation_response.h"
#include "api/reasoning_splitter.h"
#include "core/error.h"

namespace rackserve::api {
namespace {

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

std::vector<int32_t> tokenize(const ApiContext& context, const std::string& text, bool add_special_tokens) {
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

// 400 when the prompt leaves no room, or prompt + max_tokens exceeds the context
// (the OpenAI "context_length_exceeded" case).
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

TcpEndpoints endpoints_of(const httplib::Request& http_request) {
  return {http_request.local_addr, http_request.local_port, http_request.remote_addr, http_request.remote_port};
}

ResponseHeader header_for(const ApiContext& context, const char* id_prefix) {
  return {make_response_id(id_prefix), static_cast<int64_t>(std::time(nullptr)), context.model.name};
}

void handle_chat(const ApiContext& context, const httplib::Request& http_request, httplib::Response& response) {
  ChatRequest chat = parse_chat_request(parse_json_body(http_request), field_limits(context));
  check_model_name(context, chat.model);
  if (!context.model.chat) throw unsupported("messages", "Chat (the model ships no chat template; pass --chat-template)");
  std::string prompt = context.model.chat->render({chat.messages, chat.tools, chat.chat_template_kwargs,
                                                   chat.add_generation_prompt, chat.continue_final_message});
  Request request;
  request.prompt = tokenize(context, prompt, /*add_special_tokens=*/false);  // the template writes BOS itself
  check_context(context, request.prompt.size(), chat.sampling);
  request.params = std::move(chat.sampling);
  ChatFormatOptions options{.n = request.params.n,
                            .include_usage = chat.stream.include_usage,
                            .split_reasoning = context.model.split_reasoning,
                            .starts_in_reasoning = context.model.split_reasoning && prompt_opens_reasoning(prompt),
                            .return_token_ids = chat.stream.return_token_ids};
  auto formatter = std::make_unique<ChatFormatter>(header_for(context, "chatcmpl-"), options, token_text_of(context));
  respond_with_generation(context, std::move(request), std::move(formatter), chat.stream.stream, endpoints_of(http_request),
                          response);
}

void handle_completion(const ApiContext& context, const httplib::Request& http_request, httplib::Response& response) {
  CompletionRequest completion = parse_completion_request(parse_json_body(http_request), field_limits(context));
  check_model_name(context, completion.model);
  Request request;
  request.prompt = completion.prompt_tokens ? std::move(*completion.prompt_tokens)
                                            : tokenize(context, *completion.prompt_text, /*add_special_tokens=*/true);
  check_context(context, request.prompt.size(), completion.sampling);
  request.params = std::move(completion.sampling);
  auto formatter = std::make_unique<CompletionFormatter>(header_for(context, "cmpl-"), completion.stream.include_usage,
                                                         completion.stream.return_token_ids, token_text_of(context));
  respond_with_generation(context, std::move(request), std::move(formatter), completion.stream.stream,
                          endpoints_of(http_request), response);
}

}  // namespace

FieldLimits field_limits(const ApiContext& context) {
  return {.max_n = context.config.max_n,
          .max_logprobs = context.config.max_logprobs,
          .vocab_size = context.model.vocab_size,
          .max_model_len = context.model.max_model_len};
}

void add_generation_routes(httplib::Server& server, const ApiContext& context) {
  server.Post("/v1/chat/completions", [&context](const httplib::Request& request, httplib::Response& response) {
    run_handler(context, request, response, Auth::Required, [&] { handle_chat(context, request, response); });
  });
  server.Post("/v1/completions", [&context](const httplib::Request& request, httplib::Response& response) {
    run_handler(context, request, response, Auth::Required, [&] { handle_completion(context, request, response); });
  });
}

}  // namespace rackserve::api
