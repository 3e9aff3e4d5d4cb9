// The CPU backend on the FP8 fixtures (tests/reference/make_fp8_fixtures.py: the tiny models
// quantized into DeepSeek `fp8` blocks and compressed-tensors channels, references computed
// by Hugging Face transformers).
//   W8A16 (--dequantize-fp8: weights expanded to values x scales, activations unquantized):
//     logits at every position within 1e-3 of transformers' dequantized model, and the same
//     16-token greedy continuation.
//   W8A8 (the default: activations quantized to e4m3 per token per group) against
//     transformers running the same rules (make_fp8_fixtures.py hooks every FP8 F.linear with
//     DeepSeek's act_quant / per-token quantization and runs eager experts): both compute in
//     float32, so the logits agree to cosine >= 0.9999 at each position until the two part,
//     which only a routing near-tie or an activation on an e4m3 rounding boundary (reached in
//     a different float32 summation order) can cause; later positions attend to the parted one
//     and may carry the difference. Asserted: the one-token prompt agrees (a wrong rule or scale
//     shows at every position; one token has no batch to sum over differently), and at most half
//     of a fixture's prompts part anywhere. Measured: 2026-12-04, 21 of 24 prompts of the 64-wide
//     fixtures agree at every position, the other three part at positions 2, 4 and 32;
//     2026-12-05, dsv3-block128 (256 wide): 5 of 8 agree, the others part at positions 17, 3 and
//     0. The last is a prompt of 70 tokens whose position 0 our W8A8 computes identically alone
//     and in the batch, with no routing near-tie there (top-2 gap 0.017), while transformers'
//     logits at that position differ from ours at cosine 0.99910: a near-tie in the reference's
//     own float32 sums. The per-prompt cosines (and W8A8 vs W8A16, the quantization noise of
//     these random models: 0.971-0.9996) are printed.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <span>
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

constexpr double kSameW8A8 = 0.9999;  // a position computed from the same quantized inputs

using testing::flatten;
using testing::max_abs_difference;

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

TEST_P(Fp8ReferenceModel, W8A8MatchesTransformersW8A8) {
  ASSERT_EQ(prompts_.front().tokens.size(), 1u) << "make_fp8_fixtures.py's first prompt is one token long";
  auto model = load(Fp8Weights::Native);
  size_t parted = 0;  // prompts with a position below kSameW8A8
  for (const Fp8Prompt& prompt : prompts_) {
    SequenceRunner runner(*model, static_cast<int64_t>(prompt.tokens.size()));
    const std::vector<std::vector<float>> rows = runner.append(prompt.tokens, /*all_logits=*/true);
    const std::vector<float> logits = flatten(rows);
    ASSERT_EQ(logits.size(), prompt.w8a8.size());
    const size_t vocab = rows.front().size();
    double worst = 1.0;
    int64_t first_apart = -1;
    for (size_t t = 0; t < rows.size(); ++t) {
      const double value = testing::cosine(rows[t], std::span(prompt.w8a8).subspan(t * vocab, vocab));
      worst = std::min(worst, value);
      if (!(value >= kSameW8A8) && first_apart < 0) first_apart = static_cast<int64_t>(t);
    }
    parted += first_apart >= 0;
    std::printf("  %s W8A8 prompt of %zu: cosine vs transformers W8A8 %.7f, worst position %.6f, first position "
                "below %.4f: %lld; vs W8A16 %.6f\n",
                GetParam().c_str(), prompt.tokens.size(), testing::cosine(logits, prompt.w8a8), worst, kSameW8A8,
                static_cast<long long>(first_apart), testing::cosine(logits, prompt.w8a16));
    if (prompt.tokens.size() == 1)
      EXPECT_EQ(first_apart, -1) << "the one-token prompt differs: not a near-tie carried along but a different "
                                    "computation";
  }
  EXPECT_LE(parted, prompts_.size() / 2) << "prompts whose W8A8 logits part from transformers' somewhere";
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Fp8ReferenceModel, ::testing::ValuesIn(testing::fixture_names(FixtureKind::Fp8)),
                         [](const auto& info) { return testing::fixture_test_name(info.param); });

}  // namespace
}  // namespace rackserve
