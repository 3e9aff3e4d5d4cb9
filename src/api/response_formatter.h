// ResponseFormatter: turns the engine's RequestOutputs of one request into what the
// client receives, either as SSE events (streaming) or as one JSON object. One instance
// per request, used by one thread; chat and text completions each implement it.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "engine/request.h"

namespace rackserve::api {

class ResponseFormatter {
 public:
  virtual ~ResponseFormatter() = default;
  // SSE text sent right after the headers, before any output (may be empty).
  virtual std::string stream_start() = 0;
  // SSE text for one output. For the final output (output.finished) it also carries the
  // usage chunk (when requested) and "data: [DONE]"; an engine error becomes an
  // {"error": …} event before [DONE], which the OpenAI SDKs raise as APIError.
  virtual std::string stream_output(const RequestOutput& output) = 0;
  // The whole non-streaming response from the merged final output (RequestStream::wait_all).
  virtual nlohmann::json full_response(const RequestOutput& merged) = 0;
  // SSE text that keeps an idle stream open and that clients ignore (SseStreamWriter): an SSE
  // comment, which OpenAI's SDKs skip.
  virtual std::string keep_alive() { return ": keep-alive\n\n"; }
};

}  // namespace rackserve::api
