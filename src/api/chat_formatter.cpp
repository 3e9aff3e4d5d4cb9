#include "api/chat_formatter.h"

#include "api/api_error.h"
#include "api/sse.h"

namespace rackserve::api {

ChatFormatter::ChatFormatter(ResponseHeader header, ChatFormatOptions options, TokenText token_text)
    : header_(std::move(header)), options_(options), token_text_(std::move(token_text)) {}

ReasoningSplitter& ChatFormatter::splitter(int32_t index) {
  auto it = splitters_.find(index);
  if (it == splitters_.end()) it = splitters_.emplace(index, ReasoningSplitter(options_.starts_in_reasoning)).first;
  return it->second;
}

nlohmann::json ChatFormatter::chunk(nlohmann::json choices) const {
  nlohmann::json event = {{"id", header_.id},
                          {"object", "chat.completion.chunk"},
                          {"created", header_.created},
                          {"model", header_.model},
                          {"choices", std::move(choices)}};
  if (options_.include_usage) event["usage"] = nullptr;  // OpenAI: null on every chunk but the last
  return event;
}

std::string ChatFormatter::stream_start() {
  std::string events;
  for (int32_t index = 0; index < options_.n; ++index) {
    nlohmann::json choice = {{"index", index},
                             {"delta", {{"role", "assistant"}, {"content", ""}}},
                             {"logprobs", nullptr},
                             {"finish_reason", nullptr}};
    events += sse_event(chunk(nlohmann::json::array({std::move(choice)})));
  }
  return events;
}

std::string ChatFormatter::stream_output(const RequestOutput& output) {
  std::string events;
  for (const auto& sequence : output.sequences) {
    ReasoningDelta text;
    if (options_.split_reasoning) {
      ReasoningSplitter& split = splitter(sequence.index);
      text = split.append(sequence.text);
      if (sequence.finish_reason) {
        ReasoningDelta rest = split.finish();
        text.reasoning += rest.reasoning;
        text.content += rest.content;
      }
    } else {
      text.content = sequence.text;
    }
    const bool has_logprobs = !sequence.logprobs.empty();
    if (!text.content.empty() || !text.reasoning.empty() || has_logprobs) {
      nlohmann::json delta = nlohmann::json::object();
      if (!text.reasoning.empty()) delta["reasoning_content"] = text.reasoning;
      if (!text.content.empty() || text.reasoning.empty()) delta["content"] = text.content;
      nlohmann::json logprobs = nullptr;
      if (has_logprobs) logprobs = {{"content", chat_logprob_entries(sequence.logprobs, token_text_)}};
      events += sse_event(chunk(nlohmann::json::array(
          {{{"index", sequence.index}, {"delta", std::move(delta)}, {"logprobs", std::move(logprobs)}, {"finish_reason", nullptr}}})));
    }
    if (sequence.finish_reason) {
      events += sse_event(chunk(nlohmann::json::array({{{"index", sequence.index},
                                                         {"delta", nlohmann::json::object()},
                                                         {"logprobs", nullptr},
                                                         {"finish_reason", finish_reason_json(sequence)},
                                                         {"stop_reason", stop_reason_json(sequence)}}})));
    }
  }
  if (!output.finished) return events;
  if (!output.error.empty()) events += sse_event(nlohmann::json::parse(ApiError(500, output.error).body()));
  if (options_.include_usage) {
    nlohmann::json usage = chunk(nlohmann::json::array());
    usage["usage"] = usage_json(output.usage);
    events += sse_event(usage);
  }
  events += kSseDone;
  return events;
}

nlohmann::json ChatFormatter::full_response(const RequestOutput& merged) {
  nlohmann::json choices = nlohmann::json::array();
  for (const auto& sequence : merged.sequences) {
    ReasoningDelta text;
    if (options_.split_reasoning) {
      ReasoningSplitter split(options_.starts_in_reasoning);
      text = split.append(sequence.text);
      ReasoningDelta rest = split.finish();
      text.reasoning += rest.reasoning;
      text.content += rest.content;
    } else {
      text.content = sequence.text;
    }
    nlohmann::json message = {{"role", "assistant"}, {"content", text.content}};
    if (options_.split_reasoning) message["reasoning_content"] = text.reasoning.empty() ? nlohmann::json(nullptr) : nlohmann::json(text.reasoning);
    nlohmann::json logprobs = nullptr;
    if (!sequence.logprobs.empty()) logprobs = {{"content", chat_logprob_entries(sequence.logprobs, token_text_)}};
    nlohmann::json& choice = choices.emplace_back();
    if (options_.return_token_ids) choice["token_ids"] = sequence.token_ids;
    choice.update({{"index", sequence.index},
                       {"message", std::move(message)},
                       {"logprobs", std::move(logprobs)},
                       {"finish_reason", finish_reason_json(sequence)},
                       {"stop_reason", stop_reason_json(sequence)}});
  }
  return {{"id", header_.id},
          {"object", "chat.completion"},
          {"created", header_.created},
          {"model", header_.model},
          {"choices", std::move(choices)},
          {"usage", usage_json(merged.usage)}};
}

}  // namespace rackserve::api
