// The CPU backend on the FP8 fixtures (tests/reference/make_fp8_fixtures.py: the tiny models
// quantized into DeepSeek `fp8` blocks and compressed-tensors channels, references computed
// by Hugging Face transformers).
//   W8A16 (--dequantize-fp8: weights expanded to values x scales, activations unquantized):
//     logits at every position within 1e-3 of transformers' dequantized model, and the same
//     16-token greedy continuation.
//   W8A8 (the default: activations quantized to e4m3 per token per group): quantization
//     noise on 64-wide random models with 8 experts is large and flips experts, so the bound
//     against W8A16 is loose (cosine >= 0.95; measured 0.971-0.9996): it catches a misapplied
//     scale (each weight read with its neighbour's scale: 0.62-0.97, most prompts below), not
//     rounding details, which fp8_linear_test checks against the definition. The per-prompt
//     cosines are printed.
//     The fixtures' prompt_<i>.w8a8 was written before make_fp8_fixtures.py forced eager
//     experts: transformers' default CPU experts backend (grouped_mm) bypasses F.linear, so
//     that reference quantized every input except the routed experts'. It is printed for
//     information only until the fixtures are regenerated (our W8A8 with the routed experts
//     dequantized instead matched it to cosine 1.0000000 on 21 of 24 prompts, the other three
//     0.995-0.998 from routing flips).
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "engine/sequence_runner.h"
#include "models/model.h"
#include "support/fixtures.h"
#include "support/similarity.h"
#include "weights/safetensors.h"

namespace rackserve {
namespace {

using testing::FixtureKind;

std::vector<float> flatten(const std::vector<std::vector<float>>& rows) {
  std::vector<float> flat;
  for (const auto& row : rows) flat.insert(flat.end(), row.begin(), row.end());
  return flat;
}

float max_abs_difference(const std::vector<float>& a, const std::vector<float>& b) {
  float worst = 0.0f;
  for (size_t i = 0; i < a.size(); ++i) {
    const float difference = std::fabs(a[i] - b[i]);
    worst = std::isnan(difference) ? INFINITY : std::max(worst, difference);
  }
  return worst;
}

struct Fp8Prompt {
  std::vector<int32_t> tokens;
  std::vector<float> w8a16, w8a8;  // [tokens.size(), vocab] each
  std::vector<int32_t> greedy;     // the W8A16 model's continuation
};

class Fp8ReferenceModel : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    directory_ = testing::fixture_directory(GetParam());
    backend_ = make_cpu_backend(2);
    WeightStore reference = WeightStore::open(directory_ / "reference.safetensors");
    std::ifstream meta_file(directory_ / "reference.json");
    const nlohmann::json meta = nlohmann::json::parse(meta_file);
    for (size_t p = 0; p < meta["prompts"].size(); ++p) {
      const std::string prefix = "prompt_" + std::to_string(p);
      prompts_.push_back({testing::read_reference_vector<int32_t>(reference, prefix + ".tokens"),
                          testing::read_reference_vector<float>(reference, prefix + ".w8a16"),
                          testing::read_reference_vector<float>(reference, prefix + ".w8a8"),
                          testing::read_reference_vector<int32_t>(reference, prefix + ".greedy")});
    }
    ASSERT_GE(prompts_.size(), 3u);
  }

  std::unique_ptr<CausalLM> load(Fp8Weights weights) const {
    LoadOptions options;
    options.fp8_weights = weights;
    return load_model(directory_, *backend_, options);
  }

  std::filesystem::path directory_;
  std::unique_ptr<Backend> backend_;
  std::vector<Fp8Prompt> prompts_;
};

TEST_P(Fp8ReferenceModel, DequantizedWeightsMatchTransformersW8A16) {
  auto model = load(Fp8Weights::Dequantize);
  for (const Fp8Prompt& prompt : prompts_) {
    SequenceRunner runner(*model, static_cast<int64_t>(prompt.tokens.size()));
    const std::vector<float> logits = flatten(runner.append(prompt.tokens, /*all_logits=*/true));
    ASSERT_EQ(logits.size(), prompt.w8a16.size());
    const float worst = max_abs_difference(logits, prompt.w8a16);
    EXPECT_LE(worst, 1e-3f) << "prompt of " << prompt.tokens.size();
    std::printf("  %s W8A16 prompt of %zu: max |logit - transformers| = %.3g\n", GetParam().c_str(), prompt.tokens.size(),
                worst);
  }
}

TEST_P(Fp8ReferenceModel, DequantizedGreedyContinuationMatchesTransformers) {
  auto model = load(Fp8Weights::Dequantize);
  for (const Fp8Prompt& prompt : prompts_) {
    SequenceRunner runner(*model, static_cast<int64_t>(prompt.tokens.size() + prompt.greedy.size()));
    EXPECT_EQ(runner.generate_greedy(prompt.tokens, static_cast<int64_t>(prompt.greedy.size())), prompt.greedy)
        << "prompt of " << prompt.tokens.size();
  }
}

TEST_P(Fp8ReferenceModel, W8A8StaysCloseToW8A16) {
  auto model = load(Fp8Weights::Native);
  for (const Fp8Prompt& prompt : prompts_) {
    SequenceRunner runner(*model, static_cast<int64_t>(prompt.tokens.size()));
    const std::vector<float> logits = flatten(runner.append(prompt.tokens, /*all_logits=*/true));
    ASSERT_EQ(logits.size(), prompt.w8a16.size());
    const double ours_vs_w8a16 = testing::cosine(logits, prompt.w8a16);
    std::printf("  %s W8A8 prompt of %zu: cosine vs W8A16 %.6f (vs the fixture's partial W8A8 %.6f)\n",
                GetParam().c_str(), prompt.tokens.size(), ours_vs_w8a16, testing::cosine(logits, prompt.w8a8));
    EXPECT_GE(ours_vs_w8a16, 0.95) << "prompt of " << prompt.tokens.size();
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Fp8ReferenceModel, ::testing::ValuesIn(testing::fixture_names(FixtureKind::Fp8)),
                         [](const auto& info) { return testing::fixture_test_name(info.param); });

}  // namespace
}  // namespace rackserve
