// The CPU backend against Hugging Face transformers: for every tiny reference model in
// tests/data/models (made by tests/reference/make_fixtures.py with transformers) and
// every prompt, float32 logits at every position within 1e-3 and the 16-token greedy
// continuation identical. Also checks that decoding through the paged KV cache (one
// token per step, or chunked prefill, or several sequences in one batch) gives the same
// logits as one full forward.
#include <algorithm>
#include <cstdio>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "engine/sequence_runner.h"
#include "models/layers/rotary_embedding.h"
#include "models/model.h"
#include "support/fixtures.h"
#include "weights/safetensors.h"

namespace rackserve {
namespace {

namespace fs = std::filesystem;

struct Prompt {
  std::vector<int32_t> tokens;
  std::vector<float> logits;  // [tokens.size(), vocab]
  std::vector<int32_t> greedy;
};

class ReferenceModel : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    directory_ = fs::path(RACKSERVE_TEST_DATA_DIR) / "models" / GetParam();
    backend_ = make_cpu_backend(2);
    model_ = load_model(directory_, *backend_);
    reference_ = WeightStore::open(directory_ / "reference.safetensors");
    std::ifstream meta_file(directory_ / "reference.json");
    meta_ = nlohmann::json::parse(meta_file);
    for (size_t p = 0; p < meta_["prompts"].size(); ++p) {
      std::string prefix = "prompt_" + std::to_string(p);
      prompts_.push_back({testing::read_reference_vector<int32_t>(reference_, prefix + ".tokens"),
                          testing::read_reference_vector<float>(reference_, prefix + ".logits"),
                          testing::read_reference_vector<int32_t>(reference_, prefix + ".greedy")});
    }
  }

  int64_t vocab() const { return model_->config().vocab_size; }

  fs::path directory_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<CausalLM> model_;
  WeightStore reference_;
  nlohmann::json meta_;
  std::vector<Prompt> prompts_;
};

float max_abs_difference(const std::vector<std::vector<float>>& rows, const std::vector<float>& flat, int64_t vocab) {
  float worst = 0.0f;
  for (size_t r = 0; r < rows.size(); ++r)
    for (int64_t v = 0; v < vocab; ++v) {
      float difference = std::fabs(rows[r][v] - flat[r * vocab + v]);
      worst = std::isnan(difference) ? INFINITY : std::max(worst, difference);
    }
  return worst;
}

TEST_P(ReferenceModel, RotaryTablesMatchTransformers) {
  auto expected = testing::read_reference_vector<float>(reference_, "rope.inv_freq");
  RotaryFrequencies ours = rotary_frequencies(model_->config().rope, model_->config().rotary_dim());
  ASSERT_EQ(ours.inv_freq.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i)
    EXPECT_NEAR(ours.inv_freq[i], expected[i], 1e-6 * std::fabs(expected[i])) << "inv_freq[" << i << "]";
  EXPECT_NEAR(ours.scale, meta_["rope_attention_scaling"].get<double>(), 1e-6);
  EXPECT_NEAR(model_->config().attention_softmax_scale(), meta_["softmax_scale"].get<double>(), 1e-9);
}

TEST_P(ReferenceModel, LogitsAtEveryPositionMatchTransformers) {
  ASSERT_GE(prompts_.size(), 3u);
  for (const Prompt& prompt : prompts_) {
    SequenceRunner runner(*model_, static_cast<int64_t>(prompt.tokens.size()));
    auto logits = runner.append(prompt.tokens, /*all_logits=*/true);
    ASSERT_EQ(logits.size(), prompt.tokens.size());
    float worst = max_abs_difference(logits, prompt.logits, vocab());
    EXPECT_LE(worst, 1e-3f) << "prompt of " << prompt.tokens.size();
    std::printf("  %s prompt of %zu tokens: max |logit - transformers| = %.3g\n", GetParam().c_str(),
                prompt.tokens.size(), worst);
  }
}

TEST_P(ReferenceModel, GreedyContinuationMatchesTransformers) {
  for (const Prompt& prompt : prompts_) {
    SequenceRunner runner(*model_, static_cast<int64_t>(prompt.tokens.size() + prompt.greedy.size()));
    EXPECT_EQ(runner.generate_greedy(prompt.tokens, static_cast<int64_t>(prompt.greedy.size())), prompt.greedy)
        << "prompt of " << prompt.tokens.size();
  }
}

TEST_P(ReferenceModel, DecodeThroughCacheEqualsFullForward) {
  const Prompt& prompt = prompts_.back();  // the longest: spans two KV pages
  const int64_t length = static_cast<int64_t>(prompt.tokens.size());
  SequenceRunner full(*model_, length);
  auto expected = full.append(prompt.tokens, true);
  for (int64_t chunk : {1, 7, 64}) {
    SequenceRunner stepped(*model_, length);
    auto logits = stepped.append(prompt.tokens, true, chunk);
    ASSERT_EQ(logits.size(), expected.size());
    float worst = 0.0f;
    for (size_t r = 0; r < logits.size(); ++r)
      for (int64_t v = 0; v < vocab(); ++v) worst = std::max(worst, std::fabs(logits[r][v] - expected[r][v]));
    EXPECT_LE(worst, 1e-4f) << "chunk " << chunk;
  }
}

TEST_P(ReferenceModel, BatchedSequencesEqualSeparateOnes) {
  // Three prompts in one step, sharing one cache with interleaved pages, then one
  // decode step for all of them: every row must equal the single-sequence result.
  const int64_t page_size = 16;
  PagedKvCache cache = model_->allocate_kv_cache(64, page_size);
  ForwardBatch prefill;
  std::vector<std::vector<int32_t>> pages(3);
  for (int s = 0; s < 3; ++s) {
    const Prompt& prompt = prompts_[prompts_.size() - 1 - s];
    int64_t needed = (static_cast<int64_t>(prompt.tokens.size()) + 1 + page_size - 1) / page_size;
    for (int64_t b = 0; b < needed; ++b) pages[s].push_back(static_cast<int32_t>(b * 3 + s));
    prefill.sequences.push_back({prompt.tokens, 0, pages[s], false});
  }
  auto last_rows = backend_->download_f32(model_->forward(prefill, cache));
  ForwardBatch decode;
  for (int s = 0; s < 3; ++s) {
    const Prompt& prompt = prompts_[prompts_.size() - 1 - s];
    std::vector<float> row(last_rows.begin() + s * vocab(), last_rows.begin() + (s + 1) * vocab());
    EXPECT_LE(max_abs_difference({row}, std::vector<float>(prompt.logits.end() - vocab(), prompt.logits.end()), vocab()),
              1e-3f);
    decode.sequences.push_back({{argmax(row)}, static_cast<int32_t>(prompt.tokens.size()), pages[s], false});
  }
  auto decoded = backend_->download_f32(model_->forward(decode, cache));
  for (int s = 0; s < 3; ++s) {
    const Prompt& prompt = prompts_[prompts_.size() - 1 - s];
    SequenceRunner alone(*model_, static_cast<int64_t>(prompt.tokens.size()) + 1);
    alone.append(prompt.tokens, false);
    auto expected = alone.append({decode.sequences[s].token_ids[0]}, false);
    std::vector<float> row(decoded.begin() + s * vocab(), decoded.begin() + (s + 1) * vocab());
    EXPECT_LE(max_abs_difference(expected, row, vocab()), 1e-4f) << "sequence " << s;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ReferenceModel,
                         ::testing::ValuesIn(testing::fixture_names(testing::FixtureKind::Bf16)),
                         [](const auto& info) { return testing::fixture_test_name(info.param); });

}  // namespace
}  // namespace rackserve
