// The FP8 KV cache (e4m3 + one f32 scale per entry) against the f32 cache on the CPU oracle,
// for every tiny reference model in tests/data/models: a prompt of 112 tokens drawn from
// the vocabulary, prefilled in chunks of 24 over pages of 16 tokens (so later chunks read
// earlier pages from the cache), then 12 decode steps.
//
// e4m3 keeps 3 mantissa bits: a cached entry comes back with ~2.5% relative RMS error (layer
// 0 of every fixture, measured), and these 64-wide models show it in their logits: with the
// same expert routing, the smallest per-position cosine of a run is 0.994-0.9999 (kimi-like
// is the most sensitive: 0.9938 at worst in 150 runs) and the mean over positions >= 0.9994.
// Without it, an expert choice that flips on that noise moves a position's logits to cosine
// 0.7-0.9, which says nothing about the cache. So the FP8 run replays the f32 run's expert
// choices (weights recomputed from its own router scores, as tests/gpu/routing_replay.h
// does for the CUDA backend), and the bounds are: every position >= kMinCosine, the mean
// over positions >= kMinMeanCosine. They are tight enough to see a wrong reader: with every
// scale forced to 1.0, or each entry read with its neighbour's scale, after the prefill, the
// decode steps fall below kMinCosine (neighbour's scale: 0.983 at best in 60 runs).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "backend/cpu/cpu_backend.h"
#include "engine/sequence_runner.h"
#include "models/model.h"
#include "support/fixtures.h"
#include "support/similarity.h"

namespace rackserve {
namespace {

namespace fs = std::filesystem;

constexpr double kMinCosine = 0.99, kMinMeanCosine = 0.999;
constexpr int64_t kPageSize = 16, kPromptTokens = 112, kChunk = 24, kDecodeSteps = 12;

// The dense-MLA fixtures. GQA caches are covered by gqa_model_test; DeepSeek-sparse-attention
// ones by dsa_model_test, since e4m3 indexer keys may swap near-tied positions of the choice,
// which moves logits beyond this test's latent-quantization bounds.
std::vector<std::string> fixture_names() {
  std::vector<std::string> names;
  for (const std::string& name : testing::fixture_names(testing::FixtureKind::Bf16))
    if (const ModelConfig config = ModelConfig::load(testing::fixture_directory(name)); config.is_mla() && !config.indexer)
      names.push_back(name);
  return names;
}

// Records the expert ids of every moe_route call, or replays recorded ones: the replayed
// experts are forced through the router with a correction bias (which steers selection
// only), so their weights come from this run's own router scores.
class RoutingReplayCpuBackend : public CpuBackend {
 public:
  RoutingReplayCpuBackend() : CpuBackend(2) {}

  void record() { replaying_ = false, log_.clear(); }
  void replay() { replaying_ = true, next_ = 0; }
  bool exhausted() const { return next_ == log_.size(); }

  MoeRouting moe_route(const Tensor& router_logits, const Tensor& score_correction_bias,
                       const MoeRouterParams& params) override {
    MoeRouting routing = CpuBackend::moe_route(router_logits, score_correction_bias, params);
    // Slots past the routed top_k (a stacked shared expert) are the same every time.
    const int64_t tokens = router_logits.dim(0), experts = router_logits.dim(1), k = params.top_k;
    const int64_t slots = routing.expert_ids.dim(1);
    int32_t* ids = routing.expert_ids.as<int32_t>();
    if (!replaying_) {
      log_.emplace_back();
      for (int64_t t = 0; t < tokens; ++t) log_.back().insert(log_.back().end(), ids + t * slots, ids + t * slots + k);
      return routing;
    }
    RS_CHECK(next_ < log_.size() && static_cast<int64_t>(log_[next_].size()) == tokens * k, "routing replay out of step");
    const std::vector<int32_t>& recorded = log_[next_++];
    MoeRouterParams forced = params;
    forced.use_correction_bias = true;
    forced.num_groups = forced.top_k_groups = 1;
    for (int64_t t = 0; t < tokens; ++t) {
      std::vector<float> bias(experts, 0.0f);
      for (int64_t j = 0; j < k; ++j) bias[recorded[t * k + j]] = 1e6f;
      Tensor bias_tensor = upload_persistent(Tensor{bias.data(), DType::F32, {experts}, Device{}}, DType::F32);
      MoeRouting one = CpuBackend::moe_route(router_logits.rows(t, t + 1), bias_tensor, forced);
      std::copy_n(one.expert_ids.as<int32_t>(), k, ids + t * slots);
      std::copy_n(one.weights.as<float>(), k, routing.weights.as<float>() + t * slots);
    }
    return routing;
  }

 private:
  bool replaying_ = false;
  size_t next_ = 0;
  std::vector<std::vector<int32_t>> log_;
};

class KvCacheFp8Model : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    backend_ = std::make_unique<RoutingReplayCpuBackend>();
    model_ = load_model(fs::path(RACKSERVE_TEST_DATA_DIR) / "models" / GetParam(), *backend_);
    ASSERT_LE(kPromptTokens + kDecodeSteps, model_->config().max_position_embeddings);
    std::mt19937 rng(std::random_device{}());
    std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(model_->config().vocab_size - 1));
    tokens_.resize(kPromptTokens + kDecodeSteps);
    for (int32_t& t : tokens_) t = token(rng);
  }

  // Logits of every position: the prompt in chunks, then one decode step per token.
  // `corrupt` runs between the prefill and the decode steps.
  std::vector<std::vector<float>> run(std::optional<KvCacheDtype> dtype,
                                      const std::function<void(const PagedKvCache&)>& corrupt = {}) {
    SequenceRunner runner(*model_, static_cast<int64_t>(tokens_.size()), kPageSize, dtype);
    std::vector<int32_t> prompt(tokens_.begin(), tokens_.begin() + kPromptTokens);
    std::vector<std::vector<float>> logits = runner.append(prompt, /*all_logits=*/true, kChunk);
    if (corrupt) corrupt(runner.cache());
    for (size_t i = kPromptTokens; i < tokens_.size(); ++i) logits.push_back(runner.append({tokens_[i]}, false).back());
    return logits;
  }

  // The f32 cache's logits, recording its routing for the FP8 runs.
  std::vector<std::vector<float>> reference() {
    backend_->record();
    return run(std::nullopt);
  }
  std::vector<std::vector<float>> fp8(const std::function<void(const PagedKvCache&)>& corrupt = {}) {
    backend_->replay();
    std::vector<std::vector<float>> logits = run(KvCacheDtype::Fp8, corrupt);
    EXPECT_TRUE(backend_->exhausted());
    return logits;
  }

  std::unique_ptr<RoutingReplayCpuBackend> backend_;
  std::unique_ptr<CausalLM> model_;
  std::vector<int32_t> tokens_;
};

TEST_P(KvCacheFp8Model, LogitsMatchTheF32CacheAtEveryPosition) {
  ASSERT_GE((kPromptTokens + kPageSize - 1) / kPageSize, 4) << "the prompt must span at least 4 pages";
  const auto expected = reference();
  const auto actual = fp8();
  ASSERT_EQ(actual.size(), expected.size());
  double worst = 1.0, total = 0.0;
  for (size_t p = 0; p < expected.size(); ++p) {
    const double c = testing::cosine(actual[p], expected[p]);
    EXPECT_GE(c, kMinCosine) << "position " << p;
    worst = std::isnan(c) || worst < 0 ? -1.0 : std::min(worst, c);
    total += c;
  }
  const double mean = total / static_cast<double>(expected.size());
  EXPECT_GE(mean, kMinMeanCosine);
  std::printf("  %s: cosine fp8 vs f32 cache over %zu positions: min %.6f, mean %.6f\n", GetParam().c_str(),
              expected.size(), worst, mean);
}

// The smallest decode-step cosine when the prompt's scales are corrupted after the prefill.
double worst_decode_cosine(KvCacheFp8Model& test, const std::vector<std::vector<float>>& expected,
                           const std::vector<std::vector<float>>& corrupted) {
  double worst = 1.0;
  for (size_t p = kPromptTokens; p < expected.size(); ++p) {
    const double c = testing::cosine(corrupted[p], expected[p]);
    worst = std::isnan(c) || worst < 0 ? -1.0 : std::min(worst, c);
  }
  std::printf("  %s: ", test.GetParam().c_str());
  return worst;
}

TEST_P(KvCacheFp8Model, ReadersThatMisuseTheScalesFailTheBound) {
  const auto expected = reference();
  Backend& backend = *backend_;
  const auto unscaled = fp8([&](const PagedKvCache& cache) {
    ASSERT_TRUE(cache.fp8());
    backend.fill(cache.scale_storage(), 1.0f);  // every prompt entry reads as its raw e4m3 values
  });
  double worst = worst_decode_cosine(*this, expected, unscaled);
  std::printf("min decode cosine with every scale 1.0: %.6f\n", worst);
  EXPECT_LT(worst, kMinCosine) << "a reader that ignores the scales must fail the bound";

  const auto shifted = fp8([&](const PagedKvCache& cache) {
    float* scales = cache.scale_storage().as<float>();
    std::rotate(scales, scales + 1, scales + cache.scale_storage().numel());  // entry i reads scale i + 1
  });
  worst = worst_decode_cosine(*this, expected, shifted);
  std::printf("min decode cosine with each entry's neighbour's scale: %.6f\n", worst);
  EXPECT_LT(worst, kMinCosine) << "a reader that takes the wrong entry's scale must fail the bound";
}

INSTANTIATE_TEST_SUITE_P(Fixtures, KvCacheFp8Model, ::testing::ValuesIn(fixture_names()), [](const auto& info) {
  std::string name = info.param;
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
});

}  // namespace
}  // namespace rackserve
