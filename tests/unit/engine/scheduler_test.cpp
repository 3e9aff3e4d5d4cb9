// Scheduler invariants without a model: plans are "run" by committing them and
// appending made-up tokens. Page ownership is checked after every operation.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "engine/scheduler.h"

namespace rackserve {
namespace {

SchedulerConfig config_with(int32_t pages, int32_t page_size, int32_t budget, int32_t max_running = 64) {
  SchedulerConfig config;
  config.num_pages = pages;
  config.page_size = page_size;
  config.max_num_batched_tokens = budget;
  config.max_running_requests = max_running;
  return config;
}

std::vector<int32_t> tokens_from(int32_t count, int32_t seed) {
  std::vector<int32_t> tokens(count);
  for (int32_t i = 0; i < count; ++i) tokens[i] = (seed * 7919 + i * 31) % 1000;
  return tokens;
}

// Runs one step: commits the plan and appends `next(id)` to every sequence that needs it.
template <typename Next>
StepPlan run_step(Scheduler& scheduler, Next next) {
  StepPlan plan = scheduler.schedule();
  scheduler.check_invariants();
  scheduler.commit(plan);
  for (const PlannedSequence& planned : plan.sequences)
    if (planned.needs_logits) scheduler.append_token(planned.sequence_id, next(planned.sequence_id));
  scheduler.check_invariants();
  return plan;
}

TEST(Scheduler, RandomAddFinishCancelPreemptLeaksNoPage) {
  int64_t preemptions = 0;
  for (uint32_t seed = 0; seed < 20; ++seed) {
    std::mt19937 random(seed);
    Scheduler scheduler(config_with(12, 4, 16, 6));
    std::map<SequenceId, int32_t> budget_left;  // tokens each sequence still generates
    SequenceId next_id = 0;
    for (int step = 0; step < 300; ++step) {
      if (random() % 3 == 0) {
        // Shared prefixes are frequent, so the cache and eviction are exercised.
        std::vector<int32_t> prompt = tokens_from(1 + random() % 20, random() % 3);
        prompt.resize(1 + random() % prompt.size());
        budget_left[next_id] = 1 + random() % 12;
        scheduler.add(next_id++, prompt);
      }
      if (!budget_left.empty() && random() % 10 == 0) {  // cancel, waiting or running
        auto it = std::next(budget_left.begin(), random() % budget_left.size());
        scheduler.remove(it->first);
        budget_left.erase(it);
      }
      StepPlan plan = run_step(scheduler, [&](SequenceId) { return static_cast<int32_t>(random() % 1000); });
      EXPECT_LE(plan.num_tokens(), 16);
      for (const PlannedSequence& planned : plan.sequences) {
        if (!planned.needs_logits || --budget_left[planned.sequence_id] > 0) continue;
        scheduler.remove(planned.sequence_id);
        budget_left.erase(planned.sequence_id);
      }
      scheduler.check_invariants();
    }
    preemptions += scheduler.stats().preemptions;
    for (auto& [id, left] : budget_left) scheduler.remove(id);
    scheduler.check_invariants();
    EXPECT_EQ(scheduler.pool().num_in_use(), 0) << "seed " << seed;
    EXPECT_EQ(scheduler.pool().num_available(), 12);
  }
  EXPECT_GT(preemptions, 20) << "the pool is small enough to preempt often";
}

TEST(Scheduler, SharedPrefixIsComputedOnce) {
  Scheduler scheduler(config_with(32, 4, 64));
  const std::vector<int32_t> prompt = tokens_from(18, 1);  // 4 full pages + 2 tokens
  scheduler.add(0, prompt);
  run_step(scheduler, [](SequenceId) { return 5; });
  EXPECT_EQ(scheduler.stats().prompt_tokens_computed, 18);
  scheduler.add(1, prompt);
  std::vector<int32_t> longer = prompt;
  longer.push_back(9);
  scheduler.add(2, longer);
  run_step(scheduler, [](SequenceId) { return 5; });
  // Each newcomer recomputes only past the last full cached page (2 and 3 tokens), plus
  // sequence 0's decode token, which is not a prompt token.
  EXPECT_EQ(scheduler.stats().prompt_tokens_computed, 18 + 2 + 3);
  EXPECT_EQ(scheduler.cached_prompt_tokens(1), 16);
  EXPECT_EQ(scheduler.cached_prompt_tokens(2), 16);
  EXPECT_EQ(scheduler.stats().prefix_hit_tokens, 32);
}

TEST(Scheduler, SiblingsWaitForTheLeadersPrefill) {
  Scheduler scheduler(config_with(32, 4, 8));
  const std::vector<int32_t> prompt = tokens_from(17, 2);
  scheduler.add(0, prompt);
  scheduler.add(1, prompt, SequenceId{0});
  scheduler.add(2, prompt, SequenceId{0});
  int steps = 0;
  while (scheduler.num_waiting() > 0) {
    run_step(scheduler, [](SequenceId) { return 3; });
    ++steps;
  }
  // The leader's 17 prompt tokens in chunks of 8, 8 and 1; its last chunk is committed
  // after that step's admissions, so the siblings join the step after, with 1 token each.
  EXPECT_EQ(steps, 4);
  run_step(scheduler, [](SequenceId) { return 3; });
  EXPECT_EQ(scheduler.stats().prompt_tokens_computed, 17 + 1 + 1);
}

TEST(Scheduler, ChunkedPrefillRespectsTheBudgetAndPutsDecodesFirst) {
  Scheduler scheduler(config_with(64, 4, 10));
  scheduler.add(0, tokens_from(3, 1));
  run_step(scheduler, [](SequenceId) { return 1; });  // sequence 0 is now decoding
  scheduler.add(1, tokens_from(25, 2));
  std::vector<int32_t> chunks;
  for (int i = 0; i < 4; ++i) {
    StepPlan plan = run_step(scheduler, [](SequenceId) { return 1; });
    ASSERT_EQ(plan.sequences.front().sequence_id, 0);
    EXPECT_EQ(plan.sequences.front().token_ids.size(), 1u);
    EXPECT_LE(plan.num_tokens(), 10);
    if (plan.sequences.size() > 1) chunks.push_back(static_cast<int32_t>(plan.sequences[1].token_ids.size()));
  }
  EXPECT_EQ(chunks, (std::vector<int32_t>{9, 9, 7, 1}));  // then sequence 1 decodes too
}

TEST(Scheduler, MaxRunningAndFirstComeFirstServed) {
  Scheduler scheduler(config_with(64, 4, 100, 2));
  for (SequenceId id = 0; id < 5; ++id) scheduler.add(id, tokens_from(5, static_cast<int32_t>(id)));
  StepPlan plan = run_step(scheduler, [](SequenceId) { return 1; });
  ASSERT_EQ(plan.sequences.size(), 2u);
  EXPECT_EQ(plan.sequences[0].sequence_id, 0);
  EXPECT_EQ(plan.sequences[1].sequence_id, 1);
  scheduler.remove(0);
  plan = run_step(scheduler, [](SequenceId) { return 1; });
  EXPECT_EQ(scheduler.num_running(), 2);
  EXPECT_TRUE(scheduler.is_running(2));
  EXPECT_FALSE(scheduler.is_running(3));
}

TEST(Scheduler, AdmissionWaitsForFreePages) {
  Scheduler scheduler(config_with(3, 4, 100));
  scheduler.add(0, tokens_from(8, 1));   // 2 pages
  scheduler.add(1, tokens_from(8, 2));   // 2 more: must wait
  StepPlan plan = run_step(scheduler, [](SequenceId) { return 1; });
  EXPECT_EQ(plan.sequences.size(), 1u);
  EXPECT_EQ(scheduler.num_waiting(), 1);
  scheduler.remove(0);
  plan = run_step(scheduler, [](SequenceId) { return 1; });
  ASSERT_EQ(plan.sequences.size(), 1u);
  EXPECT_EQ(plan.sequences[0].sequence_id, 1);
}

TEST(Scheduler, PreemptedSequenceRecomputesTheSameTokensAndPositions) {
  // Two sequences that outgrow a 4-page pool: the later one is preempted, resumes with
  // its prompt plus the tokens it had generated, and continues where it was.
  Scheduler scheduler(config_with(4, 4, 64));
  scheduler.add(0, tokens_from(6, 1));
  scheduler.add(1, tokens_from(6, 2));
  std::map<SequenceId, std::vector<int32_t>> generated;
  auto next = [&](SequenceId id) {
    int32_t token = static_cast<int32_t>(100 * id + generated[id].size());
    generated[id].push_back(token);
    return token;
  };
  bool saw_recompute = false;
  for (int step = 0; step < 12; ++step) {
    StepPlan plan = run_step(scheduler, next);
    for (const PlannedSequence& planned : plan.sequences) {
      std::vector<int32_t> expected = tokens_from(6, static_cast<int32_t>(planned.sequence_id) + 1);
      expected.insert(expected.end(), generated[planned.sequence_id].begin(), generated[planned.sequence_id].end());
      if (planned.needs_logits) expected.pop_back();  // the token appended just now
      const auto& tokens = planned.token_ids;
      ASSERT_LE(planned.start_position + tokens.size(), expected.size());
      EXPECT_TRUE(std::equal(tokens.begin(), tokens.end(), expected.begin() + planned.start_position));
      // Sequence 1 held 9 tokens (8 computed) when preempted; it resumes after its one
      // cached full page and recomputes the other 5.
      saw_recompute |= planned.sequence_id == 1 && scheduler.stats().preemptions > 0 && planned.start_position == 4 &&
                       planned.token_ids.size() == 5;
    }
    if (scheduler.stats().preemptions > 0 && scheduler.contains(0)) scheduler.remove(0);
  }
  EXPECT_GT(scheduler.stats().preemptions, 0);
  EXPECT_TRUE(saw_recompute);
  EXPECT_EQ(scheduler.tokens(1).size(), 6 + generated[1].size());
  EXPECT_GT(generated[1].size(), 4u);
}

TEST(Scheduler, StepPlanRoundTripsThroughJson) {
  StepPlan plan;
  plan.sequences.push_back({7, {1, 2, 3}, 64, {4, 5}, true});
  nlohmann::json json = plan;
  StepPlan back = json.get<StepPlan>();
  ASSERT_EQ(back.sequences.size(), 1u);
  EXPECT_EQ(back.sequences[0].sequence_id, 7);
  EXPECT_EQ(back.sequences[0].token_ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(back.sequences[0].start_position, 64);
  EXPECT_EQ(back.sequences[0].pages, (std::vector<int32_t>{4, 5}));
  EXPECT_TRUE(back.sequences[0].needs_logits);
}

}  // namespace
}  // namespace rackserve
