#include "api/anthropic_formatter.h"

#include "api/api_error.h"
#include "api/sse.h"

namespace rackserve::api {
namespace {

constexpr const char* kAbortedMessage = "The request was aborted before it finished: the server is shutting down";

std::string events_text(const std::vector<nlohmann::json>& events) {
  std::string text;
  for (const auto& event : events) text += sse_named_event(event["type"].get<std::string>(), event);
  return text;
}

std::string error_event(const ApiError& error) {
  return sse_named_event("error", nlohmann::json::parse(error.body(ErrorShape::Anthropic)));
}

}  // namespace

nlohmann::json anthropic_usage(const Usage& usage) {
  return {{"input_tokens", usage.prompt_tokens - usage.cached_prompt_tokens},
          {"cache_creation_input_tokens", 0},
          {"cache_read_input_tokens", usage.cached_prompt_tokens},
          {"output_tokens", usage.completion_tokens}};
}

AnthropicFormatter::AnthropicFormatter(ResponseHeader header, AnthropicFormatOptions options)
    : header_(std::move(header)), options_(std::move(options)), parser_(options_.output) {}

nlohmann::json AnthropicFormatter::stop_reason(const SequenceDelta& sequence) const {
  switch (*sequence.finish_reason) {
    case FinishReason::Stop:
      if (parser_.called_tools()) return "tool_use";
      if (std::holds_alternative<std::string>(sequence.stop_reason)) return "stop_sequence";
      return "end_turn";
    case FinishReason::Length: return options_.max_tokens_shortened ? "model_context_window_exceeded" : "max_tokens";
    case FinishReason::Abort:
    case FinishReason::Error: break;  // reported as an error, not as a stop reason
  }
  return "end_turn";
}

std::vector<nlohmann::json> AnthropicFormatter::add(const SequenceDelta& sequence) {
  std::vector<nlohmann::json> events = blocks_.append(parser_.append(sequence.text));
  if (!sequence.finish_reason) return events;
  std::vector<nlohmann::json> rest = blocks_.append(parser_.finish());
  std::vector<nlohmann::json> stop = blocks_.finish();
  events.insert(events.end(), rest.begin(), rest.end());
  events.insert(events.end(), stop.begin(), stop.end());
  stop_reason_ = stop_reason(sequence);
  if (stop_reason_ == "stop_sequence") stop_sequence_ = std::get<std::string>(sequence.stop_reason);
  aborted_ = *sequence.finish_reason == FinishReason::Abort;
  return events;
}

std::string AnthropicFormatter::keep_alive() { return sse_named_event("ping", {{"type", "ping"}}); }

std::string AnthropicFormatter::stream_start() {
  const nlohmann::json usage = {{"input_tokens", options_.prompt_tokens},
                                {"cache_creation_input_tokens", 0},
                                {"cache_read_input_tokens", 0},
                                {"output_tokens", 0}};
  const nlohmann::json message = {{"id", header_.id},
                                  {"type", "message"},
                                  {"role", "assistant"},
                                  {"model", header_.model},
                                  {"content", nlohmann::json::array()},
                                  {"stop_reason", nullptr},
                                  {"stop_sequence", nullptr},
                                  {"usage", usage}};
  return sse_named_event("message_start", {{"type", "message_start"}, {"message", message}}) +
         sse_named_event("ping", {{"type", "ping"}});
}

std::string AnthropicFormatter::stream_output(const RequestOutput& output) {
  std::string text;
  for (const auto& sequence : output.sequences) text += events_text(add(sequence));
  if (!output.finished) return text;
  if (!output.error.empty()) return text + error_event(ApiError(500, "Generation failed: " + output.error));
  if (aborted_) return text + error_event(ApiError(503, kAbortedMessage));
  const nlohmann::json delta = {{"stop_reason", stop_reason_}, {"stop_sequence", stop_sequence_}};
  text += sse_named_event("message_delta",
                          {{"type", "message_delta"}, {"delta", delta}, {"usage", anthropic_usage(output.usage)}});
  return text + sse_named_event("message_stop", {{"type", "message_stop"}});
}

nlohmann::json AnthropicFormatter::full_response(const RequestOutput& merged) {
  for (const auto& sequence : merged.sequences) add(sequence);
  if (aborted_) throw ApiError(503, kAbortedMessage, {}, "server_stopped");
  return {{"id", header_.id},
          {"type", "message"},
          {"role", "assistant"},
          {"model", header_.model},
          {"content", blocks_.content()},
          {"stop_reason", stop_reason_},
          {"stop_sequence", stop_sequence_},
          {"usage", anthropic_usage(merged.usage)}};
}

}  // namespace rackserve::api
