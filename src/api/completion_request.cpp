#include "api/completion_request.h"

#include "api/api_error.h"
#include "api/json_fields.h"

namespace rackserve::api {
namespace {

bool is_token_array(const nlohmann::ordered_json& value) {
  if (!value.is_array() || value.empty()) return false;
  for (const auto& item : value)
    if (!item.is_number_integer() && !item.is_number_unsigned()) return false;
  return true;
}

void read_prompt(const nlohmann::ordered_json& prompt, const FieldLimits& limits, CompletionRequest& request) {
  if (prompt.is_string()) {
    request.prompt_text = prompt.get<std::string>();
    if (request.prompt_text->empty()) throw bad_request("prompt", "'prompt' must not be empty");
    return;
  }
  if (is_token_array(prompt)) {
    std::vector<int32_t> tokens;
    for (const auto& item : prompt) {
      int64_t id = item.is_number_unsigned() ? static_cast<int64_t>(std::min<uint64_t>(item.get<uint64_t>(), INT64_MAX))
                                             : item.get<int64_t>();
      if (id < 0 || id >= limits.vocab_size)
        throw bad_request("prompt", "'prompt' token ids must be in [0, {}), got {}", limits.vocab_size, id);
      tokens.push_back(static_cast<int32_t>(id));
    }
    request.prompt_tokens = std::move(tokens);
    return;
  }
  if (prompt.is_array() && prompt.size() == 1 && (prompt[0].is_string() || is_token_array(prompt[0])))
    return read_prompt(prompt[0], limits, request);
  if (prompt.is_array() && prompt.size() > 1 && (prompt[0].is_string() || prompt[0].is_array()))
    throw unsupported("prompt", "a batch of several prompts in one request");
  throw bad_request("prompt", "'prompt' must be a string or an array of token ids, got {}", json_type_name(prompt));
}

}  // namespace

CompletionRequest parse_completion_request(const nlohmann::ordered_json& body, const FieldLimits& limits) {
  JsonFields fields(body);
  CompletionRequest request;
  request.model = fields.string("model");
  const nlohmann::ordered_json* prompt = fields.find("prompt");
  if (prompt == nullptr) throw bad_request("prompt", "'prompt' is required");
  read_prompt(*prompt, limits, request);
  if (fields.boolean("echo").value_or(false)) throw unsupported("echo", "'echo'");
  if (fields.string("suffix")) throw unsupported("suffix", "'suffix'");
  request.stream = read_stream_options(fields);
  request.sampling = read_sampling_params(fields, Endpoint::Completions, limits);
  request.structured = read_structured_outputs(fields);
  return request;
}

}  // namespace rackserve::api
