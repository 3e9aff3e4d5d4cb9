#include "api/generation_response.h"

#include <chrono>
#include <optional>

#include "api/api_error.h"
#include "api/sse.h"
#include "api/sse_stream_writer.h"

namespace rackserve::api {
namespace {

// How long a handler waits for engine output before checking its client again.
constexpr std::chrono::milliseconds kPollInterval{50};
// A waiting non-streaming handler reads the kernel's connection table every this many polls.
constexpr int kPollsPerConnectionCheck = 4;

std::shared_ptr<RequestStream> submit_or_throw(Engine& engine, Request request) {
  SubmitResult result = engine.submit(std::move(request));
  switch (result.status) {
    case SubmitResult::Status::Accepted: return result.stream;
    case SubmitResult::Status::Invalid: throw ApiError(400, result.message);
    case SubmitResult::Status::QueueFull:
      throw ApiError(503, "The server is at capacity; retry later (" + result.message + ")", {}, "server_overloaded");
    case SubmitResult::Status::Stopped: throw ApiError(503, "The server is shutting down", {}, "server_stopped");
  }
  throw ApiError(500, "unknown submit status");
}

// State of one streaming response, shared by httplib's provider and releaser callbacks.
struct StreamingState {
  Engine& engine;
  std::shared_ptr<RequestStream> stream;
  SseStreamWriter writer;
};

}  // namespace

void respond_with_generation(const ApiContext& context, Request request, std::unique_ptr<ResponseFormatter> formatter,
                             bool stream, const TcpEndpoints& client, httplib::Response& response) {
  std::shared_ptr<RequestStream> output_stream = submit_or_throw(context.engine, std::move(request));
  if (!stream) {
    // Wait in slices, so a client that hangs up is noticed and its request cancelled
    // instead of generating for nobody.
    std::optional<RequestOutput> merged;
    for (int polls = 1;; ++polls) {
      std::optional<RequestOutput> output = output_stream->next(kPollInterval);
      if (!output) {
        if (polls % kPollsPerConnectionCheck == 0 && peer_closed(client)) {
          context.engine.cancel(output_stream->id());
          response.status = 499;  // client closed request (nginx's code); nobody reads it
          return;
        }
        continue;
      }
      const bool finished = output->finished;
      if (merged)
        merge_output(*merged, std::move(*output));
      else
        merged = std::move(*output);
      if (finished) break;
    }
    if (!merged->error.empty()) throw ApiError(500, "Generation failed: " + merged->error);
    response.set_content(to_json_text(formatter->full_response(*merged)), "application/json");
    return;
  }

  auto state = std::make_shared<StreamingState>(
      StreamingState{context.engine, output_stream,
                     SseStreamWriter(output_stream, std::move(formatter), SseStreamOptions{.poll = kPollInterval})});
  response.set_header("Cache-Control", "no-cache");
  response.set_header("X-Accel-Buffering", "no");
  response.set_chunked_content_provider(
      "text/event-stream",
      [state](size_t /*offset*/, httplib::DataSink& sink) {
        const SseStreamWriter::Chunk chunk = state->writer.next();
        // A write of zero bytes would end httplib's loop: only non-empty text is written.
        if (chunk.text.empty()) return sink.is_writable();
        if (!sink.write(chunk.text.data(), chunk.text.size())) return false;
        if (chunk.done) sink.done();
        return true;
      },
      [state](bool /*success*/) {
        // Runs when httplib is done with the response, whatever the reason: a stream that
        // has not finished lost its client.
        if (!state->stream->finished()) state->engine.cancel(state->stream->id());
      });
}

}  // namespace rackserve::api
