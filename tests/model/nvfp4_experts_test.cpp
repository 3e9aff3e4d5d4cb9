// NVFP4 routed experts (modelopt exports: DeepSeek-V3.x / GLM-5.x / Kimi-K2.x / MiniMax-M2.5
// *-NVFP4), run W4A16, on the CPU, on a tiny DeepSeek-V3 checkpoint written from the weight
// manifest with seeded values and quantized as modelopt does (support/nvfp4_checkpoint_writer.h):
// - the model equals the same checkpoint with the codes expanded to f32 (W4A16 is exact up to
//   f32 rounding), with attention NVFP4 too (dequantized at load);
// - tensor-parallel ranks split codes, block scales and row scales and give TP 1's logits;
// - dummy weights take the checkpoint's NVFP4 layout.
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "engine/sequence_runner.h"
#include "models/layers/checkpoint_weight_source.h"
#include "models/layers/dummy_weight_source.h"
#include "models/model.h"
#include "support/cpu_tensor_parallel.h"
#include "support/nvfp4_checkpoint_writer.h"
#include "support/seeded_checkpoint.h"
#include "support/similarity.h"
#include "weights/quant_config.h"
#include "weights/safetensors.h"

namespace rackserve {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::max_abs_difference;

TEST(Nvfp4Codes, E2m1ValuesAndNearestCode) {
  const float magnitudes[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
  for (uint8_t code = 0; code < 8; ++code) {
    EXPECT_EQ(e2m1_to_f32(code), magnitudes[code]);
    EXPECT_EQ(e2m1_to_f32(code | 0x8u), -magnitudes[code]);
    EXPECT_EQ(testing::nearest_e2m1(magnitudes[code]), code);
  }
  EXPECT_EQ(testing::nearest_e2m1(-2.4f), 0xcu);  // -2
  EXPECT_EQ(testing::nearest_e2m1(100.0f), 7u);   // saturates at 6
}

class Nvfp4Experts : public ::testing::Test {
 protected:
  void TearDown() override { fs::remove_all(root_); }

  // Routed experts NVFP4 (and attention projections when asked); the rest excluded, as the
  // GLM-5.1-NVFP4 export excludes attention, shared experts and the dense layers.
  void write(bool quantize_attention) {
    root_ = fs::temp_directory_path() / ("rackserve-nvfp4-" + std::to_string(::getpid()));
    const fs::path dense = testing::write_checkpoint("nvfp4-source", testing::tiny_deepseek_v3_config());
    auto is_attention = [](const std::string& name) {  // of layer 1: layer 0 is excluded whole
      return name.starts_with("model.layers.1.self_attn.") && name.find("layernorm") == std::string::npos &&
             name.find("kv_b_proj") == std::string::npos;
    };
    const testing::Nvfp4Checkpoint quantized = testing::quantize_nvfp4_checkpoint(
        WeightStore::open(dense / "model.safetensors"), [&](const std::string& name) {
          return name.find(".mlp.experts.") != std::string::npos || (quantize_attention && is_attention(name));
        });
    fs::remove_all(dense);
    std::vector<std::string> exclude = {"lm_head", "model.layers.0*", "model.layers.1.mlp.shared_experts*",
                                        "model.layers.*.self_attn.kv_b_proj"};
    if (!quantize_attention) exclude.push_back("model.layers.*.self_attn*");
    for (const char* kind : {"expanded", "nvfp4"}) {
      fs::create_directories(root_ / kind);
      std::ofstream(root_ / kind / "config.json") << testing::tiny_deepseek_v3_config().dump(1);
    }
    std::ofstream(root_ / "nvfp4" / "hf_quant_config.json") << testing::nvfp4_hf_quant_config(exclude).dump(1);
    testing::write_safetensors(root_ / "expanded" / "model.safetensors", quantized.expanded);
    testing::write_safetensors(root_ / "nvfp4" / "model.safetensors", quantized.nvfp4);
  }

  static std::vector<std::vector<float>> prompt_logits(CausalLM& model) {
    SequenceRunner runner(model, 40);
    return runner.append(testing::random_prompt(40, 9, model.config().vocab_size), true, 16);
  }

  fs::path root_;
  std::unique_ptr<Backend> backend_ = make_cpu_backend(2);
};

TEST_F(Nvfp4Experts, EqualTheExpandedCheckpoint) {
  for (bool quantize_attention : {false, true}) {
    write(quantize_attention);
    auto expanded = load_model(root_ / "expanded", *backend_);
    auto nvfp4 = load_model(root_ / "nvfp4", *backend_);
    const auto expected = prompt_logits(*expanded);
    EXPECT_LE(max_abs_difference(prompt_logits(*nvfp4), expected), 1e-4f)
        << (quantize_attention ? "attention NVFP4 too" : "experts");
    double spread = 0.0;
    for (float value : expected.back()) spread += value * value;
    EXPECT_GT(std::sqrt(spread / static_cast<double>(expected.back().size())), 0.1) << "logits collapsed";
    fs::remove_all(root_);
  }
}

TEST_F(Nvfp4Experts, TensorParallelRanksGiveTheSingleRanksLogits) {
  write(false);  // 64 intermediate values: 32 per rank at TP 2, 16 at TP 4, whole blocks
  auto single = load_model(root_ / "nvfp4", *backend_);
  const auto expected = prompt_logits(*single);
  for (int world : {2, 4}) {
    testing::CpuTensorParallelModel split(root_ / "nvfp4", world, {});
    EXPECT_LE(max_abs_difference(prompt_logits(*split.model), expected), 1e-4f) << "TP " << world;
  }
}

TEST_F(Nvfp4Experts, DummyWeightsTakeTheCheckpointsLayout) {
  write(false);
  const ModelConfig config = ModelConfig::load(root_ / "nvfp4");
  const WeightStore store = WeightStore::open(root_ / "nvfp4");
  const int64_t hidden = config.hidden_size, inner = config.moe.expert_intermediate_size;
  LinearRequest gate_up{{}, {inner, inner}, hidden, config.moe.num_routed_experts, WeightRole::ExpertGateUp,
                        TpSplit::Column};
  for (int64_t e = 0; e < config.moe.num_routed_experts; ++e) {
    const std::string expert = "model.layers.1.mlp.experts." + std::to_string(e);
    gate_up.modules.insert(gate_up.modules.end(), {expert + ".gate_proj", expert + ".up_proj"});
  }
  for (const ShardSpec shard : {ShardSpec{0, 1}, ShardSpec{1, 2}}) {
    const QuantConfig stated = QuantConfig::load(root_ / "nvfp4");  // hf_quant_config.json
    DummyWeightSource dummy(config, *backend_, 3, shard, Fp8Weights::Native, stated);
    CheckpointWeightSource checkpoint(store, *backend_, stated, Fp8Weights::Native, shard);
    const LinearWeight expected = checkpoint.load_linear(gate_up), got = dummy.load_linear(gate_up);
    ASSERT_TRUE(expected.fp4.has_value()) << "rank " << shard.rank;
    ASSERT_TRUE(got.fp4.has_value()) << "rank " << shard.rank;
    EXPECT_EQ(got.fp4->packed.shape, expected.fp4->packed.shape);
    EXPECT_EQ(got.fp4->block_scales.shape, expected.fp4->block_scales.shape);
    EXPECT_EQ(got.fp4->row_scales.shape, expected.fp4->row_scales.shape);
  }
  LoadOptions options;
  options.format = LoadFormat::Dummy;
  auto model = load_model(root_ / "nvfp4", *backend_, options);
  for (const auto& row : prompt_logits(*model))
    for (float value : row) ASSERT_TRUE(std::isfinite(value));
}

}  // namespace
}  // namespace rackserve
