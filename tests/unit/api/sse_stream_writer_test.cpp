// SseStreamWriter: the start first, outputs in order, the final output ends the response, and
// a keep-alive exactly when the engine has been silent for the keep-alive interval since the
// last thing sent (a fake clock; a real RequestStream fed by the test as the engine would).
#include <chrono>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "api/anthropic_formatter.h"
#include "api/sse_stream_writer.h"

namespace rackserve::api {
namespace {

using namespace std::chrono_literals;

// Writes "start", "out:<text>" per output and "ka" as the keep-alive.
class TextFormatter : public ResponseFormatter {
 public:
  std::string stream_start() override { return "start;"; }
  std::string stream_output(const RequestOutput& output) override {
    return "out:" + (output.sequences.empty() ? std::string() : output.sequences.front().text) + ";";
  }
  nlohmann::json full_response(const RequestOutput&) override { return nullptr; }
  std::string keep_alive() override { return "ka;"; }
};

RequestOutput output_with(const std::string& text, bool finished = false) {
  RequestOutput output;
  output.sequences.push_back(SequenceDelta{});
  output.sequences.front().text = text;
  output.finished = finished;
  return output;
}

class SseStreamWriterTest : public ::testing::Test {
 protected:
  SseStreamWriter writer() {
    return SseStreamWriter(stream_, std::make_unique<TextFormatter>(), SseStreamOptions{1ms, 10s}, [this] { return now_; });
  }
  std::shared_ptr<RequestStream> stream_ = std::make_shared<RequestStream>(1);
  SseStreamWriter::Clock::time_point now_{};
};

TEST_F(SseStreamWriterTest, StartsAtOnceThenPassesOutputsOnAndEndsWithTheFinalOne) {
  SseStreamWriter w = writer();
  SseStreamWriter::Chunk chunk = w.next();
  EXPECT_EQ(chunk.text, "start;");
  EXPECT_FALSE(chunk.done);
  EXPECT_EQ(w.next().text, "");  // nothing yet
  stream_->push(output_with("a"));
  stream_->push(output_with("b", true));
  EXPECT_EQ(w.next().text, "out:a;");
  chunk = w.next();
  EXPECT_EQ(chunk.text, "out:b;");
  EXPECT_TRUE(chunk.done);
}

TEST_F(SseStreamWriterTest, AnOutputQueuedBeforeTheStartGoesOutWithIt) {
  stream_->push(output_with("a", true));
  SseStreamWriter w = writer();
  const SseStreamWriter::Chunk chunk = w.next();
  EXPECT_EQ(chunk.text, "start;out:a;");
  EXPECT_TRUE(chunk.done);
}

TEST_F(SseStreamWriterTest, KeepAliveAfterEachIntervalOfSilence) {
  SseStreamWriter w = writer();
  w.next();                       // start at t = 0
  now_ += 9999ms;
  EXPECT_EQ(w.next().text, "");   // silent, but not for the whole interval
  now_ += 1ms;
  EXPECT_EQ(w.next().text, "ka;");
  now_ += 5s;
  EXPECT_EQ(w.next().text, "");   // 5 s since the keep-alive
  stream_->push(output_with("a"));
  EXPECT_EQ(w.next().text, "out:a;");
  now_ += 9s;
  EXPECT_EQ(w.next().text, "");   // 9 s since the output: the output restarted the interval
  now_ += 1s;
  EXPECT_EQ(w.next().text, "ka;");
}

TEST(SseKeepAlive, OpenAiStreamsSendAnSseCommentAndAnthropicStreamsAPingEvent) {
  // An SSE comment (a line starting with ':'), which OpenAI's SSE decoders drop.
  EXPECT_EQ(TextFormatter().ResponseFormatter::keep_alive(), ": keep-alive\n\n");
  // Anthropic's documented ping event, which its SDKs drop.
  AnthropicFormatter anthropic(ResponseHeader{"msg_1", 0, "model"}, AnthropicFormatOptions{});
  EXPECT_EQ(anthropic.keep_alive(), "event: ping\ndata: {\"type\":\"ping\"}\n\n");
}

}  // namespace
}  // namespace rackserve::api
