// The Engine on the tiny DeepSeek-V3 fixtures (CPU, fp32) against the Hugging Face
// greedy continuations: alone, inside a mixed batch of 16 other requests (sampled,
// penalised, n > 1, chunked prefill), and under preemption by recompute.
#include <gtest/gtest.h>

#include <random>

#include "engine/engine.h"
#include "fixture_model.h"

namespace rackserve {
namespace {

using testing_support::FixtureModel;

Request greedy_request(const std::vector<int32_t>& prompt, int32_t max_tokens) {
  Request request;
  request.prompt = prompt;
  request.params.temperature = 0.0f;
  request.params.max_tokens = max_tokens;
  request.params.ignore_eos = true;  // the references were generated without EOS
  return request;
}

std::shared_ptr<RequestStream> submit(Engine& engine, Request request) {
  SubmitResult result = engine.submit(std::move(request));
  EXPECT_EQ(result.status, SubmitResult::Status::Accepted) << result.message;
  return result.stream;
}

// 16 requests around the one under test: random prompts of 1..100 tokens, sampled with
// every filter and penalty, greedy ones, n = 2, various lengths.
std::vector<Request> mixed_requests(int64_t vocab, uint32_t seed) {
  std::mt19937 random(seed);
  std::vector<Request> requests;
  for (int i = 0; i < 16; ++i) {
    Request request;
    const int length = 1 + static_cast<int>(random() % 100);
    for (int t = 0; t < length; ++t) request.prompt.push_back(static_cast<int32_t>(random() % vocab));
    request.params.max_tokens = 1 + static_cast<int32_t>(random() % 24);
    request.params.ignore_eos = i % 2 == 0;
    switch (i % 4) {
      case 0: request.params.temperature = 0.0f; break;
      case 1: request.params.temperature = 0.8f; request.params.top_p = 0.9f; request.params.top_k = 50; break;
      case 2: request.params.temperature = 1.2f; request.params.min_p = 0.05f; request.params.seed = i;
              request.params.presence_penalty = 0.5f; request.params.frequency_penalty = 0.3f; break;
      case 3: request.params.repetition_penalty = 1.3f; request.params.n = 2; request.params.logprobs = 3; break;
    }
    requests.push_back(std::move(request));
  }
  return requests;
}

class EngineGreedy : public ::testing::TestWithParam<std::string> {};

TEST_P(EngineGreedy, AloneMatchesTransformers) {
  FixtureModel fixture(GetParam());
  Engine engine(*fixture.model, EngineConfig{}, GenerationConfig{});
  engine.start();
  for (const auto& prompt : fixture.prompts) {
    auto stream = submit(engine, greedy_request(prompt.tokens, static_cast<int32_t>(prompt.greedy.size())));
    RequestOutput output = stream->wait_all();
    ASSERT_EQ(output.sequences.size(), 1u);
    EXPECT_EQ(output.sequences[0].token_ids, prompt.greedy) << "prompt of " << prompt.tokens.size() << " tokens";
    EXPECT_EQ(output.sequences[0].finish_reason, FinishReason::Length);
    EXPECT_EQ(output.usage.prompt_tokens, static_cast<int32_t>(prompt.tokens.size()));
    EXPECT_EQ(output.usage.completion_tokens, static_cast<int32_t>(prompt.greedy.size()));
  }
  EngineStats stats = engine.stats();
  EXPECT_EQ(stats.kv_pages_used, 0);
  EXPECT_EQ(stats.requests_finished, static_cast<int64_t>(fixture.prompts.size()));
}

// Every reference prompt submitted in the middle of 16 others, under a token budget
// that forces chunked prefill; `num_pages` small enough forces preemption.
void expect_same_inside_mixed_batch(const std::string& name, int32_t num_pages, bool expect_preemption) {
  FixtureModel fixture(name);
  EngineConfig config;
  config.scheduler.max_num_batched_tokens = 40;
  config.scheduler.num_pages = num_pages;
  config.max_queued_requests = 64;
  Engine engine(*fixture.model, config, GenerationConfig{});
  engine.start();
  uint32_t seed = 1;
  for (const auto& prompt : fixture.prompts) {
    std::vector<Request> others = mixed_requests(fixture.model->config().vocab_size, seed++);
    std::vector<std::shared_ptr<RequestStream>> streams;
    for (size_t i = 0; i < others.size(); ++i) {
      if (i == others.size() / 2)
        streams.push_back(submit(engine, greedy_request(prompt.tokens, static_cast<int32_t>(prompt.greedy.size()))));
      streams.push_back(submit(engine, std::move(others[i])));
    }
    RequestOutput target = streams[others.size() / 2]->wait_all();
    for (auto& stream : streams) {
      if (stream == streams[others.size() / 2]) continue;
      RequestOutput output = stream->wait_all();
      EXPECT_TRUE(output.finished);
      for (const SequenceDelta& sequence : output.sequences)
        EXPECT_NE(sequence.finish_reason, FinishReason::Error) << output.error;
    }
    ASSERT_EQ(target.sequences.size(), 1u);
    EXPECT_EQ(target.sequences[0].token_ids, prompt.greedy) << "prompt of " << prompt.tokens.size() << " tokens";
  }
  EngineStats stats = engine.stats();
  EXPECT_EQ(stats.kv_pages_used, 0) << "pages leaked";
  if (expect_preemption) {
    EXPECT_GT(stats.preemptions, 0);
  }
}

TEST_P(EngineGreedy, SameTokensInsideMixedBatch) { expect_same_inside_mixed_batch(GetParam(), 0, false); }

TEST_P(EngineGreedy, SameTokensUnderPreemption) {
  // 4 pages of 64 tokens for 17 requests of up to 124 tokens: sequences are preempted
  // and recomputed all the time.
  expect_same_inside_mixed_batch(GetParam(), 4, true);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, EngineGreedy, ::testing::ValuesIn(testing_support::fixture_names()),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

}  // namespace
}  // namespace rackserve
