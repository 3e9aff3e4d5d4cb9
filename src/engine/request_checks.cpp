#include "engine/request_checks.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "engine/token_mask.h"

namespace rackserve {

SamplingParams resolve_params(SamplingParams params, const GenerationConfig& generation, int32_t prompt_length,
                              int32_t max_model_len) {
  params = generation.apply(params);
  if (!params.max_tokens) params.max_tokens = std::max(0, max_model_len - prompt_length);
  return params;
}

std::string check_request(const Request& request, const RequestLimits& limits) {
  const SamplingParams& p = request.params;
  const int64_t prompt = static_cast<int64_t>(request.prompt.size());
  if (prompt == 0) return "the prompt is empty";
  for (int32_t token : request.prompt)
    if (token < 0 || token >= limits.vocab_size)
      return fmt::format("prompt token id {} is outside the vocabulary [0, {})", token, limits.vocab_size);
  for (int32_t token : p.stop_token_ids)
    if (token < 0 || token >= limits.vocab_size)
      return fmt::format("stop token id {} is outside the vocabulary [0, {})", token, limits.vocab_size);
  const int64_t max_tokens = p.max_tokens.value_or(0);
  if (max_tokens < 1) {
    if (prompt >= limits.max_model_len)
      return fmt::format("the prompt has {} tokens; this model's maximum context length is {}", prompt,
                         limits.max_model_len);
    return fmt::format("max_tokens must be at least 1, got {}", max_tokens);
  }
  if (prompt + max_tokens > limits.max_model_len)
    return fmt::format(
        "this model's maximum context length is {} tokens; the request asks for {} ({} in the prompt, {} to "
        "generate)",
        limits.max_model_len, prompt + max_tokens, prompt, max_tokens);
  const int64_t pages = (prompt + max_tokens + limits.page_size - 1) / limits.page_size;
  if (pages > limits.num_pages)
    return fmt::format("the request needs {} tokens of KV cache but the cache holds only {}", prompt + max_tokens,
                       int64_t(limits.num_pages) * limits.page_size);
  if (p.n < 1 || p.n > limits.max_n) return fmt::format("n must be between 1 and {}, got {}", limits.max_n, p.n);
  const float temperature = p.temperature.value_or(1.0f);
  if (!(temperature >= 0.0f) || !std::isfinite(temperature))
    return fmt::format("temperature must be a finite number >= 0, got {}", temperature);
  const float top_p = p.top_p.value_or(1.0f);
  if (!(top_p > 0.0f && top_p <= 1.0f)) return fmt::format("top_p must be in (0, 1], got {}", top_p);
  if (p.top_k.value_or(0) < -1) return fmt::format("top_k must be -1, 0 (off) or positive, got {}", *p.top_k);
  const float min_p = p.min_p.value_or(0.0f);
  if (!(min_p >= 0.0f && min_p <= 1.0f)) return fmt::format("min_p must be in [0, 1], got {}", min_p);
  const float repetition = p.repetition_penalty.value_or(1.0f);
  if (!(repetition > 0.0f) || !std::isfinite(repetition))
    return fmt::format("repetition_penalty must be > 0, got {}", repetition);
  if (!(p.presence_penalty >= -2.0f && p.presence_penalty <= 2.0f))
    return fmt::format("presence_penalty must be in [-2, 2], got {}", p.presence_penalty);
  if (!(p.frequency_penalty >= -2.0f && p.frequency_penalty <= 2.0f))
    return fmt::format("frequency_penalty must be in [-2, 2], got {}", p.frequency_penalty);
  if (p.logprobs && (*p.logprobs < 0 || *p.logprobs > limits.max_logprobs))
    return fmt::format("logprobs must be between 0 and {}, got {}", limits.max_logprobs, *p.logprobs);
  if (p.min_tokens < 0 || p.min_tokens > max_tokens)
    return fmt::format("min_tokens must be between 0 and max_tokens ({}), got {}", max_tokens, p.min_tokens);
  if (request.json_mask && request.json_mask->vocab_size() != limits.vocab_size)
    return fmt::format("the JSON token mask covers {} tokens but the model has {}", request.json_mask->vocab_size(),
                       limits.vocab_size);
  if (request.json_schema && !request.json_mask) return "a JSON schema constraint needs the JSON token mask";
  if (request.choices && !request.json_mask) return "a choice constraint needs the token mask";
  if (request.choices && request.json_schema) return "a request takes a JSON schema or choices, not both";
  if (const std::optional<int32_t> start = request.constrain_after_token) {
    if (!request.json_mask) return "a constraint that starts after a token needs the JSON token mask";
    if (*start < 0 || *start >= limits.vocab_size)
      return fmt::format("the constraint's start token id {} is outside the vocabulary [0, {})", *start,
                         limits.vocab_size);
    if (request.json_mask->is_eos(*start) || std::ranges::count(p.stop_token_ids, *start) > 0)
      return fmt::format("the constraint's start token id {} is an EOS or stop token id", *start);
  }
  return {};
}

}  // namespace rackserve
