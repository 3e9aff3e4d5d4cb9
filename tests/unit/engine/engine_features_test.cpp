// Engine behaviour beyond greedy parity, on one tiny fixture model (CPU, fp32): seeds,
// n > 1 through the prefix cache, cancel and dropped streams, stop strings and EOS,
// logprobs, limits and stop().
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <cmath>
#include <random>
#include <thread>

#include "engine/engine.h"
#include "fixture_model.h"

namespace rackserve {
namespace {

using namespace std::chrono_literals;
using testing_support::FixtureModel;

// Token t reads "<t>", so stop strings can span token boundaries.
class AngleDetokenizer : public IncrementalDetokenizer {
 public:
  std::string append(int32_t token) override { return "<" + std::to_string(token) + ">"; }
};
DetokenizerFactory angle_detokenizer() {
  return [](std::span<const int32_t>, bool) { return std::make_unique<AngleDetokenizer>(); };
}
std::string angle_text(const std::vector<int32_t>& tokens) {
  std::string text;
  for (int32_t token : tokens) text += "<" + std::to_string(token) + ">";
  return text;
}

class EngineFeatures : public ::testing::Test {
 protected:
  EngineFeatures() : fixture_("dsv3-plain-noqlora") {}

  std::unique_ptr<Engine> make_engine(EngineConfig config = {}, GenerationConfig generation = {}) {
    auto engine = std::make_unique<Engine>(*fixture_.model, config, generation, angle_detokenizer());
    engine->start();
    return engine;
  }
  std::vector<int32_t> prompt(size_t index) const { return fixture_.prompts.at(index).tokens; }
  static std::shared_ptr<RequestStream> submit(Engine& engine, Request request) {
    SubmitResult result = engine.submit(std::move(request));
    EXPECT_EQ(result.status, SubmitResult::Status::Accepted) << result.message;
    return result.stream;
  }
  static Request sampled(std::vector<int32_t> prompt, uint64_t seed, int32_t max_tokens) {
    Request request;
    request.prompt = std::move(prompt);
    request.params.temperature = 1.0f;
    request.params.top_p = 0.95f;
    request.params.seed = seed;
    request.params.max_tokens = max_tokens;
    request.params.ignore_eos = true;
    return request;
  }
  static void wait_until_idle(Engine& engine) {
    for (int i = 0; i < 500; ++i) {
      EngineStats stats = engine.stats();
      if (stats.running_requests + stats.waiting_requests == 0) return;
      std::this_thread::sleep_for(10ms);
    }
    FAIL() << "the engine did not become idle";
  }

  FixtureModel fixture_;
};

TEST_F(EngineFeatures, SameSeedSameTokensAloneOrBatched) {
  auto engine = make_engine();
  RequestOutput alone = submit(*engine, sampled(prompt(2), 1234, 20))->wait_all();
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (int i = 0; i < 6; ++i) streams.push_back(submit(*engine, sampled(prompt(i % 6), 77 + i, 12)));
  auto target = submit(*engine, sampled(prompt(2), 1234, 20));
  for (int i = 0; i < 6; ++i) streams.push_back(submit(*engine, sampled(prompt(5 - i % 6), 99 + i, 7)));
  RequestOutput batched = target->wait_all();
  EXPECT_EQ(alone.sequences.at(0).token_ids, batched.sequences.at(0).token_ids);
  EXPECT_EQ(alone.sequences.at(0).text, batched.sequences.at(0).text);
  RequestOutput other_seed = submit(*engine, sampled(prompt(2), 4321, 20))->wait_all();
  EXPECT_NE(alone.sequences.at(0).token_ids, other_seed.sequences.at(0).token_ids);
}

TEST_F(EngineFeatures, NSequencesShareThePromptThroughTheCache) {
  auto engine = make_engine();
  const std::vector<int32_t> tokens = prompt(5);  // 70 tokens: one full page of 64
  ASSERT_EQ(tokens.size(), 70u);
  Request request = sampled(tokens, 5, 6);
  request.params.n = 4;
  RequestOutput output = submit(*engine, request)->wait_all();
  ASSERT_EQ(output.sequences.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(output.sequences[i].index, i);
    EXPECT_EQ(output.sequences[i].token_ids.size(), 6u);
  }
  EXPECT_EQ(output.usage.prompt_tokens, 70);
  EXPECT_EQ(output.usage.completion_tokens, 24);
  EngineStats stats = engine->stats();
  // The first sequence computes the prompt; the other three reuse its full page and
  // recompute only the 6 tokens of the partial one.
  EXPECT_EQ(stats.prompt_tokens_computed, 70 + 3 * 6);
  EXPECT_EQ(stats.prefix_cache_hit_tokens, 3 * 64);
  // Differently seeded siblings do not all draw the same continuation.
  bool any_differs = false;
  for (int i = 1; i < 4; ++i) any_differs |= output.sequences[i].token_ids != output.sequences[0].token_ids;
  EXPECT_TRUE(any_differs);
}

TEST_F(EngineFeatures, RepeatedPromptHitsThePrefixCache) {
  auto engine = make_engine();
  submit(*engine, sampled(prompt(5), 1, 2))->wait_all();
  RequestOutput second = submit(*engine, sampled(prompt(5), 1, 2))->wait_all();
  EXPECT_EQ(second.usage.cached_prompt_tokens, 64);
}

// Holds the engine thread inside the detokenization of the second generated token until
// open() is called, so a test can act while the request is certainly still running.
class GatedDetokenizerState {
 public:
  void wait_at_second_token() {
    std::unique_lock lock(mutex_);
    if (++tokens_ == 2) opened_changed_.wait(lock, [&] { return opened_; });
  }
  void open() {
    { std::lock_guard lock(mutex_); opened_ = true; }
    opened_changed_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable opened_changed_;
  int tokens_ = 0;
  bool opened_ = false;
};

TEST_F(EngineFeatures, CancelFinishesWithAbortAndFreesPages) {
  // The cancel must land while the request runs: the engine thread waits inside the second
  // token's detokenization until the cancel is queued (without the gate a fast engine could
  // finish all 50 tokens first).
  auto gate = std::make_shared<GatedDetokenizerState>();
  struct Gated : IncrementalDetokenizer {
    std::shared_ptr<GatedDetokenizerState> gate;
    std::string append(int32_t token) override {
      gate->wait_at_second_token();
      return "<" + std::to_string(token) + ">";
    }
  };
  auto engine = std::make_unique<Engine>(*fixture_.model, EngineConfig{}, GenerationConfig{},
                                         [gate](std::span<const int32_t>, bool) {
                                           auto detokenizer = std::make_unique<Gated>();
                                           detokenizer->gate = gate;
                                           return detokenizer;
                                         });
  struct OpenOnExit {  // destroyed before the engine: a failed assertion cannot leave its thread waiting
    std::shared_ptr<GatedDetokenizerState> gate;
    ~OpenOnExit() { gate->open(); }
  } open_on_exit{gate};
  engine->start();
  auto stream = submit(*engine, sampled(prompt(5), 3, 50));
  auto first = stream->next(10s);
  ASSERT_TRUE(first);
  engine->cancel(stream->id());
  gate->open();
  RequestOutput rest = stream->wait_all();
  ASSERT_EQ(rest.sequences.size(), 1u);
  EXPECT_EQ(rest.sequences[0].finish_reason, FinishReason::Abort);
  EngineStats stats = engine->stats();
  EXPECT_EQ(stats.kv_pages_used, 0);
  EXPECT_EQ(stats.requests_aborted, 1);
  engine->cancel(stream->id());  // finished ids are ignored
  engine->cancel(987654);
}

// Each sequence's detokenizer is made with its request's skip_special_tokens.
TEST_F(EngineFeatures, DetokenizersFollowTheRequestsSkipSpecialTokens) {
  auto seen = std::make_shared<std::vector<bool>>();
  auto mutex = std::make_shared<std::mutex>();
  auto engine = std::make_unique<Engine>(*fixture_.model, EngineConfig{}, GenerationConfig{},
                                         [seen, mutex](std::span<const int32_t>, bool skip_special_tokens) {
                                           std::lock_guard lock(*mutex);
                                           seen->push_back(skip_special_tokens);
                                           return std::make_unique<AngleDetokenizer>();
                                         });
  engine->start();
  Request keeps = sampled(prompt(3), 1, 2);
  keeps.params.skip_special_tokens = false;
  submit(*engine, sampled(prompt(4), 1, 2))->wait_all();
  submit(*engine, keeps)->wait_all();
  std::lock_guard lock(*mutex);
  EXPECT_EQ(*seen, (std::vector<bool>{true, false}));
}

TEST_F(EngineFeatures, DroppedStreamCancelsTheRequest) {
  auto engine = make_engine();
  {
    auto stream = submit(*engine, sampled(prompt(2), 3, 90));
    ASSERT_TRUE(stream->next(10s));
  }
  wait_until_idle(*engine);
  EngineStats stats = engine->stats();
  EXPECT_EQ(stats.kv_pages_used, 0);
  EXPECT_EQ(stats.requests_aborted, 1);
  EXPECT_LT(stats.generation_tokens, 90);
}

TEST_F(EngineFeatures, StopStringAcrossTokensIsNotEmitted) {
  auto engine = make_engine();
  Request greedy;
  greedy.prompt = prompt(3);
  greedy.params.temperature = 0.0f;
  greedy.params.max_tokens = 16;
  greedy.params.ignore_eos = true;
  const std::vector<int32_t>& expected = fixture_.prompts[3].greedy;
  // A stop string made of the end of token 5's text and the start of token 6's.
  const std::string before = angle_text({expected.begin(), expected.begin() + 5});
  const std::string token5 = angle_text({expected[5]}), token6 = angle_text({expected[6]});
  const std::string stop = token5.substr(1) + token6.substr(0, 2);
  ASSERT_EQ(angle_text(expected).find(stop), before.size() + 1) << "stop string must first occur there";
  greedy.params.stop = {stop, "never-there"};
  RequestOutput output = submit(*engine, greedy)->wait_all();
  const SequenceDelta& sequence = output.sequences.at(0);
  EXPECT_EQ(sequence.text, before + "<");
  EXPECT_EQ(sequence.finish_reason, FinishReason::Stop);
  EXPECT_EQ(std::get<std::string>(sequence.stop_reason), stop);
  EXPECT_EQ(sequence.token_ids, std::vector<int32_t>(expected.begin(), expected.begin() + 7));

  greedy.params.include_stop_str_in_output = true;
  RequestOutput included = submit(*engine, greedy)->wait_all();
  EXPECT_EQ(included.sequences.at(0).text, before + "<" + stop);
}

TEST_F(EngineFeatures, EosFromGenerationConfigStopsUnlessIgnored) {
  const std::vector<int32_t>& expected = fixture_.prompts[3].greedy;
  GenerationConfig generation;
  generation.eos_token_ids = {expected[4]};
  generation.temperature = 0.0f;  // a generation_config default the request does not override
  auto engine = make_engine({}, generation);
  Request request;
  request.prompt = prompt(3);
  request.params.max_tokens = 16;
  RequestOutput output = submit(*engine, request)->wait_all();
  const SequenceDelta& sequence = output.sequences.at(0);
  const size_t first_eos = std::find(expected.begin(), expected.end(), expected[4]) - expected.begin();
  EXPECT_EQ(sequence.token_ids, std::vector<int32_t>(expected.begin(), expected.begin() + first_eos + 1));
  EXPECT_EQ(sequence.text, angle_text({expected.begin(), expected.begin() + first_eos}));  // EOS text not emitted
  EXPECT_EQ(sequence.finish_reason, FinishReason::Stop);
  EXPECT_EQ(std::get<int32_t>(sequence.stop_reason), expected[4]);

  request.params.ignore_eos = true;
  EXPECT_EQ(submit(*engine, request)->wait_all().sequences.at(0).token_ids, expected);
  request.params.ignore_eos = false;
  request.params.min_tokens = 16;  // EOS is masked until then
  RequestOutput masked = submit(*engine, request)->wait_all();
  EXPECT_EQ(masked.sequences.at(0).token_ids.size(), 16u);
  EXPECT_EQ(masked.sequences.at(0).finish_reason, FinishReason::Length);
}

TEST_F(EngineFeatures, LogprobsOfTheRawDistribution) {
  auto engine = make_engine();
  Request request = sampled(prompt(1), 11, 5);
  request.params.logprobs = 4;
  RequestOutput output = submit(*engine, request)->wait_all();
  const SequenceDelta& sequence = output.sequences.at(0);
  ASSERT_EQ(sequence.logprobs.size(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    const LogprobEntry& entry = sequence.logprobs[i];
    EXPECT_EQ(entry.sampled.token, sequence.token_ids[i]);
    EXPECT_LE(entry.sampled.logprob, 0.0f);
    ASSERT_EQ(entry.top.size(), 4u);
    for (size_t k = 1; k < 4; ++k) EXPECT_GE(entry.top[k - 1].logprob, entry.top[k].logprob);
    EXPECT_GE(entry.top[0].logprob, entry.sampled.logprob);
  }
  // Greedy: the sampled token is the most likely one.
  request.params.temperature = 0.0f;
  RequestOutput greedy = submit(*engine, request)->wait_all();
  for (const LogprobEntry& entry : greedy.sequences.at(0).logprobs) {
    EXPECT_EQ(entry.top[0].token, entry.sampled.token);
    EXPECT_FLOAT_EQ(entry.top[0].logprob, entry.sampled.logprob);
  }
}

TEST_F(EngineFeatures, StreamingDeltasConcatenateToTheWhole) {
  auto engine = make_engine();
  auto stream = submit(*engine, sampled(prompt(4), 8, 10));
  std::vector<int32_t> tokens;
  std::string text;
  int outputs = 0;
  for (;;) {
    auto output = stream->next(10s);
    ASSERT_TRUE(output);
    ++outputs;
    for (const SequenceDelta& delta : output->sequences) {
      tokens.insert(tokens.end(), delta.token_ids.begin(), delta.token_ids.end());
      text += delta.text;
    }
    EXPECT_EQ(output->usage.completion_tokens, static_cast<int32_t>(tokens.size()));
    if (output->finished) break;
  }
  EXPECT_EQ(outputs, 10);  // one output per decode step
  EXPECT_EQ(text, angle_text(tokens));
  EXPECT_FALSE(stream->next(0ms));
}

TEST_F(EngineFeatures, RejectsWhatItCannotServe) {
  EngineConfig config;
  config.max_queued_requests = 1;
  auto engine = make_engine(config);
  Request too_long = sampled(prompt(5), 1, 100);  // 70 + 100 > 128
  EXPECT_EQ(engine->submit(too_long).status, SubmitResult::Status::Invalid);
  Request bad_token = sampled({1, 2, 100000}, 1, 4);
  EXPECT_EQ(engine->submit(bad_token).status, SubmitResult::Status::Invalid);
  Request empty = sampled({}, 1, 4);
  EXPECT_EQ(engine->submit(empty).status, SubmitResult::Status::Invalid);
  Request bad_top_p = sampled(prompt(1), 1, 4);
  bad_top_p.params.top_p = 0.0f;
  EXPECT_EQ(engine->submit(bad_top_p).status, SubmitResult::Status::Invalid);

  auto held = submit(*engine, sampled(prompt(1), 1, 60));
  EXPECT_EQ(engine->submit(sampled(prompt(1), 1, 4)).status, SubmitResult::Status::QueueFull);
  held->wait_all();
  EXPECT_EQ(engine->submit(sampled(prompt(1), 1, 4)).status, SubmitResult::Status::Accepted);
}

TEST_F(EngineFeatures, DefaultMaxTokensFillsTheContext) {
  auto engine = make_engine();
  Request request = sampled(prompt(5), 2, 0);
  request.params.max_tokens.reset();
  RequestOutput output = submit(*engine, request)->wait_all();
  EXPECT_EQ(output.sequences.at(0).token_ids.size(), 128u - 70u);
  EXPECT_EQ(output.sequences.at(0).finish_reason, FinishReason::Length);
}

TEST_F(EngineFeatures, StopAbortsEveryRequestAndRefusesNewOnes) {
  auto engine = make_engine();
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (int i = 0; i < 8; ++i) streams.push_back(submit(*engine, sampled(prompt(i % 6), i, 50)));
  engine->stop();
  for (auto& stream : streams) {
    RequestOutput output = stream->wait_all();
    EXPECT_TRUE(output.finished);
  }
  EXPECT_EQ(engine->submit(sampled(prompt(1), 1, 4)).status, SubmitResult::Status::Stopped);
  EXPECT_FALSE(engine->running());
}

TEST_F(EngineFeatures, ManyThreadsSubmitConcurrently) {
  EngineConfig config;
  config.max_queued_requests = 256;
  auto engine = make_engine(config);
  std::vector<std::thread> threads;
  std::atomic<int> completed{0};
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 4; ++i) {
        auto stream = submit(*engine, sampled(prompt((t + i) % 6), t * 10 + i, 3 + i));
        RequestOutput output = stream->wait_all();
        if (output.usage.completion_tokens == 3 + i) ++completed;
        if (t % 3 == 0) engine->stats();
      }
    });
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(completed.load(), 32);
  EXPECT_EQ(engine->stats().kv_pages_used, 0);
}

}  // namespace
}  // namespace rackserve
