// CUDA sampling against the CPU reference on fresh random logits and per-row settings each
// run (the seed is printed; step allocations poisoned with NaN), plus what a comparison
// cannot show: all-masked rows throw, runs repeat bit for bit, the counter moves the draw,
// and 20000 draws of one row follow the exact filtered distribution (chi-square).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "core/dtype.h"
#include "core/error.h"
#include "support/test_random.h"

namespace rackserve {
namespace {

using testing::run_seed;

class SamplingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(cuda_device_available()) << "the gpu tests need a CUDA device";
    cpu_ = make_cpu_backend(0);
    gpu_ = make_cuda_backend(CudaBackendOptions{0, /*poison_step_allocations=*/true});
    rng_.seed(run_seed() + ::testing::UnitTest::GetInstance()->random_seed());
    std::printf("seed %llu\n", static_cast<unsigned long long>(run_seed()));
  }

  struct Logits {
    std::vector<float> values;
    Tensor cpu, gpu;
    int64_t rows = 0, vocab = 0;
    std::span<const float> row(int64_t r) const { return {values.data() + r * vocab, static_cast<size_t>(vocab)}; }
  };
  // The same f32 values on both backends.
  Logits upload(std::vector<float> values, int64_t rows, int64_t vocab) {
    Logits logits{std::move(values), {}, {}, rows, vocab};
    Tensor host{logits.values.data(), DType::F32, {rows, vocab}, Device{}};
    logits.cpu = cpu_->upload_persistent(host, DType::F32);
    logits.gpu = gpu_->upload_persistent(host, DType::F32);
    return logits;
  }

  // Row r is one of: normal f32 logits; bf16-rounded ones (many exact ties); a padded
  // vocabulary (the last fifth -inf); a constant row (every weight ties).
  std::vector<float> mixed_logits(int64_t rows, int64_t vocab) {
    std::vector<float> values(rows * vocab);
    for (int64_t r = 0; r < rows; ++r) {
      float* row = values.data() + r * vocab;
      const int kind = static_cast<int>(r % 8);
      std::normal_distribution<float> normal(0.0f, kind == 1 ? 3.0f : 2.0f);
      for (int64_t i = 0; i < vocab; ++i) row[i] = normal(rng_);
      if (kind == 1 || kind == 5)
        for (int64_t i = 0; i < vocab; ++i) row[i] = bf16_to_f32(f32_to_bf16(row[i]));
      if (kind == 3)
        for (int64_t i = vocab - vocab / 5; i < vocab; ++i) row[i] = -INFINITY;
      if (r % 16 == 7) std::fill(row, row + vocab, 0.25f);
    }
    return values;
  }

  // `count` distinct tokens, each drawn with probability 1/2 from the row's most likely 64.
  std::vector<int32_t> pick_tokens(std::span<const float> row, size_t count) {
    std::vector<int32_t> order(row.size());
    std::iota(order.begin(), order.end(), 0);
    const size_t top = std::min<size_t>(64, row.size());
    std::partial_sort(order.begin(), order.begin() + top, order.end(),
                      [&](int32_t a, int32_t b) { return row[a] > row[b] || (row[a] == row[b] && a < b); });
    std::set<int32_t> chosen;
    std::uniform_int_distribution<size_t> pick_top(0, top - 1), pick_any(0, row.size() - 1);
    count = std::min(count, row.size());
    while (chosen.size() < count) chosen.insert(rng_() % 2 ? order[pick_top(rng_)] : static_cast<int32_t>(pick_any(rng_)));
    std::vector<int32_t> tokens(chosen.begin(), chosen.end());
    std::shuffle(tokens.begin(), tokens.end(), rng_);
    return tokens;
  }

  SamplingRow random_row(std::span<const float> logits) {
    std::uniform_real_distribution<float> unit(0.0f, 1.0f);
    auto chance = [&](float p) { return unit(rng_) < p; };
    SamplingRow row;
    row.temperature = chance(0.2f) ? 0.0f : 0.3f + 1.2f * unit(rng_);
    const int32_t top_ks[] = {0, 1, 5, 50};
    row.top_k = top_ks[rng_() % 4];
    row.top_p = chance(0.5f) ? 1.0f : 0.1f + 0.9f * unit(rng_);
    row.min_p = chance(0.5f) ? 0.0f : 0.2f * unit(rng_);
    if (chance(0.5f)) {
      row.repetition_penalty = 0.8f + 0.7f * unit(rng_);
      row.frequency_penalty = -0.5f + 1.5f * unit(rng_);
      row.presence_penalty = -0.5f + 2.0f * unit(rng_);
      for (int32_t token : pick_tokens(logits, rng_() % 200)) {
        const int32_t count = static_cast<int32_t>(rng_() % 6);
        row.penalty_tokens.push_back({token, count, count > 0 || chance(0.5f)});
      }
    }
    if (chance(0.3f)) row.banned = pick_tokens(logits, 1 + rng_() % 50);
    const int32_t logprob_counts[] = {-1, 0, 5, 20};
    row.logprobs = logprob_counts[rng_() % 4];
    row.seed = rng_();
    row.counter = rng_() % 1000;
    return row;
  }

  std::unique_ptr<Backend> cpu_, gpu_;
  std::mt19937_64 rng_;
};

std::string describe(const SamplingRow& row) {
  char text[256];
  std::snprintf(text, sizeof(text),
                "T=%g top_k=%d top_p=%g min_p=%g rep=%g freq=%g pres=%g penalties=%zu banned=%zu logprobs=%d",
                row.temperature, row.top_k, row.top_p, row.min_p, row.repetition_penalty, row.frequency_penalty,
                row.presence_penalty, row.penalty_tokens.size(), row.banned.size(), row.logprobs);
  return text;
}

// Within 1e-4, or equal (both -inf for a masked raw logit).
void expect_logprob_near(float actual, float expected) {
  if (actual != expected) {
    EXPECT_NEAR(actual, expected, 1e-4);
  }
}

TEST_F(SamplingTest, MatchesCpuReference) {
  for (int64_t vocab : {int64_t{129280}, int64_t{1000}}) {
    const int64_t rows = 72;
    Logits logits = upload(mixed_logits(rows, vocab), rows, vocab);
    std::vector<SamplingRow> settings;
    for (int64_t r = 0; r < rows; ++r) settings.push_back(random_row(logits.row(r)));
    if (vocab == 1000) {  // one row with almost everything banned
      settings[3].banned.clear();
      for (int32_t token = 0; token < vocab; ++token)
        if (token % 200 != 17) settings[3].banned.push_back(token);
    }
    cpu_->begin_step();
    gpu_->begin_step();
    const std::vector<SampledRow> expected = cpu_->sample(logits.cpu, settings);
    const auto start = std::chrono::steady_clock::now();
    const std::vector<SampledRow> actual = gpu_->sample(logits.gpu, settings);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    std::printf("vocab %lld: %lld rows sampled in %.3f ms (upload, kernel, download)\n", static_cast<long long>(vocab),
                static_cast<long long>(rows), ms);
    ASSERT_EQ(actual.size(), expected.size());
    for (int64_t r = 0; r < rows; ++r) {
      const SamplingRow& row = settings[r];
      SCOPED_TRACE("vocab " + std::to_string(vocab) + " row " + std::to_string(r) + ": " + describe(row));
      EXPECT_EQ(actual[r].token, expected[r].token);
      if (row.logprobs < 0) continue;
      expect_logprob_near(actual[r].logprob, expected[r].logprob);
      ASSERT_EQ(actual[r].top_logprobs.size(), expected[r].top_logprobs.size());
      for (size_t i = 0; i < expected[r].top_logprobs.size(); ++i) {
        SCOPED_TRACE("top " + std::to_string(i));
        EXPECT_EQ(actual[r].top_logprobs[i].token, expected[r].top_logprobs[i].token);
        expect_logprob_near(actual[r].top_logprobs[i].logprob, expected[r].top_logprobs[i].logprob);
      }
    }
  }
}

TEST_F(SamplingTest, EveryTokenMaskedThrows) {
  const int64_t vocab = 1000;
  std::vector<float> values(2 * vocab);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  for (int64_t i = 0; i < vocab; ++i) values[i] = normal(rng_);
  std::fill(values.begin() + vocab, values.end(), -INFINITY);  // row 1: -inf raw logits, nothing banned
  Logits logits = upload(values, 2, vocab);
  SamplingRow all_banned;
  for (int32_t token = 0; token < vocab; ++token) all_banned.banned.push_back(token);
  SamplingRow fine;
  auto expect_masked = [&](const std::vector<SamplingRow>& rows, const char* what) {
    gpu_->begin_step();
    try {
      gpu_->sample(logits.gpu, rows);
      ADD_FAILURE() << what << ": no error";
    } catch (const Error& error) {
      EXPECT_NE(std::string(error.what()).find("every token is masked"), std::string::npos) << what << ": " << error.what();
    }
  };
  for (float temperature : {0.0f, 1.0f}) {
    all_banned.temperature = fine.temperature = temperature;
    expect_masked({all_banned, fine}, temperature == 0.0f ? "greedy, all banned" : "sampled, all banned");
    expect_masked({fine, fine}, temperature == 0.0f ? "greedy, raw -inf" : "sampled, raw -inf");
  }
}

TEST_F(SamplingTest, RepeatsBitForBit) {
  const int64_t rows = 64, vocab = 129280;
  Logits logits = upload(mixed_logits(rows, vocab), rows, vocab);
  std::vector<SamplingRow> settings;
  for (int64_t r = 0; r < rows; ++r) settings.push_back(random_row(logits.row(r)));
  gpu_->begin_step();
  const std::vector<SampledRow> first = gpu_->sample(logits.gpu, settings);
  gpu_->begin_step();
  const std::vector<SampledRow> second = gpu_->sample(logits.gpu, settings);
  for (int64_t r = 0; r < rows; ++r) {
    SCOPED_TRACE("row " + std::to_string(r) + ": " + describe(settings[r]));
    EXPECT_EQ(first[r].token, second[r].token);
    EXPECT_EQ(std::memcmp(&first[r].logprob, &second[r].logprob, sizeof(float)), 0);
    ASSERT_EQ(first[r].top_logprobs.size(), second[r].top_logprobs.size());
    for (size_t i = 0; i < first[r].top_logprobs.size(); ++i) {
      EXPECT_EQ(first[r].top_logprobs[i].token, second[r].top_logprobs[i].token);
      EXPECT_EQ(std::memcmp(&first[r].top_logprobs[i].logprob, &second[r].top_logprobs[i].logprob, sizeof(float)), 0);
    }
  }
}

TEST_F(SamplingTest, CounterMovesTheDraw) {
  const int64_t rows = 64, vocab = 1000;
  std::vector<float> row(vocab);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (float& value : row) value = normal(rng_);
  std::vector<float> values;
  for (int64_t r = 0; r < rows; ++r) values.insert(values.end(), row.begin(), row.end());
  Logits logits = upload(values, rows, vocab);
  std::vector<SamplingRow> settings(rows);
  const uint64_t seed = rng_();
  for (int64_t r = 0; r < rows; ++r) {
    settings[r].seed = seed;
    settings[r].counter = static_cast<uint64_t>(r);
  }
  gpu_->begin_step();
  std::set<int32_t> tokens;
  for (const SampledRow& sampled : gpu_->sample(logits.gpu, settings)) tokens.insert(sampled.token);
  // About 1000 nearly equally likely tokens: 64 draws give ~62 distinct ones.
  EXPECT_GE(tokens.size(), 32u) << "the draw barely depends on the counter";
}

// The filtered distribution from first principles (double precision): temperature, min_p,
// top_k (ties at the cut stay), top_p over (w desc, id asc). Sets `ambiguous` when a filter
// boundary falls within rounding distance, where the f32 kernel may legitimately differ.
std::vector<double> exact_distribution(const std::vector<float>& logits, const SamplingRow& row, bool& ambiguous) {
  const size_t vocab = logits.size();
  const double max = *std::max_element(logits.begin(), logits.end());
  std::vector<double> w(vocab);
  for (size_t i = 0; i < vocab; ++i) w[i] = std::exp((logits[i] - max) / row.temperature);
  ambiguous = false;
  auto near = [](double a, double b) { return std::abs(a - b) <= 1e-5 * std::max(std::abs(a), std::abs(b)); };
  std::vector<size_t> order;
  for (size_t i = 0; i < vocab; ++i) {
    ambiguous |= near(w[i], row.min_p);
    if (w[i] >= row.min_p) order.push_back(i);
  }
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return w[a] > w[b] || (w[a] == w[b] && a < b); });
  if (row.top_k > 0 && static_cast<size_t>(row.top_k) < order.size()) {
    const double kth = w[order[row.top_k - 1]];
    ambiguous |= near(kth, w[order[row.top_k]]);
    while (w[order.back()] < kth) order.pop_back();
  }
  double total = 0.0;
  for (size_t i : order) total += w[i];
  const double limit = row.top_p * total;
  double before = 0.0;
  size_t keep = 0;
  while (keep < order.size() && before < limit) {
    before += w[order[keep++]];
    ambiguous |= near(before, limit);
  }
  order.resize(std::max<size_t>(keep, 1));
  std::vector<double> probability(vocab, 0.0);
  double kept = 0.0;
  for (size_t i : order) kept += w[i];
  for (size_t i : order) probability[i] = w[i] / kept;
  return probability;
}

TEST_F(SamplingTest, DrawsFollowTheFilteredDistribution) {
  const int64_t vocab = 64, draws = 20000;
  SamplingRow row;
  row.temperature = 0.8f;
  row.min_p = 0.01f;
  row.top_k = 30;
  row.top_p = 0.9f;
  row.seed = rng_();
  std::vector<float> logits(vocab);
  std::vector<double> probability;
  bool ambiguous = true;
  for (int attempt = 0; attempt < 100 && ambiguous; ++attempt) {
    std::normal_distribution<float> normal(0.0f, 1.5f);
    for (float& value : logits) value = normal(rng_);
    probability = exact_distribution(logits, row, ambiguous);
  }
  ASSERT_FALSE(ambiguous);
  std::vector<float> values;
  for (int64_t r = 0; r < draws; ++r) values.insert(values.end(), logits.begin(), logits.end());
  Logits batch = upload(values, draws, vocab);
  std::vector<SamplingRow> settings(draws, row);
  for (int64_t r = 0; r < draws; ++r) settings[r].counter = static_cast<uint64_t>(r);
  gpu_->begin_step();
  std::vector<int64_t> observed(vocab, 0);
  for (const SampledRow& sampled : gpu_->sample(batch.gpu, settings)) {
    ASSERT_GE(sampled.token, 0);
    ASSERT_LT(sampled.token, vocab);
    ASSERT_GT(probability[sampled.token], 0.0) << "token " << sampled.token << " is filtered out";
    ++observed[sampled.token];
  }
  // Pearson's statistic over the kept tokens, the rarest merged until each bin expects >= 5.
  std::vector<int32_t> kept;
  for (int32_t i = 0; i < vocab; ++i)
    if (probability[i] > 0.0) kept.push_back(i);
  std::sort(kept.begin(), kept.end(), [&](int32_t a, int32_t b) { return probability[a] < probability[b]; });
  double chi_square = 0.0, bin_expected = 0.0, bin_observed = 0.0;
  int bins = 0;
  for (size_t i = 0; i < kept.size(); ++i) {
    bin_expected += probability[kept[i]] * draws;
    bin_observed += static_cast<double>(observed[kept[i]]);
    if (bin_expected >= 5.0 || i + 1 == kept.size()) {
      chi_square += (bin_observed - bin_expected) * (bin_observed - bin_expected) / bin_expected;
      bin_expected = bin_observed = 0.0;
      ++bins;
    }
  }
  ASSERT_GE(bins, 2) << "the filters left too little to test";
  // Wilson-Hilferty upper quantile at z = 5 (p ~ 3e-7): only a wrong distribution fails.
  const double df = bins - 1, z = 5.0;
  const double critical = df * std::pow(1.0 - 2.0 / (9.0 * df) + z * std::sqrt(2.0 / (9.0 * df)), 3.0);
  std::printf("chi-square %.2f over %d bins (critical %.2f)\n", chi_square, bins, critical);
  EXPECT_LT(chi_square, critical);
}

}  // namespace
}  // namespace rackserve
