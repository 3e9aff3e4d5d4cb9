// Consistency checks every model family must pass on the CPU, whatever its attention: decoding
// through the paged cache equals the full forward, and sequences batched into one step (on
// interleaved pages) equal the same sequences run alone. gtest assertions; call from a test.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "engine/sequence_runner.h"
#include "support/cpu_tensor_parallel.h"
#include "models/model.h"
#include "support/seeded_checkpoint.h"
#include "support/similarity.h"

namespace rackserve::testing {

// A 70-token prompt (two 64-token pages) appended whole, then in chunks of 1, 7 and 64: the same
// logits at every position (<= 1e-4), and logits that have not collapsed.
inline void expect_chunked_prefill_equals_full_forward(CausalLM& model) {
  const std::vector<int32_t> prompt = random_prompt(70, 7, model.config().vocab_size);
  SequenceRunner full(model, 70);
  const auto expected = full.append(prompt, true);
  double spread = 0.0;
  for (float value : expected.back()) spread += value * value;
  EXPECT_GT(std::sqrt(spread / static_cast<double>(expected.back().size())), 0.1) << "logits collapsed";
  for (int64_t chunk : {1, 7, 64}) {
    SequenceRunner stepped(model, 70);
    EXPECT_LE(max_abs_difference(stepped.append(prompt, true, chunk), expected), 1e-4f) << "chunk " << chunk;
  }
}

// Three prompts of 45, 17 and 3 tokens in one step on interleaved 16-token pages: each last row
// equals the prompt's run alone (<= 1e-4).
inline void expect_batched_sequences_equal_separate_ones(CausalLM& model) {
  Backend& backend = model.backend();
  const int64_t page_size = 16, vocab = model.config().vocab_size;
  PagedKvCache cache = model.allocate_kv_cache(32, page_size);
  ForwardBatch batch;
  std::vector<std::vector<int32_t>> prompts;
  for (int s = 0; s < 3; ++s) {
    prompts.push_back(random_prompt(std::vector<int64_t>{45, 17, 3}[s], 100 + s, vocab));
    std::vector<int32_t> pages;
    for (int64_t b = 0; b < (static_cast<int64_t>(prompts[s].size()) + page_size - 1) / page_size; ++b)
      pages.push_back(static_cast<int32_t>(b * 3 + s));  // interleaved pages
    batch.sequences.push_back({prompts[s], 0, pages, false});
  }
  const std::vector<float> rows = backend.download_f32(model.forward(batch, cache));
  for (int s = 0; s < 3; ++s) {
    SequenceRunner alone(model, static_cast<int64_t>(prompts[s].size()));
    const auto expected = alone.append(prompts[s], false);
    const std::vector<std::vector<float>> row = {{rows.begin() + s * vocab, rows.begin() + (s + 1) * vocab}};
    EXPECT_LE(max_abs_difference(row, expected), 1e-4f) << "sequence " << s;
  }
}

// The checkpoint at `directory` split over each of `worlds` CPU ranks gives the single rank's
// logits for a 70-token prompt (<= 1e-4, cosine >= 0.99999 at every position, chunks of 16) and
// its 8 greedy tokens.
inline void expect_tensor_parallel_ranks_match_one(const std::filesystem::path& directory,
                                                   std::initializer_list<int> worlds) {
  auto backend = make_cpu_backend(2);
  auto single = load_model(directory, *backend);
  const std::vector<int32_t> prompt = random_prompt(70, 11, single->config().vocab_size);
  SequenceRunner one(*single, 70);
  const auto expected = one.append(prompt, true);
  SequenceRunner one_greedy(*single, 80);
  const std::vector<int32_t> greedy = one_greedy.generate_greedy(prompt, 8);
  for (int world : worlds) {
    CpuTensorParallelModel split(directory, world, {});
    SequenceRunner runner(*split.model, 70);
    const auto logits = runner.append(prompt, true, 16);
    EXPECT_LE(max_abs_difference(logits, expected), 1e-4f) << "TP " << world;
    for (size_t r = 0; r < logits.size(); ++r)
      ASSERT_GE(cosine(logits[r], expected[r]), 0.99999) << "TP " << world << " position " << r;
    SequenceRunner split_greedy(*split.model, 80);
    EXPECT_EQ(split_greedy.generate_greedy(prompt, 8), greedy) << "TP " << world;
  }
}

// A 300-token prompt (five 64-token pages, prefilled in chunks of 100, so most keys are read back
// from e4m3 pages written by earlier steps) with an FP8 cache against the f32 cache: the MLA
// cache's criteria (kv_cache_fp8_test): e4m3 keeps 3 mantissa bits, so every cached value moves
// by up to 2^-4 of itself; the mean cosine over positions must reach 0.999, no position 0.99.
inline void expect_fp8_cache_close_to_full_precision(CausalLM& model, const std::string& name) {
  const std::vector<int32_t> prompt = random_prompt(300, 21, model.config().vocab_size);
  SequenceRunner full_precision(model, 300);
  const auto expected = full_precision.append(prompt, true, 100);
  SequenceRunner fp8(model, 300, 64, KvCacheDtype::Fp8);
  ASSERT_TRUE(fp8.cache().fp8());
  const auto logits = fp8.append(prompt, true, 100);
  double worst = 1.0, mean = 0.0;
  for (size_t r = 0; r < logits.size(); ++r) {
    const double similarity = cosine(logits[r], expected[r]);
    worst = std::min(worst, similarity);
    mean += similarity / static_cast<double>(logits.size());
  }
  EXPECT_GE(worst, 0.99);
  EXPECT_GE(mean, 0.999);
  EXPECT_GT(max_abs_difference(logits, expected), 0.0f) << "identical logits: the cache was not quantized";
  std::printf("  %s FP8 cache vs f32 cache: cosine mean %.6f, worst %.6f over %zu positions\n", name.c_str(), mean,
              worst, logits.size());
}

}  // namespace rackserve::testing
