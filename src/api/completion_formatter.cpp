#include "api/completion_formatter.h"

#include "api/api_error.h"
#include "api/sse.h"

namespace rackserve::api {

CompletionFormatter::CompletionFormatter(ResponseHeader header, bool include_usage, bool return_token_ids,
                                         TokenText token_text)
    : header_(std::move(header)),
      include_usage_(include_usage),
      return_token_ids_(return_token_ids),
      token_text_(std::move(token_text)) {}

nlohmann::json CompletionFormatter::object(nlohmann::json choices) const {
  return {{"id", header_.id},
          {"object", "text_completion"},
          {"created", header_.created},
          {"model", header_.model},
          {"choices", std::move(choices)}};
}

std::string CompletionFormatter::stream_output(const RequestOutput& output) {
  std::string events;
  for (const auto& sequence : output.sequences) {
    // A token whose text is held back (an incomplete UTF-8 sequence) still has an id to report.
    const bool ids_to_report = return_token_ids_ && !sequence.token_ids.empty();
    if (sequence.text.empty() && sequence.logprobs.empty() && !sequence.finish_reason && !ids_to_report) continue;
    nlohmann::json logprobs = nullptr;
    if (!sequence.logprobs.empty()) logprobs = completion_logprobs(sequence.logprobs, token_text_, text_offsets_[sequence.index]);
    nlohmann::json choice = {{"index", sequence.index},
                             {"text", sequence.text},
                             {"logprobs", std::move(logprobs)},
                             {"finish_reason", finish_reason_json(sequence)}};
    if (sequence.finish_reason) choice["stop_reason"] = stop_reason_json(sequence);
    if (return_token_ids_) choice["token_ids"] = sequence.token_ids;
    nlohmann::json event = object(nlohmann::json::array({std::move(choice)}));
    if (include_usage_) event["usage"] = nullptr;
    events += sse_event(event);
  }
  if (!output.finished) return events;
  if (!output.error.empty()) events += sse_event(nlohmann::json::parse(ApiError(500, output.error).body()));
  if (include_usage_) {
    nlohmann::json usage = object(nlohmann::json::array());
    usage["usage"] = usage_json(output.usage);
    events += sse_event(usage);
  }
  events += kSseDone;
  return events;
}

nlohmann::json CompletionFormatter::full_response(const RequestOutput& merged) {
  nlohmann::json choices = nlohmann::json::array();
  for (const auto& sequence : merged.sequences) {
    int64_t offset = 0;
    nlohmann::json logprobs = nullptr;
    if (!sequence.logprobs.empty()) logprobs = completion_logprobs(sequence.logprobs, token_text_, offset);
    nlohmann::json& choice = choices.emplace_back();
    if (return_token_ids_) choice["token_ids"] = sequence.token_ids;
    choice.update({{"index", sequence.index},
                       {"text", sequence.text},
                       {"logprobs", std::move(logprobs)},
                       {"finish_reason", finish_reason_json(sequence)},
                       {"stop_reason", stop_reason_json(sequence)}});
  }
  nlohmann::json response = object(std::move(choices));
  response["usage"] = usage_json(merged.usage);
  return response;
}

}  // namespace rackserve::api
