#include "api/openai_format.h"

#include <cmath>
#include <random>

#include <fmt/format.h>

namespace rackserve::api {
namespace {

// JSON has no -inf; vLLM writes -9999.0 for impossible tokens, so do we.
double finite_logprob(float logprob) { return std::isfinite(logprob) ? static_cast<double>(logprob) : -9999.0; }

nlohmann::json utf8_bytes(const std::string& text) {
  nlohmann::json bytes = nlohmann::json::array();
  for (unsigned char byte : text) bytes.push_back(byte);
  return bytes;
}

}  // namespace

nlohmann::json usage_json(const Usage& usage) {
  return {{"prompt_tokens", usage.prompt_tokens},
          {"completion_tokens", usage.completion_tokens},
          {"total_tokens", usage.prompt_tokens + usage.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", usage.cached_prompt_tokens}}}};
}

nlohmann::json finish_reason_json(const SequenceDelta& delta) {
  if (!delta.finish_reason) return nullptr;
  return to_string(*delta.finish_reason);
}

nlohmann::json stop_reason_json(const SequenceDelta& delta) {
  if (const auto* text = std::get_if<std::string>(&delta.stop_reason)) return *text;
  if (const auto* token = std::get_if<int32_t>(&delta.stop_reason)) return *token;
  return nullptr;
}

nlohmann::json chat_logprob_entries(std::span<const LogprobEntry> entries, const TokenText& token_text) {
  nlohmann::json content = nlohmann::json::array();
  for (const auto& entry : entries) {
    std::string text = token_text(entry.sampled.token);
    nlohmann::json top = nlohmann::json::array();
    for (const auto& candidate : entry.top) {
      std::string candidate_text = token_text(candidate.token);
      top.push_back({{"token", candidate_text},
                     {"logprob", finite_logprob(candidate.logprob)},
                     {"bytes", utf8_bytes(candidate_text)}});
    }
    content.push_back({{"token", text},
                       {"logprob", finite_logprob(entry.sampled.logprob)},
                       {"bytes", utf8_bytes(text)},
                       {"top_logprobs", std::move(top)}});
  }
  return content;
}

nlohmann::json completion_logprobs(std::span<const LogprobEntry> entries, const TokenText& token_text,
                                   int64_t& text_offset) {
  nlohmann::json tokens = nlohmann::json::array(), token_logprobs = nlohmann::json::array(),
                 top_logprobs = nlohmann::json::array(), offsets = nlohmann::json::array();
  for (const auto& entry : entries) {
    std::string text = token_text(entry.sampled.token);
    tokens.push_back(text);
    token_logprobs.push_back(finite_logprob(entry.sampled.logprob));
    nlohmann::json top = nlohmann::json::object();
    for (const auto& candidate : entry.top) top[token_text(candidate.token)] = finite_logprob(candidate.logprob);
    top_logprobs.push_back(std::move(top));
    offsets.push_back(text_offset);
    text_offset += static_cast<int64_t>(text.size());
  }
  return {{"tokens", std::move(tokens)},
          {"token_logprobs", std::move(token_logprobs)},
          {"top_logprobs", std::move(top_logprobs)},
          {"text_offset", std::move(offsets)}};
}

std::string make_response_id(const char* prefix) {
  thread_local std::mt19937_64 generator{std::random_device{}()};
  return fmt::format("{}{:016x}{:016x}", prefix, generator(), generator());
}

}  // namespace rackserve::api
