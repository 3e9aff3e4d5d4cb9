// JSON builders for the OpenAI response objects shared by chat and text completions:
// usage, logprobs in both endpoint flavours, finish reasons. The per-endpoint assembly
// (choices, deltas, chunks) lives in chat_formatter / completion_formatter.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/request.h"

namespace rackserve::api {

// Text of one token on its own, for logprobs (tokenizer decode of {id}, specials kept).
using TokenText = std::function<std::string(int32_t)>;

// What every response object of one request repeats.
struct ResponseHeader {
  std::string id;       // "chatcmpl-…" / "cmpl-…"
  int64_t created = 0;  // unix seconds
  std::string model;    // the served model name
};

// {"prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details": {"cached_tokens"}}
nlohmann::json usage_json(const Usage& usage);

// "stop", "length", "abort" or "error"; null when the sequence is still running.
nlohmann::json finish_reason_json(const SequenceDelta& delta);
// The stop string or stop token id that ended the sequence (vLLM's "stop_reason"), or null.
nlohmann::json stop_reason_json(const SequenceDelta& delta);

// Chat flavour: [{"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob", "bytes"}]}].
nlohmann::json chat_logprob_entries(std::span<const LogprobEntry> entries, const TokenText& token_text);

// Completions flavour: {"tokens", "token_logprobs", "top_logprobs": [{token: logprob}], "text_offset"}.
// `text_offset` is the completion's length in bytes before the first entry; it advances
// by each token's text length.
nlohmann::json completion_logprobs(std::span<const LogprobEntry> entries, const TokenText& token_text,
                                   int64_t& text_offset);

// Random id with the given prefix ("chatcmpl-", "cmpl-").
std::string make_response_id(const char* prefix);

}  // namespace rackserve::api
