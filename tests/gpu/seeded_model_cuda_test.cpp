// The families without transformers fixtures yet on the CUDA backend, on the tiny seeded
// checkpoints of support/: grouped-query attention (GLM-4.x, MiniMax-M2; gqa_checkpoints.h) and
// DeepSeek sparse attention (GLM-5, DeepSeek-V3.2 with index_topk 8; dsa_checkpoints.h). Each
// against the CPU oracle with BF16 weights replaying the GPU's discrete choices (routing_replay.h:
// MoE routing, and the indexer's key positions): a 300-token prompt prefilled in chunks of 100
// (GQA: the tiled prefill kernel; DSA: the indexer's scores and top-k over up to 300 keys, MLA
// over the chosen ones) then 12 decode steps (the split-KV decode kernels), with the bf16 cache
// and with the e4m3 cache; cosine >= 0.9995 at every position, every flip a near-tie. Step
// allocations are poisoned with NaN. (Transformers fixtures of these families, once made, also
// run through model_cuda_test.)
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "engine/sequence_runner.h"
#include "models/model.h"
#include "routing_replay.h"
#include "support/dsa_checkpoints.h"
#include "support/gqa_checkpoints.h"
#include "support/similarity.h"

namespace rackserve {
namespace {

namespace fs = std::filesystem;
using testing::RecordingCudaBackend;
using testing::ReplayingCpuBackend;

constexpr double kMinCosine = 0.9995;  // BF16 activations through a few layers (model_cuda_test's)
// With an e4m3 cache each backend quantizes its own entries, from values that differ by the bf16
// rounding of the activations, so some codes differ by one e4m3 step (2^-3 relative). Measured on
// an H100 on 2026-12-05: min cosine 0.99688 (GLM, GQA), 0.99958 (MiniMax), 0.99758 / 0.99760
// (GLM-5 / V3.2 DSA).
constexpr double kMinCosineE4m3Cache = 0.995;
constexpr double kNearTie = 0.02;  // model_cuda_test's bound on a flipped routing decision
constexpr int64_t kPromptTokens = 300, kChunk = 100, kDecodeSteps = 12;

struct Case {
  std::string name;
  nlohmann::json config;
  std::optional<KvCacheDtype> kv_dtype;
};

class SeededCudaModel : public ::testing::TestWithParam<Case> {};

TEST_P(SeededCudaModel, PrefillAndDecodeMatchTheOracle) {
  ASSERT_TRUE(cuda_device_available()) << "the gpu tests need a CUDA device";
  const Case& c = GetParam();
  const fs::path directory = testing::write_checkpoint(c.name + "-cuda", c.config);
  RecordingCudaBackend gpu(CudaBackendOptions{0, /*poison_step_allocations=*/true});
  auto model = load_model(directory, gpu);
  ReplayingCpuBackend oracle;
  auto oracle_model = load_model(directory, oracle);
  fs::remove_all(directory);

  std::vector<int32_t> tokens(kPromptTokens);
  for (int64_t i = 0; i < kPromptTokens; ++i) tokens[i] = static_cast<int32_t>(2 + (i * 37 + 11) % 380);
  const int64_t capacity = kPromptTokens + kDecodeSteps;
  SequenceRunner runner(*model, capacity, 64, c.kv_dtype);
  auto logits = runner.append(tokens, true, kChunk);
  std::vector<int32_t> generated;
  for (int64_t i = 0; i < kDecodeSteps; ++i) {
    generated.push_back(argmax(logits.back()));
    logits.push_back(runner.append({generated.back()}, false).back());
  }
  oracle.replay(std::move(gpu.log));
  SequenceRunner oracle_runner(*oracle_model, capacity, 64, c.kv_dtype);
  auto expected = oracle_runner.append(tokens, true, kChunk);
  for (int32_t token : generated) expected.push_back(oracle_runner.append({token}, false).back());

  EXPECT_TRUE(oracle.exhausted());
  EXPECT_LE(oracle.stats.worst_deficit, kNearTie) << "a routing flip that is not a near-tie: " << oracle.stats.worst_flip;
  // Indexer choices are adopted and reported, not bounded here: after the first layer the f32
  // oracle's hidden states and the GPU's bf16 ones differ by ~2% (cosine 0.9998), which moves
  // index scores near the cut (on the H100: 69 / 73 of 610 rows flipped, worst deficit 0.05 /
  // 0.12 of a row's largest score; twice that with e4m3 keys). Their effect is bounded by the
  // logits' cosine below; with identical inputs the choice is exact (backend_ops_test).
  if (model->config().indexer) {
    EXPECT_GT(oracle.key_choice_stats.rows, 0) << "the indexer never ranked keys";
  }
  double worst = 1.0;
  for (size_t r = 0; r < logits.size(); ++r) {
    const double cosine = testing::cosine(logits[r], expected[r]);
    worst = std::min(worst, cosine);
    EXPECT_GE(cosine, c.kv_dtype ? kMinCosineE4m3Cache : kMinCosine) << "position " << r;
  }
  std::printf("  %s: min cosine vs the oracle %.6f over %zu positions; %lld/%lld routing flips; %lld/%lld key-choice "
              "flips (worst deficit %.2g)\n",
              c.name.c_str(), worst, logits.size(), static_cast<long long>(oracle.stats.flips),
              static_cast<long long>(oracle.stats.decisions), static_cast<long long>(oracle.key_choice_stats.flips),
              static_cast<long long>(oracle.key_choice_stats.rows), oracle.key_choice_stats.worst_deficit);
}

INSTANTIATE_TEST_SUITE_P(
    Families, SeededCudaModel,
    ::testing::Values(Case{"glm4_moe", testing::glm4_moe_config(), std::nullopt},
                      Case{"minimax_m2", testing::minimax_m2_config(), std::nullopt},
                      Case{"glm4_moe_fp8_cache", testing::glm4_moe_config(), KvCacheDtype::Fp8},
                      Case{"minimax_m2_fp8_cache", testing::minimax_m2_config(), KvCacheDtype::Fp8},
                      Case{"glm_moe_dsa", testing::glm_moe_dsa_config(), std::nullopt},
                      Case{"deepseek_v32", testing::deepseek_v32_config(), std::nullopt},
                      Case{"glm_moe_dsa_fp8_cache", testing::glm_moe_dsa_config(), KvCacheDtype::Fp8},
                      Case{"deepseek_v32_fp8_cache", testing::deepseek_v32_config(), KvCacheDtype::Fp8}),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace rackserve
