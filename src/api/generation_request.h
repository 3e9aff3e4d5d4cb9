// The steps every generation route shares between parsing its body and
// respond_with_generation(): the prompt's tokens, checked against the model's context,
// and what a formatter needs to know about the request (its header, token texts) and its
// client (the TCP endpoints, for disconnect detection). Used by the OpenAI routes
// (generation_routes) and the Anthropic routes (anthropic_routes) alike.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <httplib.h>

#include "api/api_context.h"
#include "api/client_connection.h"
#include "api/openai_format.h"
#include "engine/sampling_params.h"

namespace rackserve::api {

// `text` as token ids the engine accepts. 400 (param "prompt") when the tokenizer fails or
// an id falls outside the model's vocabulary.
std::vector<int32_t> tokenize_prompt(const ApiContext& context, const std::string& text, bool add_special_tokens);

// 400 when the prompt is empty or leaves no room, or prompt + max_tokens exceeds the
// context (code "context_length_exceeded", as OpenAI says it).
void check_context(const ApiContext& context, size_t prompt_length, const SamplingParams& params);

// The text of one token id (specials kept; "" for ids past the tokenizer's vocabulary).
TokenText token_text_of(const ApiContext& context);

// A fresh response id with `id_prefix`, the time now and the served model's name.
ResponseHeader header_for(const ApiContext& context, const char* id_prefix);

TcpEndpoints endpoints_of(const httplib::Request& http_request);

}  // namespace rackserve::api
