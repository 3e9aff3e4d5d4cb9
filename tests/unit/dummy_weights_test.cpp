// `--load-format dummy` on the CPU backend: on every tiny fixture config, every tensor of
// the manifest is generated with its shape, values are a function of the seed and stay
// within their role's range, and the model's forward gives finite logits (also cut to one
// layer). FP8 fixture configs give FP8 linears in the checkpoint's layout (dense with
// --dequantize-fp8). On the real DeepSeek-V3 config only the plan is checked (its weights do
// not fit in host memory): bytes per layer, BF16 and FP8, against hand calculations, and the
// layer-fitting rule.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "core/error.h"
#include "models/dummy_weight_plan.h"
#include "models/layers/checkpoint_weight_source.h"
#include "models/layers/dummy_weight_source.h"
#include "models/model.h"
#include "support/fixtures.h"

namespace rackserve {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> fixture_names() { return testing::fixture_names(testing::FixtureKind::Bf16); }

// The role the model loads a manifest tensor with (for single-tensor loads).
WeightRole role_of(const std::string& name) {
  if (name.ends_with("embed_tokens.weight")) return WeightRole::Embedding;
  if (name.ends_with("norm.weight")) return WeightRole::Norm;
  if (name.ends_with("gate.e_score_correction_bias")) return WeightRole::RouterBias;
  if (name.ends_with("mlp.gate.weight")) return WeightRole::RouterGate;
  if (name.ends_with("kv_b_proj.weight")) return WeightRole::MlaKvB;
  return WeightRole::Linear;
}

class DummyFixture : public ::testing::TestWithParam<std::string> {
 protected:
  fs::path directory() const { return fs::path(RACKSERVE_TEST_DATA_DIR) / "models" / GetParam(); }
  ModelConfig config() const { return ModelConfig::load(directory()); }
  std::unique_ptr<Backend> backend_ = make_cpu_backend(2);
};

TEST_P(DummyFixture, EveryManifestTensorHasItsShapeAndSeededValuesInRange) {
  const ModelConfig c = config();
  DummyWeightSource source(c, *backend_, 7), same(c, *backend_, 7), other(c, *backend_, 8);
  int64_t checked = 0;
  for (const ManifestEntry& entry : source.manifest().entries()) {
    if (entry.optional) continue;
    const WeightRole role = role_of(entry.name);
    ASSERT_TRUE(source.contains(entry.name)) << entry.name;
    Tensor tensor = source.load(entry.name, entry.shape, role);
    EXPECT_EQ(tensor.shape, entry.shape) << entry.name;
    const std::vector<float> values = backend_->download_f32(tensor);
    const std::vector<float> again = backend_->download_f32(same.load(entry.name, entry.shape, role));
    const std::vector<float> reseeded = backend_->download_f32(other.load(entry.name, entry.shape, role));
    EXPECT_EQ(values, again) << entry.name << ": the same seed must give the same values";
    const DummyWeightInit init = dummy_weight_init(role, entry.shape);
    for (float v : values) {
      ASSERT_TRUE(std::isfinite(v)) << entry.name;
      ASSERT_GE(v, init.center - init.scale) << entry.name;
      ASSERT_LE(v, init.center + init.scale) << entry.name;
    }
    if (init.scale > 0.0f) {
      EXPECT_NE(values, reseeded) << entry.name << ": another seed must give other values";
      const auto [low, high] = std::minmax_element(values.begin(), values.end());
      if (values.size() >= 64) {
        EXPECT_GT(*high - *low, init.scale) << entry.name << ": values should spread";
      }
    } else {
      EXPECT_EQ(values, reseeded) << entry.name << ": constant weights do not depend on the seed";
    }
    ++checked;
  }
  EXPECT_GT(checked, 20);
}

TEST_P(DummyFixture, RejectsWhatTheManifestDoesNotHold) {
  const ModelConfig c = config();
  DummyWeightSource source(c, *backend_, 1);
  EXPECT_THROW(source.load("model.norm.weight", {c.hidden_size + 1}, WeightRole::Norm), Error);
  EXPECT_THROW(source.load("model.layers.99.input_layernorm.weight", {c.hidden_size}, WeightRole::Norm), Error);
  EXPECT_THROW(source.check_complete(), Error);  // nothing loaded yet
}

// Finite logits for a prefill of two sequences and a decode step after it.
void expect_finite_forward(CausalLM& model) {
  const int64_t page_size = 4, vocab = model.config().vocab_size;
  PagedKvCache cache = model.allocate_kv_cache(8, page_size);
  ForwardBatch prefill;
  prefill.sequences.push_back({{1, 5, 9, 2, 7}, 0, {0, 1}, true});
  prefill.sequences.push_back({{3, 4, 6}, 0, {2}, false});
  std::vector<float> logits = model.backend().download_f32(model.forward(prefill, cache));
  ASSERT_EQ(static_cast<int64_t>(logits.size()), (5 + 1) * vocab);
  ForwardBatch decode;
  decode.sequences.push_back({{8}, 5, {0, 1}, false});
  decode.sequences.push_back({{0}, 3, {2}, false});
  std::vector<float> step = model.backend().download_f32(model.forward(decode, cache));
  ASSERT_EQ(static_cast<int64_t>(step.size()), 2 * vocab);
  logits.insert(logits.end(), step.begin(), step.end());
  for (float v : logits) ASSERT_TRUE(std::isfinite(v));
  const auto [low, high] = std::minmax_element(logits.begin(), logits.end());
  EXPECT_GT(*high - *low, 1e-3f) << "logits should depend on the weights";
}

TEST_P(DummyFixture, LoadsEveryTensorAndRunsFinite) {
  LoadOptions options;
  options.format = LoadFormat::Dummy;
  std::unique_ptr<CausalLM> model = load_model(directory(), *backend_, options);  // checks completeness
  EXPECT_EQ(model->config().num_layers, config().num_layers);
  expect_finite_forward(*model);
}

TEST_P(DummyFixture, NumLayersCutsDepthAndKeepsTheFirstLayersDense) {
  LoadOptions options;
  options.format = LoadFormat::Dummy;
  options.num_layers = 1;
  std::unique_ptr<CausalLM> model = load_model(directory(), *backend_, options);
  EXPECT_EQ(model->config().num_layers, 1);
  EXPECT_EQ(model->config().is_moe_layer(0), config().is_moe_layer(0));
  expect_finite_forward(*model);

  options.num_layers = config().num_layers + 1;
  EXPECT_THROW(load_model(directory(), *backend_, options), Error);
}

TEST_P(DummyFixture, NumLayersAlsoCutsACheckpoint) {
  if (!fs::exists(directory() / "model.safetensors")) GTEST_SKIP() << "no checkpoint";
  LoadOptions options;
  options.num_layers = 1;
  std::unique_ptr<CausalLM> model = load_model(directory(), *backend_, options);
  EXPECT_EQ(model->config().num_layers, 1);
  expect_finite_forward(*model);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, DummyFixture, ::testing::ValuesIn(fixture_names()),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

// FP8 fixture configs (quantization_config: fp8 block [16, 16] or compressed-tensors channel):
// dummy linears come back as e4m3 values and f32 scales in the layout the checkpoint loader
// gives the same config's checkpoint (also for a tensor-parallel rank, refusing the same
// slices), with dequantized values of the dense dummy's magnitude; the model loads every
// manifest tensor (scales included) and runs to finite logits; --dequantize-fp8 keeps them dense.
class Fp8DummyFixture : public ::testing::TestWithParam<std::string> {
 protected:
  fs::path directory() const { return testing::fixture_directory(GetParam()); }
  std::unique_ptr<Backend> backend_ = make_cpu_backend(2);
};

// The model's linear requests of one MoE layer: o_proj (row split), kv_a (replicated),
// the routed experts' gate/up and down stacked, the shared experts' fused gate/up.
std::vector<LinearRequest> fp8_requests(const ModelConfig& c) {
  int64_t layer = 0;
  while (!c.is_moe_layer(layer)) ++layer;
  const std::string prefix = "model.layers." + std::to_string(layer);
  const int64_t hidden = c.hidden_size, inner = c.moe.expert_intermediate_size;
  std::vector<LinearRequest> requests;
  requests.push_back({{prefix + ".self_attn.o_proj"}, {hidden}, c.mla.num_heads * c.mla.v_head_dim, 1,
                      WeightRole::Linear, TpSplit::Row});
  requests.push_back({{prefix + ".self_attn.kv_a_proj_with_mqa"}, {c.mla.latent_width()}, hidden, 1,
                      WeightRole::Linear, TpSplit::Replicated});
  LinearRequest gate_up{{}, {inner, inner}, hidden, c.moe.num_routed_experts, WeightRole::ExpertGateUp,
                        TpSplit::Column};
  LinearRequest down{{}, {hidden}, inner, c.moe.num_routed_experts, WeightRole::ExpertDown, TpSplit::Row};
  for (int64_t e = 0; e < c.moe.num_routed_experts; ++e) {
    const std::string expert = prefix + ".mlp.experts." + std::to_string(e);
    gate_up.modules.insert(gate_up.modules.end(), {expert + ".gate_proj", expert + ".up_proj"});
    down.modules.push_back(expert + ".down_proj");
  }
  requests.push_back(gate_up);
  requests.push_back(down);
  const int64_t shared = inner * c.moe.num_shared_experts;
  requests.push_back({{prefix + ".mlp.shared_experts.gate_proj", prefix + ".mlp.shared_experts.up_proj"},
                      {shared, shared}, hidden, 1, WeightRole::Linear, TpSplit::Column});
  return requests;
}

TEST_P(Fp8DummyFixture, LinearsAreFp8InTheCheckpointsLayout) {
  const ModelConfig c = ModelConfig::load(directory());
  const WeightStore store = WeightStore::open(directory());
  for (const ShardSpec shard : {ShardSpec{0, 1}, ShardSpec{1, 2}}) {
    DummyWeightSource dummy(c, *backend_, 5, shard);
    CheckpointWeightSource checkpoint(store, *backend_, QuantConfig::load(directory()), Fp8Weights::Native, shard);
    for (const LinearRequest& request : fp8_requests(c)) {
      const std::string what = request.modules.front() + " rank " + std::to_string(shard.rank) + "/" +
                               std::to_string(shard.world);
      LinearWeight expected;
      try {
        expected = checkpoint.load_linear(request);
      } catch (const Error&) {
        EXPECT_THROW(dummy.load_linear(request), Error) << what << ": the checkpoint loader refuses this slice";
        continue;
      }
      const LinearWeight weight = dummy.load_linear(request);
      ASSERT_TRUE(expected.fp8.has_value()) << what;
      ASSERT_TRUE(weight.fp8.has_value()) << what;
      const QuantizedWeight& got = *weight.fp8;
      EXPECT_EQ(got.values.dtype, DType::F8_E4M3) << what;
      EXPECT_EQ(got.values.shape, expected.fp8->values.shape) << what;
      EXPECT_EQ(got.scales.dtype, DType::F32) << what;
      EXPECT_EQ(got.scales.shape, expected.fp8->scales.shape) << what;
      EXPECT_EQ(got.scaling, expected.fp8->scaling) << what;
      EXPECT_EQ(got.block_out, expected.fp8->block_out) << what;
      EXPECT_EQ(got.block_in, expected.fp8->block_in) << what;
      // Scales lie in [0.5, 1.5) x the dense dummy's magnitude s / 448 and differ between
      // entries (so a kernel reading a neighbour's scale is caught); |value| <= 448, so
      // value * scale stays within 1.5 s.
      const float dense_scale = dummy_weight_init(request.role, {got.out_features(), got.in_features()}).scale;
      const std::vector<float> values = backend_->download_f32(got.values);
      const std::vector<float> scales = backend_->download_f32(got.scales);
      float largest_value = 0.0f;
      for (float v : values) largest_value = std::max(largest_value, std::fabs(v));
      EXPECT_LE(largest_value, 448.0f) << what;
      EXPECT_GT(largest_value, 224.0f) << what;
      for (float s : scales) {
        ASSERT_GE(s, 0.5f * dense_scale / 448.0f) << what;
        ASSERT_LT(s, 1.5f * dense_scale / 448.0f) << what;
      }
      if (scales.size() > 1) {
        EXPECT_NE(*std::min_element(scales.begin(), scales.end()), *std::max_element(scales.begin(), scales.end()))
            << what;
      }
    }
  }
}

TEST_P(Fp8DummyFixture, LoadsFp8WeightsAndRunsFinite) {
  const ModelConfig c = ModelConfig::load(directory());
  auto count_fp8 = [](const WeightManifest& manifest) {
    return std::count_if(manifest.entries().begin(), manifest.entries().end(),
                         [](const ManifestEntry& entry) { return entry.dtype == DType::F8_E4M3; });
  };
  EXPECT_GT(count_fp8(DummyWeightSource(c, *backend_, 1).manifest()), 0);
  EXPECT_EQ(count_fp8(DummyWeightSource(c, *backend_, 1, {}, Fp8Weights::Dequantize).manifest()), 0);

  LoadOptions options;
  options.format = LoadFormat::Dummy;
  for (const Fp8Weights fp8 : {Fp8Weights::Native, Fp8Weights::Dequantize}) {
    options.fp8_weights = fp8;
    std::unique_ptr<CausalLM> model = load_model(directory(), *backend_, options);  // every scale requested
    expect_finite_forward(*model);
  }
}

INSTANTIATE_TEST_SUITE_P(Fp8Fixtures, Fp8DummyFixture,
                         ::testing::ValuesIn(testing::fixture_names(testing::FixtureKind::Fp8)),
                         [](const auto& info) { return testing::fixture_test_name(info.param); });

TEST(LoadFormat, ParsesTheCliNames) {
  EXPECT_EQ(parse_load_format("auto"), LoadFormat::Safetensors);
  EXPECT_EQ(parse_load_format("safetensors"), LoadFormat::Safetensors);
  EXPECT_EQ(parse_load_format("dummy"), LoadFormat::Dummy);
  EXPECT_THROW(parse_load_format("gguf"), Error);
}

// DeepSeek-V3 (61 layers, the first 3 dense), BF16 bytes:
//   attention: q_a 1536x7168 + q_a_norm 1536 + q_b (128*192)x1536 + kv_a 576x7168
//              + kv_a_norm 512 + kv_b (128*256)x512 + o 7168x(128*128)
//   layer norms 2x7168; dense MLP 3 x 18432x7168;
//   MoE: router 256x7168 (bf16) + bias 256 (f32) + shared expert 3 x 2048x7168,
//        routed 256 experts x 3 x 2048x7168.
TEST(DummyPlan, DeepSeekV3BytesPerLayerWithoutAllocating) {
  const fs::path directory = fs::path(RACKSERVE_SHARED_MODELS_DIR) / "deepseek-v3";
  if (!fs::exists(directory / "config.json")) GTEST_SKIP() << "no " << directory;
  const ModelConfig full = ModelConfig::load(directory);
  // --dequantize-fp8: the config's fp8 quantization_config expanded to dense BF16.
  const DummyWeightPlan plan = plan_dummy_weights(with_layers_cut(full, 4), Fp8Weights::Dequantize);
  ASSERT_EQ(plan.layers.size(), 4u);

  const uint64_t attention = 1536ull * 7168 + 1536 + 128ull * 192 * 1536 + 576ull * 7168 + 512 + 128ull * 256 * 512 +
                             7168ull * 128 * 128;
  const uint64_t norms = 2ull * 7168;
  EXPECT_EQ(plan.embedding, 129280ull * 7168 * 2);
  EXPECT_EQ(plan.head, (129280ull * 7168 + 7168) * 2);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(plan.layers[i].read_every_step, (attention + norms + 3ull * 18432 * 7168) * 2) << i;
    EXPECT_EQ(plan.layers[i].routed_experts, 0u) << i;
  }
  EXPECT_EQ(plan.layers[3].read_every_step, (attention + norms + 256ull * 7168 + 3ull * 2048 * 7168) * 2 + 256 * 4);
  EXPECT_EQ(plan.layers[3].routed_experts, 256ull * 3 * 2048 * 7168 * 2);
  EXPECT_EQ(plan.layers[3].bytes_per_expert(), 3ull * 2048 * 7168 * 2);
  EXPECT_EQ(plan.total(), plan.embedding + plan.head + 3 * plan.layers[0].total() + plan.layers[3].total());

  // Cutting depth keeps every layer's bytes: the full plan's first 4 layers are these.
  const DummyWeightPlan whole = plan_dummy_weights(full, Fp8Weights::Dequantize);
  ASSERT_EQ(whole.layers.size(), 61u);
  EXPECT_EQ(whole.total_of_first(4), plan.total());
  EXPECT_EQ(layers_that_fit(whole, plan.total()), 4);
  EXPECT_EQ(layers_that_fit(whole, plan.total() - 1), 3);
  EXPECT_EQ(layers_that_fit(whole, plan.embedding + plan.head - 1), 0);
  EXPECT_EQ(layers_that_fit(whole, whole.total()), 61);
  // About 671B parameters with the MTP layer; the main model alone is ~1.31 TB in BF16.
  EXPECT_GT(whole.total(), 1.25e12);
  EXPECT_LT(whole.total(), 1.36e12);
  EXPECT_THROW(with_layers_cut(full, 62), Error);
}

// The same config as loaded by default (W8A8): every projection e4m3 (1 byte per value) with
// one f32 scale per 128x128 block, kv_b_proj excepted (kept dense BF16 for the absorbed
// attention); embeddings, norms, router and lm_head BF16, the correction bias f32.
TEST(DummyPlan, DeepSeekV3Fp8BytesPerLayer) {
  const fs::path directory = fs::path(RACKSERVE_SHARED_MODELS_DIR) / "deepseek-v3";
  if (!fs::exists(directory / "config.json")) GTEST_SKIP() << "no " << directory;
  const ModelConfig full = ModelConfig::load(directory);
  const DummyWeightPlan plan = plan_dummy_weights(with_layers_cut(full, 4));
  ASSERT_EQ(plan.layers.size(), 4u);
  auto fp8 = [](uint64_t out, uint64_t in) { return out * in + (out + 127) / 128 * ((in + 127) / 128) * 4; };
  const uint64_t attention = fp8(1536, 7168) + fp8(128 * 192, 1536) + fp8(576, 7168) + 128ull * 256 * 512 * 2 +
                             fp8(7168, 128 * 128) + (1536 + 512) * 2;
  const uint64_t norms = 2ull * 7168 * 2;
  EXPECT_EQ(plan.embedding, 129280ull * 7168 * 2);
  EXPECT_EQ(plan.head, (129280ull * 7168 + 7168) * 2);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(plan.layers[i].read_every_step, attention + norms + 2 * fp8(18432, 7168) + fp8(7168, 18432)) << i;
    EXPECT_EQ(plan.layers[i].routed_experts, 0u) << i;
  }
  const uint64_t expert = 2 * fp8(2048, 7168) + fp8(7168, 2048);
  EXPECT_EQ(plan.layers[3].read_every_step, attention + norms + 256ull * 7168 * 2 + 256 * 4 + expert);
  EXPECT_EQ(plan.layers[3].routed_experts, 256 * expert);
  EXPECT_EQ(plan.layers[3].bytes_per_expert(), expert);
  // About 671B parameters, the main model ~0.69 TB as loaded in FP8.
  const DummyWeightPlan whole = plan_dummy_weights(full);
  EXPECT_GT(whole.total(), 0.6e12);
  EXPECT_LT(whole.total(), 0.75e12);
}

// Kimi-K2.5 as shipped: routed experts INT4 in groups of 32 (4-bit codes + one bf16 scale per
// 32 inputs: 0.5625 bytes per value), the rest BF16 (the config's ignore list).
TEST(DummyPlan, KimiK25Int4ExpertsBytesPerLayer) {
  const fs::path directory = fs::path(RACKSERVE_SHARED_MODELS_DIR) / "kimi-k2.5";
  if (!fs::exists(directory / "config.json")) GTEST_SKIP() << "no " << directory;
  const DummyWeightPlan plan = plan_dummy_weights(with_layers_cut(ModelConfig::load(directory), 2));
  ASSERT_EQ(plan.layers.size(), 2u);
  // Per expert: gate and up [2048, 7168] and down [7168, 2048]: 3 x 2048 x 7168 / 2 bytes of
  // codes = 22,020,096, scales (2 x 2048 x 224 + 7168 x 64) x 2 = 2,752,512 bytes.
  EXPECT_EQ(plan.layers[1].bytes_per_expert(), 22020096ull + 2752512ull);
  EXPECT_EQ(plan.layers[1].routed_experts, 384ull * (22020096ull + 2752512ull));
  EXPECT_EQ(plan.layers[0].routed_experts, 0u);
}

// A compressed-tensors (channel) config: its checkpoint stores bf16 weight_scale, loaded
// (and generated) as f32, so the plan counts 4 bytes per scale row.
TEST(DummyPlan, ChannelScalesCountAsLoadedF32) {
  const ModelConfig c = ModelConfig::load(testing::fixture_directory("dsv3-qlora-yarn-groups-fp8-channel"));
  const DummyWeightPlan plan = plan_dummy_weights(c);
  int64_t layer = 0;
  while (!c.is_moe_layer(layer)) ++layer;
  const uint64_t hidden = c.hidden_size, inner = c.moe.expert_intermediate_size;
  const uint64_t expert = 2 * (inner * hidden + inner * 4) + (hidden * inner + hidden * 4);
  EXPECT_EQ(plan.layers[layer].bytes_per_expert(), expert);
  EXPECT_EQ(plan.layers[layer].routed_experts, expert * c.moe.num_routed_experts);
}

}  // namespace
}  // namespace rackserve
