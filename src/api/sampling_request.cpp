#include "api/sampling_request.h"

#include <limits>

#include "api/api_error.h"

namespace rackserve::api {

SamplingParams read_sampling_params(const JsonFields& fields, Endpoint endpoint, const FieldLimits& limits) {
  SamplingParams params;
  if (auto value = fields.number("temperature", 0.0, 2.0)) params.temperature = static_cast<float>(*value);
  if (auto value = fields.number("top_p", 0.0, 1.0)) {
    if (*value <= 0.0) throw bad_request("top_p", "'top_p' must be in (0, 1], got {}", *value);
    params.top_p = static_cast<float>(*value);
  }
  if (auto value = fields.integer("top_k", -1, std::numeric_limits<int32_t>::max()))
    params.top_k = static_cast<int32_t>(*value);
  if (auto value = fields.number("min_p", 0.0, 1.0)) params.min_p = static_cast<float>(*value);
  if (auto value = fields.number("repetition_penalty", 0.0, 100.0)) {
    if (*value <= 0.0) throw bad_request("repetition_penalty", "'repetition_penalty' must be > 0, got {}", *value);
    params.repetition_penalty = static_cast<float>(*value);
  }
  params.presence_penalty = static_cast<float>(fields.number("presence_penalty", -2.0, 2.0).value_or(0.0));
  params.frequency_penalty = static_cast<float>(fields.number("frequency_penalty", -2.0, 2.0).value_or(0.0));
  if (auto value = fields.integer("seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()))
    params.seed = static_cast<uint64_t>(*value);

  params.stop = fields.string_or_strings("stop", limits.max_stop_strings);
  for (const auto& stop : params.stop)
    if (stop.empty()) throw bad_request("stop", "'stop' strings must not be empty");
  for (int64_t id : fields.integers("stop_token_ids", 0, limits.vocab_size - 1, 1024))
    params.stop_token_ids.push_back(static_cast<int32_t>(id));
  params.include_stop_str_in_output = fields.boolean("include_stop_str_in_output").value_or(false);
  params.ignore_eos = fields.boolean("ignore_eos").value_or(false);
  params.skip_special_tokens = fields.boolean("skip_special_tokens").value_or(true);

  const int64_t max_tokens_limit = limits.max_model_len > 0 ? limits.max_model_len : std::numeric_limits<int32_t>::max();
  std::optional<int64_t> max_tokens;
  if (endpoint == Endpoint::Chat) max_tokens = fields.integer("max_completion_tokens", 1, max_tokens_limit);
  if (!max_tokens) max_tokens = fields.integer("max_tokens", 1, max_tokens_limit);
  if (max_tokens) params.max_tokens = static_cast<int32_t>(*max_tokens);
  params.min_tokens = static_cast<int32_t>(fields.integer("min_tokens", 0, max_tokens_limit).value_or(0));
  if (max_tokens && params.min_tokens > *max_tokens)
    throw bad_request("min_tokens", "'min_tokens' ({}) must not exceed max_tokens ({})", params.min_tokens, *max_tokens);
  params.n = static_cast<int32_t>(fields.integer("n", 1, limits.max_n).value_or(1));
  if (auto best_of = fields.integer("best_of", 1, limits.max_n); best_of && *best_of != params.n)
    throw unsupported("best_of", "'best_of' different from 'n'");

  if (endpoint == Endpoint::Chat) {
    bool logprobs = fields.boolean("logprobs").value_or(false);
    auto top = fields.integer("top_logprobs", 0, limits.max_logprobs);
    if (top && !logprobs) throw bad_request("top_logprobs", "'top_logprobs' requires 'logprobs' to be true");
    if (logprobs) params.logprobs = static_cast<int32_t>(top.value_or(0));
  } else {
    if (auto logprobs = fields.integer("logprobs", 0, limits.max_logprobs))
      params.logprobs = static_cast<int32_t>(*logprobs);
  }
  return params;
}

StreamOptions read_stream_options(const JsonFields& fields) {
  StreamOptions options;
  options.stream = fields.boolean("stream").value_or(false);
  options.return_token_ids = fields.boolean("return_token_ids").value_or(false);
  if (auto stream_options = fields.object("stream_options")) {
    if (!options.stream)
      throw bad_request("stream_options", "'stream_options' is only allowed when 'stream' is true");
    JsonFields nested(*stream_options, "stream_options.");
    options.include_usage = nested.boolean("include_usage").value_or(false);
  }
  return options;
}

}  // namespace rackserve::api
