// SseStreamWriter: the text of one streaming response, chunk by chunk, for the HTTP thread
// that sends it: the formatter's start, each engine output as it arrives, and, whenever the
// engine has produced nothing for a while (a long prefill, a stalled batch), the formatter's
// keep-alive event. Proxies with idle timeouts (nginx: 60 s by default) then keep the
// connection through a prefill of a long agent context, and a client that left is noticed at
// the next failed write instead of at the first token. Both official SDKs skip these events:
// OpenAI's SSE decoder drops comment lines (": ..."), Anthropic's stream drops "ping" events.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "api/response_formatter.h"
#include "engine/request_stream.h"

namespace rackserve::api {

struct SseStreamOptions {
  std::chrono::milliseconds poll{50};           // longest wait for engine output per chunk
  std::chrono::milliseconds keep_alive{10000};  // silence after which a keep-alive is sent
};

class SseStreamWriter {
 public:
  using Clock = std::chrono::steady_clock;

  SseStreamWriter(std::shared_ptr<RequestStream> stream, std::unique_ptr<ResponseFormatter> formatter,
                  SseStreamOptions options = {}, std::function<Clock::time_point()> now = Clock::now);

  struct Chunk {
    std::string text;   // to send now; empty when there is nothing yet
    bool done = false;  // the response is complete after `text`
  };
  // The next chunk, waiting up to options.poll for engine output. The first call returns the
  // formatter's start at once (with the first output if one is already queued).
  Chunk next();

 private:
  std::shared_ptr<RequestStream> stream_;
  std::unique_ptr<ResponseFormatter> formatter_;
  SseStreamOptions options_;
  std::function<Clock::time_point()> now_;
  bool started_ = false;
  Clock::time_point last_sent_{};
};

}  // namespace rackserve::api
