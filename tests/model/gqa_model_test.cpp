// The grouped-query-attention families (GLM-4.x glm4_moe, MiniMax-M2 minimax_m2) on the CPU,
// on tiny checkpoints this test writes from the weight manifest with seeded random values:
// every tensor the manifest names loads by its checkpoint name, decoding through the paged
// cache equals the full forward, batched sequences equal separate ones, and tensor-parallel
// ranks (heads, biases and all-heads q/k norms split, KV heads cached per rank) give the
// single rank's logits and greedy tokens.
// FP8 checkpoints of both families (compressed-tensors channel, the GLM-4.x-FP8 format;
// DeepSeek-style 32 x 32 blocks, the MiniMax-M2 format at a tiny width) load their projections
// in FP8: W8A16 equals the dense model on the dequantized weights, W8A8 stays within the
// e4m3 bound of it, and TP 2 slices (values with their scales) give the single rank's W8A16
// logits.
// The transformers reference for these families comes from tests/reference/make_gqa_fixtures.py
// (fixtures under tests/data/models, picked up by reference_logits_test and the others).
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <unistd.h>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "core/error.h"
#include "engine/sequence_runner.h"
#include "models/model.h"
#include "models/weight_manifest.h"
#include "support/cpu_tensor_parallel.h"
#include "support/fp8_checkpoint_writer.h"
#include "support/gqa_checkpoints.h"
#include "support/safetensors_writer.h"
#include "support/model_consistency.h"
#include "support/similarity.h"
#include "weights/quant_config.h"
#include "weights/safetensors.h"

namespace rackserve {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::every_expert;
using testing::glm4_moe_config;
using testing::minimax_m2_config;
using testing::write_checkpoint;

struct Family {
  std::string name;
  json config;
};

class GqaModel : public ::testing::TestWithParam<Family> {
 protected:
  static void TearDownTestSuite() {
    for (const fs::path& directory : written_) fs::remove_all(directory);
    written_.clear();
  }
  fs::path checkpoint() const {
    const fs::path directory = write_checkpoint(GetParam().name, GetParam().config);
    written_.push_back(directory);
    return directory;
  }
  static inline std::vector<fs::path> written_;
};

TEST_P(GqaModel, DecodeThroughCacheEqualsFullForward) {
  auto backend = make_cpu_backend(2);
  auto model = load_model(checkpoint(), *backend);
  testing::expect_chunked_prefill_equals_full_forward(*model);
}

TEST_P(GqaModel, BatchedSequencesEqualSeparateOnes) {
  auto backend = make_cpu_backend(2);
  auto model = load_model(checkpoint(), *backend);
  testing::expect_batched_sequences_equal_separate_ones(*model);
}

TEST_P(GqaModel, TensorParallelRanksGiveTheSingleRanksLogitsAndGreedy) {
  const fs::path directory = checkpoint();
  testing::expect_tensor_parallel_ranks_match_one(directory, {2, 4});  // 4 KV heads: 2 and 1 per rank
  // 8 heads over 4 KV heads: TP 8 would split a KV head.
  EXPECT_THROW(testing::CpuTensorParallelModel(directory, 8, {}), Error);
}

TEST_P(GqaModel, StackedKeyValueProjectionGivesTheSameLogits) {
  const fs::path directory = checkpoint();
  auto backend = make_cpu_backend(2);
  LoadOptions unfused;
  unfused.fusions.kv = false;
  auto fused_model = load_model(directory, *backend);
  auto separate_model = load_model(directory, *backend, unfused);
  const std::vector<int32_t> prompt = testing::random_prompt(20, 3, fused_model->config().vocab_size);
  SequenceRunner fused(*fused_model, 20), separate(*separate_model, 20);
  EXPECT_EQ(testing::max_abs_difference(fused.append(prompt, true), separate.append(prompt, true)), 0.0f);
}

TEST_P(GqaModel, Fp8KvCacheStaysCloseToTheFullPrecisionCache) {
  const fs::path directory = write_checkpoint(GetParam().name + "-all-experts", every_expert(GetParam().config));
  written_.push_back(directory);
  auto backend = make_cpu_backend(2);
  auto model = load_model(directory, *backend);
  EXPECT_EQ(model->allocate_kv_cache(4, 16).entry_width(), 2 * 4 * 32);  // K and V of 4 KV heads of 32
  testing::expect_fp8_cache_close_to_full_precision(*model, GetParam().name);
}

// Logits of every position of one 70-token prompt.
std::vector<std::vector<float>> prompt_logits(CausalLM& model) {
  SequenceRunner runner(model, 70);
  return runner.append(testing::random_prompt(70, 5, model.config().vocab_size), true);
}

struct Fp8Case {
  std::string family;
  json config;
  testing::Fp8Layout layout;
  int64_t block = 0;
};

class GqaFp8Model : public ::testing::TestWithParam<Fp8Case> {
 protected:
  void SetUp() override {
    const Fp8Case& c = GetParam();
    root_ = fs::temp_directory_path() / ("rackserve-gqa-fp8-" + c.family + "-" + std::to_string(::getpid()));
    const fs::path dense = write_checkpoint(c.family + "-fp8-source", every_expert(c.config));
    const testing::QuantizedCheckpoint quantized =
        testing::quantize_checkpoint(WeightStore::open(dense / "model.safetensors"), c.layout, c.block, c.block);
    json config = every_expert(c.config);
    fs::create_directories(root_ / "dequantized");
    std::ofstream(root_ / "dequantized" / "config.json") << config.dump(1);
    testing::write_safetensors(root_ / "dequantized" / "model.safetensors", quantized.expanded);
    config["quantization_config"] = testing::fp8_quantization_config(c.layout, c.block, c.block);
    fs::create_directories(root_ / "fp8");
    std::ofstream(root_ / "fp8" / "config.json") << config.dump(1);
    testing::write_safetensors(root_ / "fp8" / "model.safetensors", quantized.fp8);
    fs::remove_all(dense);
  }
  void TearDown() override { fs::remove_all(root_); }

  std::vector<std::vector<float>> logits(const fs::path& directory, Fp8Weights fp8) {
    LoadOptions options;
    options.fp8_weights = fp8;
    auto model = load_model(directory, *backend_, options);
    return prompt_logits(*model);
  }

  fs::path root_;
  std::unique_ptr<Backend> backend_ = make_cpu_backend(2);
};

TEST_P(GqaFp8Model, W8A16EqualsTheDequantizedModelAndW8A8StaysWithinTheE4m3Bound) {
  const auto reference = logits(root_ / "dequantized", Fp8Weights::Native);
  EXPECT_LE(testing::max_abs_difference(logits(root_ / "fp8", Fp8Weights::Dequantize), reference), 1e-4f);
  const auto w8a8 = logits(root_ / "fp8", Fp8Weights::Native);
  // Relative L2 per position against W8A16. A quantized activation moves by at most 2^-4 of its
  // value, so each FP8 linear perturbs its output by at most 2^-4 relative; a token's path
  // crosses 4 quantized activations per layer (q/k/v's shared input, o_proj's, the experts'
  // gate_up and down inputs) over at most 3 layers, adding in quadrature: sqrt(12) / 16.
  double worst = 0.0, total_difference = 0.0, total_reference = 0.0;
  for (size_t r = 0; r < w8a8.size(); ++r) {
    double difference = 0.0, norm = 0.0;
    for (size_t v = 0; v < w8a8[r].size(); ++v) {
      ASSERT_TRUE(std::isfinite(w8a8[r][v]));
      difference += double(w8a8[r][v] - reference[r][v]) * (w8a8[r][v] - reference[r][v]);
      norm += double(reference[r][v]) * reference[r][v];
    }
    worst = std::max(worst, std::sqrt(difference / norm));
    total_difference += difference;
    total_reference += norm;
  }
  const double relative = std::sqrt(total_difference / total_reference);
  EXPECT_LT(worst, std::sqrt(12.0) / 16.0);
  EXPECT_GT(relative, 0.0) << "identical logits: activations were not quantized";
  std::printf("  %s W8A8 vs W8A16: relative L2 %.4f (worst position %.4f)\n", GetParam().family.c_str(), relative,
              worst);
}

TEST_P(GqaFp8Model, Tp2SlicesGiveTheSingleRanksW8A16Logits) {
  const auto expected = logits(root_ / "fp8", Fp8Weights::Dequantize);
  LoadOptions options;
  options.fp8_weights = Fp8Weights::Dequantize;
  testing::CpuTensorParallelModel split(root_ / "fp8", 2, options);
  EXPECT_LE(testing::max_abs_difference(prompt_logits(*split.model), expected), 1e-4f);
}

INSTANTIATE_TEST_SUITE_P(Families, GqaFp8Model,
                         ::testing::Values(Fp8Case{"glm4_moe_channel", glm4_moe_config(), testing::Fp8Layout::Channel},
                                           Fp8Case{"minimax_m2_block", minimax_m2_config(), testing::Fp8Layout::Block, 32},
                                           Fp8Case{"minimax_m2_channel", minimax_m2_config(),
                                                   testing::Fp8Layout::Channel}),
                         [](const auto& info) { return info.param.family; });

INSTANTIATE_TEST_SUITE_P(Families, GqaModel,
                         ::testing::Values(Family{"glm4_moe", glm4_moe_config()},
                                           Family{"minimax_m2", minimax_m2_config()}),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace rackserve
