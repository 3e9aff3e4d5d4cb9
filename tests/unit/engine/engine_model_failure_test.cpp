// A model that throws ModelFailure (what a tensor-parallel model does once a rank failed)
// stops the engine: every request in flight or queued gets its final output with the
// message, on_model_failure runs once, later submits answer Stopped. A plain step error
// (Error) fails only that step's requests and the engine goes on.
#include <atomic>
#include <chrono>
#include <future>
#include <mutex>

#include <gtest/gtest.h>

#include "engine/engine.h"
#include "fixture_model.h"

namespace rackserve {
namespace {

// Stands in for a fixture model; once armed, every forward throws `Failure`. Until
// arm() is called, forward waits, so the test decides which requests are in flight.
template <typename Failure>
class FailingModel final : public CausalLM {
 public:
  FailingModel(CausalLM& inner, bool armed) : inner_(inner), gate_(released_.get_future().share()) {
    if (armed) arm();
  }
  void arm() { released_.set_value(); }
  const ModelConfig& config() const override { return inner_.config(); }
  Backend& backend() const override { return inner_.backend(); }
  PagedKvCache allocate_kv_cache(int64_t pages, int64_t page_size, std::optional<KvCacheDtype> dtype) const override {
    return inner_.allocate_kv_cache(pages, page_size, dtype);
  }
  Tensor forward(const ForwardBatch&, PagedKvCache&) override {
    gate_.wait();
    throw Failure("tensor-parallel rank 1 failed: injected");
  }

 private:
  CausalLM& inner_;
  std::promise<void> released_;
  std::shared_future<void> gate_;
};

Request greedy(int32_t max_tokens) {
  Request request;
  request.prompt = {1, 17, 42, 99};
  request.params.temperature = 0.0f;
  request.params.max_tokens = max_tokens;
  request.params.ignore_eos = true;
  return request;
}

TEST(EngineModelFailure, StopsTheEngineAndFailsEveryRequest) {
  testing_support::FixtureModel fixture(testing_support::fixture_names().front());
  FailingModel<ModelFailure> model(*fixture.model, /*armed=*/false);
  EngineConfig config;
  config.scheduler.max_running_requests = 4;
  std::mutex mutex;
  std::vector<std::string> reported;
  config.on_model_failure = [&](const std::string& message) {
    std::lock_guard lock(mutex);
    reported.push_back(message);
  };
  Engine engine(model, config, GenerationConfig{});
  engine.start();
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (int i = 0; i < 6; ++i) {
    SubmitResult result = engine.submit(greedy(20));
    ASSERT_EQ(result.status, SubmitResult::Status::Accepted);
    streams.push_back(result.stream);
  }
  model.arm();  // every request is in flight or queued: the first step fails
  for (auto& stream : streams) {
    RequestOutput output = stream->wait_all();
    EXPECT_TRUE(output.finished);
    EXPECT_EQ(output.error, "tensor-parallel rank 1 failed: injected");
  }
  EXPECT_FALSE(engine.running());
  EXPECT_EQ(engine.model_failure(), "tensor-parallel rank 1 failed: injected");
  EXPECT_EQ(engine.submit(greedy(4)).status, SubmitResult::Status::Stopped);
  engine.stop();  // joins the engine thread, which calls on_model_failure before it ends
  std::lock_guard lock(mutex);
  ASSERT_EQ(reported.size(), 1u);
  EXPECT_EQ(reported.front(), "tensor-parallel rank 1 failed: injected");
}

TEST(EngineModelFailure, APlainStepErrorKeepsTheEngineRunning) {
  testing_support::FixtureModel fixture(testing_support::fixture_names().front());
  FailingModel<Error> model(*fixture.model, /*armed=*/true);  // every step fails, but not fatally
  bool called = false;
  EngineConfig config;
  config.on_model_failure = [&](const std::string&) { called = true; };
  Engine engine(model, config, GenerationConfig{});
  engine.start();
  SubmitResult result = engine.submit(greedy(4));
  ASSERT_EQ(result.status, SubmitResult::Status::Accepted);
  EXPECT_EQ(result.stream->wait_all().error, "tensor-parallel rank 1 failed: injected");
  EXPECT_TRUE(engine.running());
  EXPECT_TRUE(engine.model_failure().empty());
  EXPECT_EQ(engine.submit(greedy(4)).status, SubmitResult::Status::Accepted);
  engine.stop();
  EXPECT_FALSE(called);
}

}  // namespace
}  // namespace rackserve
