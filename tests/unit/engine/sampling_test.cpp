// Sampling checks (make_sampling_row + the CPU oracle cpu::sample_row, which Backend::sample
// runs on the CPU) against probabilities computed here from first principles: draws vs the
// exact distribution (chi-square), keep sets of min_p / top_k / top_p vs a plain
// reference, penalties per vLLM / HF semantics, seeds, logprobs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "backend/cpu/sampling_reference.h"
#include "core/error.h"
#include "engine/sampling_row.h"
#include "rackserve/random_hash.h"

namespace rackserve {
namespace {

const std::vector<float> kLogits = {2.0f, 1.5f, 0.3f, -0.7f, 1.1f, -2.0f, 0.9f, 0.0f};

// The engine's path: resolved params + history -> SamplingRow -> the oracle.
struct Sampler {
  SampledRow sample(std::span<const float> logits, const SamplingParams& params, const SamplingHistory& history) {
    return cpu::sample_row(logits, make_sampling_row(params, history));
  }
  std::vector<float> distribution(std::span<const float> logits, const SamplingParams& params,
                                  const SamplingHistory& history) {
    return cpu::sampling_distribution(logits, make_sampling_row(params, history));
  }
};

void apply_penalties(std::span<float> logits, const SamplingParams& params, std::span<const int32_t> prompt,
                     std::span<const int32_t> output) {
  SamplingHistory history;
  history.prompt = prompt;
  history.output = output;
  cpu::apply_penalties(logits, make_sampling_row(params, history));
}

SamplingParams params_with(float temperature, float top_p = 1.0f, int32_t top_k = 0, float min_p = 0.0f) {
  SamplingParams params;
  params.temperature = temperature;
  params.top_p = top_p;
  params.top_k = top_k;
  params.min_p = min_p;
  params.repetition_penalty = 1.0f;
  return params;
}

std::vector<double> softmax(const std::vector<float>& logits, double temperature) {
  std::vector<double> p(logits.size());
  double max = *std::max_element(logits.begin(), logits.end()), sum = 0;
  for (size_t i = 0; i < logits.size(); ++i) sum += p[i] = std::exp((logits[i] - max) / temperature);
  for (double& x : p) x /= sum;
  return p;
}

// The filters written the obvious way: min_p against the max probability, top_k as "at
// least as likely as the k-th", top_p as "the mass of strictly more likely kept tokens
// is below p", each on the renormalised survivors of the previous one.
std::vector<double> reference_distribution(const std::vector<float>& logits, double temperature, double top_p,
                                           int top_k, double min_p) {
  std::vector<double> p = softmax(logits, temperature);
  const double max = *std::max_element(p.begin(), p.end());
  for (double& x : p)
    if (x < min_p * max) x = 0;
  if (top_k > 0) {
    std::vector<double> sorted = p;
    std::sort(sorted.rbegin(), sorted.rend());
    const double kth = sorted[top_k - 1];
    for (double& x : p)
      if (x < kth) x = 0;
  }
  double total = std::accumulate(p.begin(), p.end(), 0.0);
  std::vector<double> kept = p;
  for (size_t i = 0; i < p.size(); ++i) {
    double above = 0;
    for (size_t j = 0; j < p.size(); ++j)
      if (p[j] > p[i] || (p[j] == p[i] && j < i)) above += p[j];
    if (p[i] > 0 && above >= top_p * total && above > 0) kept[i] = 0;
  }
  total = std::accumulate(kept.begin(), kept.end(), 0.0);
  for (double& x : kept) x /= total;
  return kept;
}

std::vector<int32_t> support(const std::vector<double>& p) {
  std::vector<int32_t> tokens;
  for (size_t i = 0; i < p.size(); ++i)
    if (p[i] > 0) tokens.push_back(static_cast<int32_t>(i));
  return tokens;
}

// Chi-square of `draws` seeded draws against `expected`; every expected token must be
// drawn in proportion and no other token at all.
double chi_square(const SamplingParams& params, const std::vector<double>& expected, int draws) {
  Sampler sampler;
  std::vector<int> counts(expected.size(), 0);
  for (int i = 0; i < draws; ++i) {
    SamplingHistory history;
    history.seed = static_cast<uint64_t>(i) * 0x100000001b3ull + 17;
    ++counts[sampler.sample(kLogits, params, history).token];
  }
  double chi = 0;
  for (size_t t = 0; t < expected.size(); ++t) {
    if (expected[t] == 0) {
      EXPECT_EQ(counts[t], 0) << "token " << t << " is outside the keep set";
      continue;
    }
    const double e = expected[t] * draws;
    chi += (counts[t] - e) * (counts[t] - e) / e;
  }
  return chi;
}

// 99.9% quantiles of chi-square for 1..7 degrees of freedom.
double critical_value(size_t degrees) {
  static const double table[] = {0, 10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32};
  return table[degrees];
}

struct FilterCase {
  float temperature, top_p;
  int32_t top_k;
  float min_p;
};

class SamplerDistribution : public ::testing::TestWithParam<FilterCase> {};

TEST_P(SamplerDistribution, DrawsFollowTheExactFilteredDistribution) {
  const FilterCase c = GetParam();
  const std::vector<double> expected = reference_distribution(kLogits, c.temperature, c.top_p, c.top_k, c.min_p);
  const SamplingParams params = params_with(c.temperature, c.top_p, c.top_k, c.min_p);
  Sampler sampler;
  std::vector<float> reported = sampler.distribution(kLogits, params, {});
  for (size_t t = 0; t < expected.size(); ++t) EXPECT_NEAR(reported[t], expected[t], 1e-6) << "token " << t;
  const size_t kept = support(expected).size();
  if (kept > 1) {
    EXPECT_LT(chi_square(params, expected, 100000), critical_value(kept - 1));
  }
}

INSTANTIATE_TEST_SUITE_P(Filters, SamplerDistribution,
                         ::testing::Values(FilterCase{1.0f, 1.0f, 0, 0.0f}, FilterCase{0.7f, 1.0f, 0, 0.0f},
                                           FilterCase{1.5f, 1.0f, 0, 0.0f}, FilterCase{1.0f, 1.0f, 3, 0.0f},
                                           FilterCase{1.0f, 0.8f, 0, 0.0f}, FilterCase{1.0f, 1.0f, 0, 0.2f},
                                           FilterCase{0.9f, 0.9f, 5, 0.05f}, FilterCase{1.0f, 1.0f, -1, 0.0f}));

TEST(SamplerKeepSets, HandComputedCases) {
  // Probabilities 0.5, 0.3, 0.15, 0.05 (logits are their logs).
  const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  Sampler sampler;
  auto kept = [&](SamplingParams params) {
    std::vector<float> p = sampler.distribution(logits, params, {});
    std::vector<int32_t> tokens;
    for (size_t i = 0; i < p.size(); ++i)
      if (p[i] > 0) tokens.push_back(static_cast<int32_t>(i));
    return tokens;
  };
  EXPECT_EQ(kept(params_with(1.0f, 0.75f)), (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(kept(params_with(1.0f, 0.85f)), (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(kept(params_with(1.0f, 0.1f)), (std::vector<int32_t>{0}));  // never empty
  EXPECT_EQ(kept(params_with(1.0f, 1.0f, 2)), (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(kept(params_with(1.0f, 1.0f, 0, 0.35f)), (std::vector<int32_t>{0, 1}));  // 0.15 < 0.35 * 0.5
  EXPECT_EQ(kept(params_with(1.0f, 1.0f, 0, 0.25f)), (std::vector<int32_t>{0, 1, 2}));
  // Tied k-th values all stay (vLLM masks only logits below the k-th).
  const std::vector<float> tied = {1.0f, 0.5f, 0.5f, 0.0f};
  std::vector<float> p = sampler.distribution(tied, params_with(1.0f, 1.0f, 2), {});
  EXPECT_GT(p[2], 0.0f);
  EXPECT_EQ(p[3], 0.0f);
}

TEST(SamplerGreedy, ArgmaxWithLowestIdOnTies) {
  Sampler sampler;
  SamplingParams greedy = params_with(0.0f);
  EXPECT_EQ(sampler.sample(kLogits, greedy, {}).token, 0);
  const std::vector<float> tied = {0.1f, 3.0f, 3.0f};
  EXPECT_EQ(sampler.sample(tied, greedy, {}).token, 1);
  // Greedy ignores top_p / top_k and the seed.
  SamplingParams filtered = params_with(0.0f, 0.1f, 1);
  SamplingHistory history;
  history.seed = 99;
  EXPECT_EQ(sampler.sample(kLogits, filtered, history).token, 0);
  // Banned tokens (stop ids under min_tokens) are never picked.
  const int32_t banned[] = {0};
  history.banned = banned;
  EXPECT_EQ(sampler.sample(kLogits, greedy, history).token, 1);
}

TEST(SamplerInvalidLogits, NanOrPositiveInfinityIsAnErrorNotACrash) {
  Sampler sampler;
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  for (const std::vector<float>& logits : {std::vector<float>{1.0f, inf, 0.0f}, std::vector<float>{nan, 1.0f, 0.0f},
                                           std::vector<float>{1.0f, 0.0f, nan}}) {
    for (float temperature : {0.0f, 1.0f}) {
      EXPECT_THROW(sampler.sample(logits, params_with(temperature, 0.9f, 2), {}), Error) << "temperature " << temperature;
      EXPECT_THROW(sampler.distribution(logits, params_with(temperature), {}), Error);
    }
  }
  // -inf is a masked token, not an error.
  const std::vector<float> masked = {1.0f, -inf, 0.0f};
  for (uint64_t seed = 0; seed < 32; ++seed) {
    SamplingHistory history;
    history.seed = seed;
    EXPECT_NE(sampler.sample(masked, params_with(1.0f), history).token, 1);
  }
}

// The engine's incremental tally gives the same penalty list as sorting the history, step
// after step, for every combination of penalties.
TEST(SamplingRowFromParams, IncrementalTallyEqualsTheSortedHistory) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> token(0, 40);
  for (int combination = 0; combination < 4; ++combination) {
    SamplingParams params = params_with(1.0f);
    if (combination & 1) params.repetition_penalty = 1.3f;
    if (combination & 2) {
      params.frequency_penalty = 0.5f;
      params.presence_penalty = 0.25f;
    }
    std::vector<int32_t> prompt(30), output;
    for (int32_t& t : prompt) t = token(rng);
    PenaltyTally tally;
    for (int step = 0; step < 60; ++step) {
      SamplingHistory history;
      history.prompt = prompt;
      history.output = output;
      const SamplingRow sorted = make_sampling_row(params, history);
      const SamplingRow incremental = make_sampling_row(params, history, &tally);
      ASSERT_EQ(incremental.penalty_tokens.size(), sorted.penalty_tokens.size()) << "step " << step;
      for (size_t i = 0; i < sorted.penalty_tokens.size(); ++i) {
        EXPECT_EQ(incremental.penalty_tokens[i].token, sorted.penalty_tokens[i].token) << "step " << step;
        EXPECT_EQ(incremental.penalty_tokens[i].output_count, sorted.penalty_tokens[i].output_count) << "step " << step;
        EXPECT_EQ(incremental.penalty_tokens[i].repeated, sorted.penalty_tokens[i].repeated) << "step " << step;
      }
      output.push_back(token(rng));
      if (step % 7 == 6) output.push_back(token(rng));  // sometimes two tokens between rows
    }
    // A history that does not extend the last one is counted afresh.
    output.resize(3);
    SamplingHistory shorter;
    shorter.prompt = prompt;
    shorter.output = output;
    const SamplingRow again = make_sampling_row(params, shorter, &tally);
    const SamplingRow expected = make_sampling_row(params, shorter);
    ASSERT_EQ(again.penalty_tokens.size(), expected.penalty_tokens.size());
    for (size_t i = 0; i < expected.penalty_tokens.size(); ++i)
      EXPECT_EQ(again.penalty_tokens[i].output_count, expected.penalty_tokens[i].output_count);
  }
}

TEST(SamplerPenalties, VllmSemantics) {
  SamplingParams params = params_with(1.0f);
  params.repetition_penalty = 2.0f;
  params.frequency_penalty = 0.5f;
  params.presence_penalty = 0.25f;
  std::vector<float> logits = {1.0f, -1.0f, 2.0f, 4.0f, -3.0f, 0.5f};
  const std::vector<int32_t> prompt = {0, 1};
  const std::vector<int32_t> output = {2, 2, 2, 4, 1};
  apply_penalties(logits, params, prompt, output);
  // Repetition (prompt + output, once per token): positive / 2, negative * 2. Then
  // frequency (0.5 per occurrence in the output) and presence (0.25 once) on the output only.
  EXPECT_FLOAT_EQ(logits[0], 0.5f);                      // prompt only
  EXPECT_FLOAT_EQ(logits[1], -2.0f - 0.5f - 0.25f);      // prompt and output once
  EXPECT_FLOAT_EQ(logits[2], 1.0f - 1.5f - 0.25f);       // output three times
  EXPECT_FLOAT_EQ(logits[3], 4.0f);                      // never seen
  EXPECT_FLOAT_EQ(logits[4], -6.0f - 0.5f - 0.25f);      // output once
  EXPECT_FLOAT_EQ(logits[5], 0.5f);
}

TEST(SamplerPenalties, NegativePenaltiesEncourageRepeats) {
  SamplingParams params = params_with(0.0f);
  params.presence_penalty = -2.0f;
  Sampler sampler;
  const std::vector<int32_t> output = {6};
  SamplingHistory history;
  history.output = output;
  EXPECT_EQ(sampler.sample(kLogits, params, history).token, 6);  // 0.9 + 2 beats 2.0
}

TEST(SamplerSeed, DrawDependsOnlyOnSeedAndPosition) {
  Sampler a, b;
  SamplingParams params = params_with(1.0f);
  std::vector<int32_t> output = {1, 2, 3};
  SamplingHistory history;
  history.seed = 42;
  history.output = output;
  const int32_t first = a.sample(kLogits, params, history).token;
  for (int i = 0; i < 5; ++i) EXPECT_EQ(b.sample(kLogits, params, history).token, first);
  int differs = 0;
  for (uint64_t seed = 0; seed < 50; ++seed) {
    history.seed = seed;
    differs += a.sample(kLogits, params, history).token != first;
  }
  EXPECT_GT(differs, 10);
  for (int i = 0; i < 1000; ++i) {
    const double u = sampling_uniform(7, i);
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
  }
}

TEST(SamplerLogprobs, RawLogSoftmaxAndTopK) {
  Sampler sampler;
  SamplingParams params = params_with(0.5f, 0.5f);  // filters do not change the logprobs
  params.logprobs = 3;
  SamplingHistory history;
  history.seed = 3;
  SampledRow sampled = sampler.sample(kLogits, params, history);
  const std::vector<double> p = softmax(kLogits, 1.0);
  EXPECT_NEAR(sampled.logprob, std::log(p[sampled.token]), 1e-5);
  ASSERT_EQ(sampled.top_logprobs.size(), 3u);
  const int32_t order[] = {0, 1, 4};
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(sampled.top_logprobs[i].token, order[i]);
    EXPECT_NEAR(sampled.top_logprobs[i].logprob, std::log(p[order[i]]), 1e-5);
  }
  params.logprobs = 0;
  EXPECT_TRUE(sampler.sample(kLogits, params, history).top_logprobs.empty());
  params.logprobs.reset();
  EXPECT_EQ(make_sampling_row(params, history).logprobs, -1);
}

TEST(SamplingRowFromParams, PenaltyTokensAreDistinctWithOutputCounts) {
  SamplingParams params = params_with(0.8f, 0.9f, 7, 0.1f);
  params.repetition_penalty = 1.3f;
  params.frequency_penalty = 0.5f;
  params.logprobs = 2;
  const std::vector<int32_t> prompt = {5, 3, 5}, output = {3, 9, 3}, banned = {4, 4, 1};
  SamplingHistory history{prompt, output, banned, 77};
  const SamplingRow row = make_sampling_row(params, history);
  EXPECT_FLOAT_EQ(row.temperature, 0.8f);
  EXPECT_EQ(row.top_k, 7);
  EXPECT_EQ(row.seed, 77u);
  EXPECT_EQ(row.counter, 3u);  // tokens generated so far
  EXPECT_EQ(row.logprobs, 2);
  EXPECT_EQ(row.banned, (std::vector<int32_t>{1, 4}));
  ASSERT_EQ(row.penalty_tokens.size(), 3u);  // 3, 5, 9 in token order
  const int32_t tokens[] = {3, 5, 9}, counts[] = {2, 0, 1};
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(row.penalty_tokens[i].token, tokens[i]);
    EXPECT_EQ(row.penalty_tokens[i].output_count, counts[i]);
    EXPECT_TRUE(row.penalty_tokens[i].repeated);
  }
  // Without a repetition penalty the prompt does not matter; without any penalty, no list.
  params.repetition_penalty = 1.0f;
  EXPECT_EQ(make_sampling_row(params, history).penalty_tokens.size(), 2u);
  params.frequency_penalty = 0.0f;
  EXPECT_TRUE(make_sampling_row(params, history).penalty_tokens.empty());
}

}  // namespace
}  // namespace rackserve
