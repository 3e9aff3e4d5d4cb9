// Anthropic's Messages API, for Anthropic SDKs and coding agents (ANTHROPIC_BASE_URL):
//   POST /v1/messages               -> a "message" object, or its SSE event stream
//   POST /v1/messages/count_tokens  -> {"input_tokens": N}, the rendered prompt's length
// The body is translated into the chat messages and tools the OpenAI route takes
// (anthropic_request.h) and runs through the same chat template, tokenizer, context check
// and engine; errors answer in Anthropic's shape (api_error.h).
#pragma once

#include <httplib.h>

#include "api/api_context.h"

namespace rackserve::api {

void add_anthropic_routes(httplib::Server& server, const ApiContext& context);

}  // namespace rackserve::api
