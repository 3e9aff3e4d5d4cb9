// `--load-format dummy` on the CUDA backend, and the backend's op profiler: dummy weights
// generated on the GPU equal the CPU backend's rounded to BF16 (the same seed gives the same
// model on both); a dummy fixture model runs to finite logits; a backend made with
// profile_ops times every op of a step per label, records nothing while disabled, and a
// plain backend has no profiler. FP8 dummy weights (e4m3 + scales) are the CPU's too.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/profiling_cuda_backend.h"
#include "core/dtype.h"
#include "models/layers/dummy_weight_source.h"
#include "models/model.h"

namespace rackserve {
namespace {

namespace fs = std::filesystem;

fs::path fixture(const std::string& name) { return fs::path(RACKSERVE_TEST_DATA_DIR) / "models" / name; }

TEST(DummyWeightsCuda, GpuValuesAreTheCpuValuesInBf16) {
  ASSERT_TRUE(cuda_device_available()) << "the gpu tests need a CUDA device";
  const ModelConfig config = ModelConfig::load(fixture("dsv3-qlora-yarn-groups"));
  auto cpu = make_cpu_backend(2);
  auto gpu = make_cuda_backend(CudaBackendOptions{});
  DummyWeightSource on_cpu(config, *cpu, 11), on_gpu(config, *gpu, 11);
  const std::vector<std::string> names = {"model.layers.0.self_attn.q_b_proj.weight", "model.embed_tokens.weight",
                                          "model.layers.1.mlp.gate.e_score_correction_bias",
                                          "model.layers.1.input_layernorm.weight"};
  const std::vector<WeightRole> roles = {WeightRole::Linear, WeightRole::Embedding, WeightRole::RouterBias,
                                         WeightRole::Norm};
  for (size_t i = 0; i < names.size(); ++i) {
    const ManifestEntry* entry = on_cpu.manifest().find(names[i]);
    ASSERT_NE(entry, nullptr) << names[i];
    const std::vector<float> expected = cpu->download_f32(on_cpu.load(names[i], entry->shape, roles[i]));
    Tensor on_device = on_gpu.load(names[i], entry->shape, roles[i]);
    const std::vector<float> actual = gpu->download_f32(on_device);
    ASSERT_EQ(actual.size(), expected.size());
    const bool bf16 = on_device.dtype == DType::BF16;
    for (size_t j = 0; j < actual.size(); ++j)
      ASSERT_EQ(actual[j], bf16 ? bf16_to_f32(f32_to_bf16(expected[j])) : expected[j]) << names[i] << " [" << j << "]";
  }
}

TEST(DummyWeightsCuda, FixtureModelRunsFiniteAndTheProfilerTimesEveryOp) {
  ASSERT_TRUE(cuda_device_available()) << "the gpu tests need a CUDA device";
  CudaBackendOptions options;
  options.profile_ops = true;
  auto gpu = make_cuda_backend(options);
  OpProfiler* profiler = op_profiler(*gpu);
  ASSERT_NE(profiler, nullptr);
  auto plain = make_cuda_backend(CudaBackendOptions{});
  EXPECT_EQ(op_profiler(*plain), nullptr);

  LoadOptions load;
  load.format = LoadFormat::Dummy;
  std::unique_ptr<CausalLM> model = load_model(fixture("dsv3-qlora-yarn-groups"), *gpu, load);
  PagedKvCache cache = model->allocate_kv_cache(4, 16);
  ForwardBatch batch;
  batch.sequences.push_back({{1, 2, 3, 4, 5}, 0, {0}, true});
  batch.sequences.push_back({{6, 7}, 0, {1}, false});

  profiler->set_enabled(false);
  model->forward(batch, cache);
  EXPECT_TRUE(profiler->collect().empty()) << "a disabled profiler records nothing";

  profiler->set_enabled(true);
  const std::vector<float> logits = gpu->download_f32(model->forward(batch, cache));
  profiler->set_enabled(false);
  for (float v : logits) ASSERT_TRUE(std::isfinite(v));
  const std::vector<OpTiming> timings = profiler->collect();
  int64_t moe_calls = 0, linear_calls = 0, attention_calls = 0;
  for (const OpTiming& timing : timings) {
    EXPECT_GT(timing.calls, 0) << timing.label;
    EXPECT_GE(timing.milliseconds, 0.0) << timing.label;
    if (timing.label.starts_with("moe_experts")) moe_calls += timing.calls;
    if (timing.label.starts_with("linear")) linear_calls += timing.calls;
    if (timing.label.starts_with("mla_attention")) attention_calls += timing.calls;
  }
  const ModelConfig& config = model->config();
  int64_t moe_layers = 0;
  for (int64_t layer = 0; layer < config.num_layers; ++layer) moe_layers += config.is_moe_layer(layer);
  EXPECT_EQ(moe_calls, moe_layers);
  EXPECT_EQ(attention_calls, config.num_layers);
  EXPECT_GE(linear_calls, 4 * config.num_layers);
  EXPECT_TRUE(std::is_sorted(timings.begin(), timings.end(),
                             [](const OpTiming& a, const OpTiming& b) { return a.milliseconds > b.milliseconds; }));
}

// An FP8 config (the channel-scaled fixture: the CUDA kernels take its widths; the block
// fixtures' 16-wide blocks they do not): e4m3 values and scales generated on the GPU are the
// CPU's, and the dummy model runs W8A8 to finite logits.
TEST(DummyWeightsCuda, Fp8WeightsAreTheCpuValuesAndRunFinite) {
  ASSERT_TRUE(cuda_device_available()) << "the gpu tests need a CUDA device";
  const std::string name = "dsv3-qlora-yarn-groups-fp8-channel";
  const ModelConfig config = ModelConfig::load(fixture(name));
  auto cpu = make_cpu_backend(2);
  auto gpu = make_cuda_backend(CudaBackendOptions{});
  DummyWeightSource on_cpu(config, *cpu, 11), on_gpu(config, *gpu, 11);
  const std::string prefix = "model.layers.1";
  ASSERT_TRUE(config.is_moe_layer(1));
  const int64_t inner = config.moe.expert_intermediate_size;
  LinearRequest experts{{}, {inner, inner}, config.hidden_size, config.moe.num_routed_experts, WeightRole::ExpertGateUp,
                        TpSplit::Column};
  for (int64_t e = 0; e < config.moe.num_routed_experts; ++e) {
    experts.modules.push_back(prefix + ".mlp.experts." + std::to_string(e) + ".gate_proj");
    experts.modules.push_back(prefix + ".mlp.experts." + std::to_string(e) + ".up_proj");
  }
  const LinearRequest o_proj{{prefix + ".self_attn.o_proj"}, {config.hidden_size},
                             config.mla.num_heads * config.mla.v_head_dim, 1, WeightRole::Linear, TpSplit::Row};
  for (const LinearRequest& request : {experts, o_proj}) {
    const LinearWeight expected = on_cpu.load_linear(request), actual = on_gpu.load_linear(request);
    ASSERT_TRUE(expected.fp8 && actual.fp8) << request.modules.front();
    const std::string& what = request.modules.front();
    EXPECT_EQ(gpu->download_f32(actual.fp8->values), cpu->download_f32(expected.fp8->values)) << what;
    EXPECT_EQ(gpu->download_f32(actual.fp8->scales), cpu->download_f32(expected.fp8->scales)) << what;
  }

  LoadOptions load;
  load.format = LoadFormat::Dummy;
  std::unique_ptr<CausalLM> model = load_model(fixture(name), *gpu, load);
  PagedKvCache cache = model->allocate_kv_cache(4, 16);
  ForwardBatch batch;
  batch.sequences.push_back({{1, 2, 3, 4, 5}, 0, {0}, true});
  batch.sequences.push_back({{6, 7}, 0, {1}, false});
  const std::vector<float> logits = gpu->download_f32(model->forward(batch, cache));
  for (float v : logits) ASSERT_TRUE(std::isfinite(v));
}

}  // namespace
}  // namespace rackserve
