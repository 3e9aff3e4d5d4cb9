#include "api/sse_stream_writer.h"

namespace rackserve::api {

SseStreamWriter::SseStreamWriter(std::shared_ptr<RequestStream> stream, std::unique_ptr<ResponseFormatter> formatter,
                                 SseStreamOptions options, std::function<Clock::time_point()> now)
    : stream_(std::move(stream)), formatter_(std::move(formatter)), options_(options), now_(std::move(now)) {}

SseStreamWriter::Chunk SseStreamWriter::next() {
  Chunk chunk;
  if (!started_) {
    started_ = true;
    last_sent_ = now_();
    chunk.text = formatter_->stream_start();
    if (std::optional<RequestOutput> output = stream_->try_next()) {
      chunk.text += formatter_->stream_output(*output);
      chunk.done = output->finished;
    }
    return chunk;
  }
  if (std::optional<RequestOutput> output = stream_->next(options_.poll)) {
    chunk.text = formatter_->stream_output(*output);
    chunk.done = output->finished;
  } else if (now_() - last_sent_ >= options_.keep_alive) {
    chunk.text = formatter_->keep_alive();
  }
  if (!chunk.text.empty()) last_sent_ = now_();
  return chunk;
}

}  // namespace rackserve::api
