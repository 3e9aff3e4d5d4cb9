// INT4 routed experts (compressed-tensors pack-quantized, W4A16: Kimi-K2-Thinking / K2.5) on the
// CPU, on a tiny Kimi-K2 checkpoint written from the weight manifest with seeded values and its
// experts quantized as the real checkpoints are (support/int4_checkpoint_writer.h):
// - the packing rule itself: Int4Module reads compressed-tensors' bit order and offset;
// - the INT4 model equals the same checkpoint with the codes expanded to f32 (W4A16 is exact:
//   only f32 rounding separates them), with attention in INT4 too (dequantized at load);
// - tensor-parallel ranks split the experts' packed codes and scales and give TP 1's logits; a
//   split that would cut a scale group is refused with the reason.
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
#include "core/error.h"
#include "engine/sequence_runner.h"
#include "models/dummy_weight_plan.h"
#include "models/layers/checkpoint_weight_source.h"
#include "models/layers/dummy_weight_source.h"
#include "models/layers/int4_checkpoint.h"
#include "models/model.h"
#include "support/cpu_tensor_parallel.h"
#include "support/int4_checkpoint_writer.h"
#include "support/seeded_checkpoint.h"
#include "support/similarity.h"
#include "weights/quant_config.h"
#include "weights/safetensors.h"

namespace rackserve {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::max_abs_difference;

TEST(Int4Module, ReadsCompressedTensorsPacking) {
  // Row 0: codes 0..7 (stored 8..15) in word 0, then -8..-1 (stored 0..7) in word 1, the nibble
  // of column 8w + i at bits 4i; row 1 all 7 (stored 15). Scales per 8 columns.
  const std::vector<int32_t> packed = {static_cast<int32_t>(0xfedcba98u), static_cast<int32_t>(0x76543210u),
                                       static_cast<int32_t>(0xffffffffu), static_cast<int32_t>(0xffffffffu)};
  const std::vector<uint16_t> scales = {f32_to_bf16(0.5f), f32_to_bf16(2.0f), f32_to_bf16(1.0f), f32_to_bf16(0.25f)};
  const fs::path file = fs::temp_directory_path() / ("rackserve-int4-packing-" + std::to_string(::getpid()) + ".safetensors");
  testing::write_safetensors(file, {{"m.weight_packed", "I32", {2, 2}, testing::bytes_of(packed)},
                                    {"m.weight_scale", "BF16", {2, 2}, testing::bytes_of(scales)}});
  const WeightStore store = WeightStore::open(file);
  LinearScheme scheme;
  scheme.format = WeightFormat::Int4Group;
  scheme.group_size = 8;
  scheme.scale_dtype = DType::BF16;
  std::vector<float> out(32);
  Int4Module(store, "m", scheme, 2, 16).dequantize({0, 2, 0, 16}, out.data());
  for (int c = 0; c < 8; ++c) {
    EXPECT_EQ(out[c], 0.5f * c) << "column " << c;
    EXPECT_EQ(out[8 + c], 2.0f * (c - 8)) << "column " << 8 + c;
    EXPECT_EQ(out[16 + c], 7.0f);
    EXPECT_EQ(out[24 + c], 7.0f * 0.25f);
  }
  // A slice keeps its groups' scales: columns [8, 16) of row 1.
  std::vector<int32_t> slice_packed;
  std::vector<float> slice_scales;
  Int4Module(store, "m", scheme, 2, 16).append_packed({1, 1, 8, 8}, slice_packed, slice_scales);
  EXPECT_EQ(slice_packed, std::vector<int32_t>{static_cast<int32_t>(0xffffffffu)});
  EXPECT_EQ(slice_scales, std::vector<float>{0.25f});
  EXPECT_THROW(Int4Module(store, "m", scheme, 2, 16).append_packed({0, 1, 4, 8}, slice_packed, slice_scales), Error);
  fs::remove(file);
}

// Kimi-K2's architecture (DeepSeek-V3's) at a tiny size, as a kimi_k2 config.
json kimi_k2_config() {
  json config = testing::tiny_deepseek_v3_config();
  config["model_type"] = "kimi_k2";
  config["routed_scaling_factor"] = 2.827;
  config["rope_theta"] = 50000.0;
  return config;
}

bool routed_expert(const std::string& name) { return name.find(".mlp.experts.") != std::string::npos; }

// An INT4 checkpoint (groups of `group`; attention INT4 too when asked) and its f32 expansion.
class Int4Experts : public ::testing::Test {
 protected:
  void TearDown() override { fs::remove_all(root_); }

  void write(int64_t group, bool quantize_attention) {
    root_ = fs::temp_directory_path() / ("rackserve-int4-" + std::to_string(::getpid()));
    const fs::path dense = testing::write_checkpoint("int4-source", kimi_k2_config());
    const testing::Int4Checkpoint quantized = testing::quantize_int4_checkpoint(
        WeightStore::open(dense / "model.safetensors"), group, [&](const std::string& name) {
          return routed_expert(name) || (quantize_attention && name.find(".self_attn.") != std::string::npos &&
                                         name.find("layernorm") == std::string::npos);
        });
    fs::remove_all(dense);
    json config = kimi_k2_config();
    fs::create_directories(root_ / "expanded");
    std::ofstream(root_ / "expanded" / "config.json") << config.dump(1);
    testing::write_safetensors(root_ / "expanded" / "model.safetensors", quantized.expanded);
    config["quantization_config"] = testing::kimi_int4_quantization_config(group, quantize_attention);
    fs::create_directories(root_ / "int4");
    std::ofstream(root_ / "int4" / "config.json") << config.dump(1);
    testing::write_safetensors(root_ / "int4" / "model.safetensors", quantized.int4);
  }

  static std::vector<std::vector<float>> prompt_logits(CausalLM& model) {
    SequenceRunner runner(model, 40);
    return runner.append(testing::random_prompt(40, 9, model.config().vocab_size), true, 16);
  }

  fs::path root_;
  std::unique_ptr<Backend> backend_ = make_cpu_backend(2);
};

TEST_F(Int4Experts, EqualTheExpandedCheckpoint) {
  for (bool quantize_attention : {false, true}) {
    write(32, quantize_attention);
    auto expanded = load_model(root_ / "expanded", *backend_);
    auto int4 = load_model(root_ / "int4", *backend_);
    const auto expected = prompt_logits(*expanded);
    const auto logits = prompt_logits(*int4);
    EXPECT_LE(max_abs_difference(logits, expected), 1e-4f) << (quantize_attention ? "attention INT4 too" : "experts");
    double spread = 0.0;
    for (float value : expected.back()) spread += value * value;
    EXPECT_GT(std::sqrt(spread / static_cast<double>(expected.back().size())), 0.1) << "logits collapsed";
    fs::remove_all(root_);
  }
}

TEST_F(Int4Experts, TensorParallelRanksGiveTheSingleRanksLogits) {
  write(16, false);  // 64 intermediate values: 32 per rank at TP 2, 16 at TP 4, whole groups
  auto single = load_model(root_ / "int4", *backend_);
  const auto expected = prompt_logits(*single);
  for (int world : {2, 4}) {
    testing::CpuTensorParallelModel split(root_ / "int4", world, {});
    EXPECT_LE(max_abs_difference(prompt_logits(*split.model), expected), 1e-4f) << "TP " << world;
  }
}

// --load-format dummy on an INT4 config: the experts are INT4 in the checkpoint loader's
// layout (shapes per rank, group), their values of the dense dummy's magnitude, and a model
// built from them runs to finite logits.
TEST_F(Int4Experts, DummyWeightsTakeTheCheckpointsLayout) {
  write(16, false);
  const ModelConfig config = ModelConfig::load(root_ / "int4");
  const WeightStore store = WeightStore::open(root_ / "int4");
  const int64_t hidden = config.hidden_size, inner = config.moe.expert_intermediate_size;
  LinearRequest down{{}, {hidden}, inner, config.moe.num_routed_experts, WeightRole::ExpertDown, TpSplit::Row};
  for (int64_t e = 0; e < config.moe.num_routed_experts; ++e)
    down.modules.push_back("model.layers.1.mlp.experts." + std::to_string(e) + ".down_proj");
  for (const ShardSpec shard : {ShardSpec{0, 1}, ShardSpec{1, 2}}) {
    DummyWeightSource dummy(config, *backend_, 3, shard);
    CheckpointWeightSource checkpoint(store, *backend_, QuantConfig::load(root_ / "int4"), Fp8Weights::Native, shard);
    const LinearWeight expected = checkpoint.load_linear(down), got = dummy.load_linear(down);
    ASSERT_TRUE(expected.int4 && got.int4) << "rank " << shard.rank;
    EXPECT_EQ(got.int4->packed.shape, expected.int4->packed.shape);
    EXPECT_EQ(got.int4->scales.shape, expected.int4->scales.shape);
    EXPECT_EQ(got.int4->group, 16);
    const float dense_scale = dummy_weight_init(WeightRole::ExpertDown, {hidden, inner / shard.world}).scale;
    for (float scale : backend_->download_f32(got.int4->scales)) {
      ASSERT_GE(scale, 0.5f * dense_scale / 8.0f);
      ASSERT_LT(scale, 1.5f * dense_scale / 8.0f);
    }
  }
  LoadOptions options;
  options.format = LoadFormat::Dummy;
  auto model = load_model(root_ / "int4", *backend_, options);
  for (const auto& row : prompt_logits(*model))
    for (float value : row) ASSERT_TRUE(std::isfinite(value));
}

// Kimi-K2.5 as shipped: a kimi_k25 wrapper whose text_config holds the language model and its
// quantization_config, and every checkpoint tensor under "language_model.": the same logits as
// the unwrapped checkpoint.
TEST_F(Int4Experts, AWrappedKimiK25CheckpointLoads) {
  write(32, false);
  const fs::path wrapped = root_ / "kimi-k25";
  fs::create_directories(wrapped);
  json text = kimi_k2_config();
  text["quantization_config"] = testing::kimi_int4_quantization_config(32);
  const json file = {{"model_type", "kimi_k25"},
                     {"architectures", {"KimiK25ForConditionalGeneration"}},
                     {"text_config", text},
                     {"vision_config", json::object()}};
  std::ofstream(wrapped / "config.json") << file.dump(1);
  const WeightStore store = WeightStore::open(root_ / "int4");
  std::vector<testing::OutTensor> renamed;
  for (const std::string& name : store.names()) {
    const TensorRecord& record = store.get(name);
    const auto* begin = static_cast<const uint8_t*>(static_cast<const void*>(record.data));
    renamed.push_back({"language_model." + name, std::string(dtype_name(record.dtype)), record.shape,
                       std::vector<uint8_t>(begin, begin + record.bytes)});
  }
  testing::write_safetensors(wrapped / "model.safetensors", renamed);
  auto plain = load_model(root_ / "int4", *backend_);
  auto kimi = load_model(wrapped, *backend_);
  EXPECT_EQ(kimi->config().checkpoint_prefix, "language_model.");
  EXPECT_LE(max_abs_difference(prompt_logits(*kimi), prompt_logits(*plain)), 0.0f);
}

TEST_F(Int4Experts, ASplitThatCutsAScaleGroupIsRefused) {
  write(32, false);  // TP 4: 16 of the down projection's 64 inputs per rank, half a group
  std::string message;
  try {
    testing::CpuTensorParallelModel split(root_ / "int4", 4, {});
  } catch (const std::exception& error) {
    message = error.what();
  }
  EXPECT_NE(message.find("cut a group of 32 INT4 weights"), std::string::npos) << message;
}

}  // namespace
}  // namespace rackserve
