// Loading FP8 checkpoints. A tiny DeepSeek-V3 fixture is quantized here into both FP8
// formats (DeepSeek `fp8` blocks with f32 weight_scale_inv; compressed-tensors per-channel
// with bf16 weight_scale), written as safetensors with its config.json, loaded on the CPU
// backend and run; the same model with those weights dequantized to f32 is the W8A16
// reference. Also: loaded FP8 weights equal the dequantized tensors value for value, the
// format rules the loader enforces, and every real FP8 config under the shared models
// parses into the right per-module decisions.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "core/dtype.h"
#include "models/layers/checkpoint_weight_source.h"
#include "models/model.h"
#include "support/fp8_checkpoint_writer.h"
#include "support/safetensors_writer.h"
#include "support/shared_models.h"
#include "weights/quant_config.h"
#include "weights/safetensors.h"

namespace rackserve {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::error_of;

const fs::path kFixture = fs::path(RACKSERVE_TEST_DATA_DIR) / "models" / "dsv3-qlora-yarn-groups";

using testing::write_safetensors;

using Layout = testing::Fp8Layout;

// Writes `directory` as the fixture quantized in `layout` (blocks [block_out, block_in]) and
// `dequantized` as the same model with those FP8 weights expanded to f32 (no quantization).
void write_checkpoints(Layout layout, int64_t block_out, int64_t block_in, const fs::path& directory,
                       const fs::path& dequantized) {
  WeightStore store = WeightStore::open(kFixture / "model.safetensors");
  const testing::QuantizedCheckpoint quantized = testing::quantize_checkpoint(store, layout, block_out, block_in);
  std::ifstream config_stream(kFixture / "config.json");
  json config = json::parse(config_stream);
  // Every token goes to all 8 experts: a quantization-noise flip of the top-2 choice is a
  // jump no error bound covers (seen on this fixture: 2 of 12 positions at relative error
  // ~1). With every expert chosen, only the continuous routing weights move.
  config["num_experts_per_tok"] = config["n_routed_experts"];
  config["n_group"] = 1;
  config["topk_group"] = 1;
  for (const fs::path& dir : {directory, dequantized}) {
    fs::create_directories(dir);
    std::ofstream(dir / "config.json") << config.dump(2);
  }
  config["quantization_config"] = testing::fp8_quantization_config(layout, block_out, block_in);
  std::ofstream(directory / "config.json") << config.dump(2);
  write_safetensors(directory / "model.safetensors", quantized.fp8);
  write_safetensors(dequantized / "model.safetensors", quantized.expanded);
}

class Fp8Checkpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("rackserve_fp8_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // Logits of every position of one prompt.
  std::vector<float> logits(const fs::path& directory) {
    std::unique_ptr<CausalLM> model = load_model(directory, *backend_);
    PagedKvCache cache = model->allocate_kv_cache(4, 16);
    ForwardBatch batch;
    batch.sequences.push_back({{3, 17, 250, 9, 101, 44, 7, 480, 12, 66, 5, 301}, 0, {0}, true});
    return backend_->download_f32(model->forward(batch, cache));
  }

  void expect_within_w8a8_bound(Layout layout, int64_t block_out, int64_t block_in) {
    write_checkpoints(layout, block_out, block_in, root_ / "fp8", root_ / "dequantized");
    std::vector<float> w8a8 = logits(root_ / "fp8"), w8a16 = logits(root_ / "dequantized");
    ASSERT_EQ(w8a8.size(), w8a16.size());
    const size_t vocab = 512, positions = w8a8.size() / vocab;
    double difference = 0.0, reference = 0.0, dot = 0.0, norm = 0.0, worst_position = 0.0;
    for (size_t p = 0; p < positions; ++p) {
      double position_difference = 0.0, position_reference = 0.0;
      for (size_t i = p * vocab; i < (p + 1) * vocab; ++i) {
        ASSERT_TRUE(std::isfinite(w8a8[i]));
        position_difference += (w8a8[i] - w8a16[i]) * double(w8a8[i] - w8a16[i]);
        position_reference += double(w8a16[i]) * w8a16[i];
        dot += double(w8a8[i]) * w8a16[i];
        norm += double(w8a8[i]) * w8a8[i];
      }
      difference += position_difference;
      reference += position_reference;
      worst_position = std::max(worst_position, std::sqrt(position_difference / position_reference));
    }
    const double relative = std::sqrt(difference / reference);
    // The bound. Quantizing one activation element to e4m3 moves it by at most 2^-4 of its
    // value (3 mantissa bits; fp8_linear_test checks this per product), so each quantized
    // linear perturbs its output by at most 2^-4 relative in L2. A token's path crosses 6
    // quantized activations per layer (q_a, q_b, kv_a, o_proj, gate_up, down; shared and
    // routed experts see the same input) over 3 layers; the residual stream and RMSNorm
    // keep the perturbations additive, and independent rounding adds them in quadrature:
    // sqrt(18) * 2^-4 = 0.265.
    EXPECT_LT(worst_position, std::sqrt(18.0) / 16.0);
    EXPECT_LT(relative, std::sqrt(18.0) / 16.0);
    EXPECT_GT(relative, 0.0) << "identical logits: activations were not quantized";
    RecordProperty("relative_l2", std::to_string(relative));
    RecordProperty("cosine", std::to_string(dot / std::sqrt(norm * reference)));
    std::printf("W8A8 vs W8A16 logits: relative L2 %.4f (worst position %.4f), cosine %.6f\n", relative,
                worst_position, dot / std::sqrt(norm * reference));
  }

  fs::path root_;
  std::unique_ptr<Backend> backend_ = make_cpu_backend(2);
};

TEST_F(Fp8Checkpoint, DeepSeekBlockFormatRunsWithinTheW8A8Bound) {
  // Blocks [32, 16] fit the fixture's widths (64, 48, 32, 128); 48-row q_a / kv_a leave a
  // ragged last row block, as DeepSeek-V3's 576-row kv_a_proj_with_mqa does.
  expect_within_w8a8_bound(Layout::Block, 32, 16);
}

TEST_F(Fp8Checkpoint, CompressedTensorsChannelFormatRunsWithinTheW8A8Bound) {
  expect_within_w8a8_bound(Layout::Channel, 0, 0);
}

TEST_F(Fp8Checkpoint, BlockWidthThatIsNotWholeActivationGroupsIsRejected) {
  write_checkpoints(Layout::Block, 32, 128, root_ / "fp8", root_ / "dequantized");  // inputs 64 < 128
  EXPECT_NE(error_of([&] { load_model(root_ / "fp8", *backend_); }).find("is not a multiple of the FP8 block width 128"),
            std::string::npos);
}

TEST_F(Fp8Checkpoint, FusedPiecesMustFillWholeRowBlocks) {
  write_checkpoints(Layout::Block, 48, 16, root_ / "fp8", root_ / "dequantized");  // gate_proj: 128 rows
  EXPECT_NE(error_of([&] { load_model(root_ / "fp8", *backend_); }).find("do not fill whole FP8 blocks of 48 rows"),
            std::string::npos);
}

TEST_F(Fp8Checkpoint, ConfigThatDisagreesWithTheTensorsNamesTheTensor) {
  write_checkpoints(Layout::Block, 32, 16, root_ / "fp8", root_ / "dequantized");
  // The bf16 checkpoint under a config that says fp8.
  fs::copy_file(root_ / "fp8" / "config.json", root_ / "dequantized" / "config.json",
                fs::copy_options::overwrite_existing);
  EXPECT_NE(error_of([&] { load_model(root_ / "dequantized", *backend_); }).find("has dtype F32, but fp8"),
            std::string::npos);
}

// Every value of a fused, expert-stacked FP8 weight as loaded (code * its scale) equals the
// dequantized checkpoint tensor it came from: scales follow their rows through the
// gate/up concatenation, the expert stacking and a ragged last row block. The same for
// kv_b_proj, which the loader dequantizes.
void expect_loaded_exactly(Layout layout, int64_t block_out, int64_t block_in, const fs::path& root) {
  write_checkpoints(layout, block_out, block_in, root / "fp8", root / "dequantized");
  auto backend = make_cpu_backend(1);
  WeightStore store = WeightStore::open(root / "fp8"), expanded = WeightStore::open(root / "dequantized");
  CheckpointWeightSource source(store, *backend, QuantConfig::load(root / "fp8"));
  auto check = [&](const LinearRequest& request) {
    SCOPED_TRACE(request.modules.front());
    LinearWeight loaded = source.load_linear(request);
    ASSERT_TRUE(loaded.fp8.has_value());
    const QuantizedWeight& w = *loaded.fp8;
    const int64_t rows = w.out_features(), cols = w.in_features(), pieces = static_cast<int64_t>(request.rows.size());
    const int64_t scale_rows = layout == Layout::Block ? (rows + block_out - 1) / block_out : rows;
    const int64_t scale_cols = layout == Layout::Block ? cols / block_in : 1;
    for (int64_t m = 0; m < request.matrices; ++m) {
      int64_t row = 0;
      for (int64_t piece = 0; piece < pieces; ++piece) {
        const TensorRecord& record = expanded.get(request.modules[m * pieces + piece] + ".weight");
        const float* reference = static_cast<const float*>(static_cast<const void*>(record.data));
        for (int64_t r = 0; r < request.rows[piece]; ++r, ++row)
          for (int64_t c = 0; c < cols; ++c) {
            const int64_t scale_index = layout == Layout::Block ? (row / block_out) * scale_cols + c / block_in : row;
            const float value = e4m3_to_f32(w.values.as<uint8_t>()[(m * rows + row) * cols + c]) *
                                w.scales.as<float>()[m * scale_rows * scale_cols + scale_index];
            ASSERT_EQ(value, reference[r * cols + c]) << "matrix " << m << " row " << row << " col " << c;
          }
      }
    }
  };
  LinearRequest experts{{}, {32, 32}, 64, 8, WeightRole::ExpertGateUp};
  for (int e = 0; e < 8; ++e)
    for (const char* projection : {"gate_proj", "up_proj"})
      experts.modules.push_back(fmt::format("model.layers.1.mlp.experts.{}.{}", e, projection));
  check(experts);
  check({{"model.layers.0.mlp.gate_proj", "model.layers.0.mlp.up_proj"}, {128, 128}, 64, 1, WeightRole::Linear});
  check({{"model.layers.2.self_attn.kv_a_proj_with_mqa"}, {48}, 64, 1, WeightRole::Linear});  // 48 rows: ragged

  // kv_b_proj is asked for dense (absorbed into attention): dequantized at load.
  const std::string kv_b = "model.layers.1.self_attn.kv_b_proj.weight";
  std::vector<float> dequantized = backend->download_f32(source.load(kv_b, {256, 32}, WeightRole::MlaKvB));
  const float* reference = static_cast<const float*>(static_cast<const void*>(expanded.get(kv_b).data));
  for (size_t i = 0; i < dequantized.size(); ++i) ASSERT_EQ(dequantized[i], reference[i]) << kv_b << " element " << i;
}

TEST_F(Fp8Checkpoint, BlockScalesFollowTheirRowsThroughFusingAndStacking) {
  expect_loaded_exactly(Layout::Block, 32, 16, root_);
}

TEST_F(Fp8Checkpoint, ChannelScalesFollowTheirRowsThroughFusingAndStacking) {
  expect_loaded_exactly(Layout::Channel, 0, 0, root_);
}

// ---- every real FP8 config ----------------------------------------------------------

TEST(RealFp8Configs, KeepTheRightModulesDense) {
  int checked = 0;
  for (const auto& entry : fs::directory_iterator(testing::kSharedModels)) {
    if (!fs::exists(entry.path() / "config.json")) continue;
    QuantConfig quant = QuantConfig::load(entry.path());
    const json config = testing::read_shared_json(entry.path().filename().string() + "/config.json");
    const std::string model_type = config.value("model_type", "");
    const bool minimax = model_type.find("minimax") != std::string::npos;
    const int64_t dense_layers = config.value("first_k_dense_replace", 0);
    const std::string moe = fmt::format("model.layers.{}.{}", dense_layers, minimax ? "block_sparse_moe" : "mlp");
    const std::string expert_down = moe + (minimax ? ".experts.0.w2" : ".experts.0.down_proj");
    if (quant.linear(expert_down).format != WeightFormat::Fp8Block &&
        quant.linear(expert_down).format != WeightFormat::Fp8Channel)
      continue;  // not an FP8 checkpoint
    SCOPED_TRACE(entry.path().filename().string());
    ++checked;
    const LinearScheme& expert = quant.linear(expert_down);
    EXPECT_EQ(expert.format, WeightFormat::Fp8Block);  // every real one is DeepSeek-style
    EXPECT_EQ(expert.block_out, 128);
    EXPECT_EQ(expert.block_in, 128);
    EXPECT_EQ(expert.scale_name, "weight_scale_inv");
    EXPECT_EQ(expert.scale_dtype, DType::F32);
    auto format = [&](const std::string& module) { return quant.linear(module).format; };
    const std::string layer = fmt::format("model.layers.{}", dense_layers);
    EXPECT_EQ(format(moe + (minimax ? ".experts.5.w1" : ".experts.5.gate_proj")), WeightFormat::Fp8Block);
    EXPECT_EQ(format(layer + ".self_attn.o_proj"), WeightFormat::Fp8Block);
    EXPECT_EQ(format(moe + ".gate"), WeightFormat::Dense);  // router
    EXPECT_EQ(format("lm_head"), WeightFormat::Dense);
    EXPECT_EQ(format("model.embed_tokens"), WeightFormat::Dense);
    EXPECT_EQ(format("model.norm"), WeightFormat::Dense);
    EXPECT_EQ(format(layer + ".input_layernorm"), WeightFormat::Dense);
    if (!minimax) {
      EXPECT_EQ(format(layer + ".self_attn.kv_b_proj"), WeightFormat::Fp8Block);  // dequantized at load
      EXPECT_EQ(format(layer + ".self_attn.kv_a_layernorm"), WeightFormat::Dense);
      EXPECT_EQ(format(moe + ".shared_experts.down_proj"), WeightFormat::Fp8Block);
      if (dense_layers > 0) {
        EXPECT_EQ(format("model.layers.0.mlp.down_proj"), WeightFormat::Fp8Block);
      }
      const int64_t mtp = config.value("num_hidden_layers", 0);  // the MTP layer follows the last one
      EXPECT_EQ(format(fmt::format("model.layers.{}.eh_proj", mtp)), WeightFormat::Dense);
      EXPECT_EQ(format(fmt::format("model.layers.{}.shared_head.head", mtp)), WeightFormat::Dense);
    }
  }
  // deepseek-v3, -r1, -v3.2, glm-5-fp8, glm-5.1-fp8, kimi-k2, minimax-m2.5, -m2.7.
  EXPECT_GE(checked, 8);
}

}  // namespace
}  // namespace rackserve
