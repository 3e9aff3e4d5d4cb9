#include "api/chat_formatter.h"

#include "api/api_error.h"
#include "api/sse.h"

namespace rackserve::api {

ChatFormatter::ChatFormatter(ResponseHeader header, ChatFormatOptions options, TokenText token_text)
    : header_(std::move(header)), options_(std::move(options)), token_text_(std::move(token_text)) {}

ChatFormatter::Choice& ChatFormatter::choice(int32_t index) {
  auto it = choices_.find(index);
  if (it == choices_.end()) it = choices_.emplace(index, Choice{AssistantOutputParser(options_.output), {}}).first;
  return it->second;
}

AssistantDelta ChatFormatter::parse(Choice& choice, const SequenceDelta& sequence) {
  AssistantDelta delta = choice.parser.append(sequence.text);
  if (sequence.finish_reason) {
    AssistantDelta rest = choice.parser.finish();
    delta.reasoning += rest.reasoning;
    delta.content += rest.content;
    for (auto& call : rest.tool_calls) delta.tool_calls.push_back(std::move(call));
  }
  return delta;
}

nlohmann::json ChatFormatter::tool_call_deltas(Choice& choice, const std::vector<text::ToolCallDelta>& calls) {
  nlohmann::json entries = nlohmann::json::array();
  for (const auto& call : calls) {
    nlohmann::json entry = {{"index", call.index}};
    nlohmann::json function = {{"arguments", call.arguments}};
    if (call.index >= static_cast<int32_t>(choice.call_ids.size())) {
      choice.call_ids.push_back(call.id.empty() ? make_response_id("call_") : call.id);
      entry["id"] = choice.call_ids.back();
      entry["type"] = "function";
      function["name"] = call.name;
    }
    entry["function"] = std::move(function);
    entries.push_back(std::move(entry));
  }
  return entries;
}

nlohmann::json ChatFormatter::finish_reason(const Choice& choice, const SequenceDelta& sequence) const {
  if (sequence.finish_reason == FinishReason::Stop && choice.parser.called_tools()) return "tool_calls";
  return finish_reason_json(sequence);
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
    Choice& state = choice(sequence.index);
    AssistantDelta text = parse(state, sequence);
    const bool has_logprobs = !sequence.logprobs.empty();
    if (!text.empty() || has_logprobs) {
      nlohmann::json delta = nlohmann::json::object();
      if (!text.reasoning.empty()) delta["reasoning_content"] = text.reasoning;
      if (!text.content.empty() || (text.reasoning.empty() && text.tool_calls.empty())) delta["content"] = text.content;
      if (!text.tool_calls.empty()) delta["tool_calls"] = tool_call_deltas(state, text.tool_calls);
      nlohmann::json logprobs = nullptr;
      if (has_logprobs) logprobs = {{"content", chat_logprob_entries(sequence.logprobs, token_text_)}};
      events += sse_event(chunk(nlohmann::json::array(
          {{{"index", sequence.index}, {"delta", std::move(delta)}, {"logprobs", std::move(logprobs)}, {"finish_reason", nullptr}}})));
    }
    if (sequence.finish_reason) {
      events += sse_event(chunk(nlohmann::json::array({{{"index", sequence.index},
                                                         {"delta", nlohmann::json::object()},
                                                         {"logprobs", nullptr},
                                                         {"finish_reason", finish_reason(state, sequence)},
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
    Choice state{AssistantOutputParser(options_.output), {}};
    AssistantDelta text = parse(state, sequence);
    nlohmann::json message = {{"role", "assistant"}, {"content", text.content}};
    if (options_.output.split_reasoning)
      message["reasoning_content"] = text.reasoning.empty() ? nlohmann::json(nullptr) : nlohmann::json(text.reasoning);
    if (!text.tool_calls.empty()) {
      // Merge the deltas into whole calls, as a streaming client would.
      nlohmann::json calls = nlohmann::json::array();
      for (nlohmann::json& entry : tool_call_deltas(state, text.tool_calls)) {
        const size_t index = entry["index"].get<size_t>();
        if (index == calls.size()) {
          calls.push_back({{"id", entry["id"]}, {"type", "function"}, {"function", entry["function"]}});
        } else {
          calls[index]["function"]["arguments"] =
              calls[index]["function"]["arguments"].get<std::string>() + entry["function"]["arguments"].get<std::string>();
        }
      }
      message["tool_calls"] = std::move(calls);
      if (text.content.empty()) message["content"] = nullptr;
    }
    nlohmann::json logprobs = nullptr;
    if (!sequence.logprobs.empty()) logprobs = {{"content", chat_logprob_entries(sequence.logprobs, token_text_)}};
    nlohmann::json& choice = choices.emplace_back();
    if (options_.return_token_ids) choice["token_ids"] = sequence.token_ids;
    choice.update({{"index", sequence.index},
                   {"message", std::move(message)},
                   {"logprobs", std::move(logprobs)},
                   {"finish_reason", finish_reason(state, sequence)},
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
