// The FP8 fixtures run W8A8 on the CUDA backend (FP8 linear kernels, fused FP8 MoE) against
// the CPU oracle running W8A8 too, both loaded natively (e4m3 values + scales), the oracle
// replaying the GPU's MoE routing (routing_replay.h) and rounding its activations and dense
// weights to BF16 where the CUDA backend stores BF16 (e4m3 quantization turns any BF16-level
// difference into whole e4m3 steps: without that the logits parted at cosine ~0.998 on the H200). At every position of every reference
// prompt the logits agree to cosine >= 0.9999; the one acceptable exception is a position
// where the router flipped an expert on a near-tie (the flip is printed with its score
// deficit). Greedy continuations are the oracle's argmax path until the first routing flip,
// a near-argmax path after it. Step allocations are poisoned with NaN.
// The FP8 fixtures' 64-wide layers only allow 16x16 blocks, which the CUDA kernels do not
// take (they take DeepSeek's 128-wide blocks), so the block layout runs end to end on a
// dummy model instead: the fixture's architecture widened to 128-multiples, FP8 block
// [128, 128] dummy weights (the same values on both backends), random prompts.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "engine/sequence_runner.h"
#include "models/model.h"
#include "op_trace.h"
#include "routing_replay.h"
#include "support/fixtures.h"
#include "support/fp8_block_model.h"
#include "support/similarity.h"
#include "support/test_random.h"
#include "weights/quant_config.h"
#include "weights/safetensors.h"

namespace rackserve {
namespace {

namespace fs = std::filesystem;
using TracedCudaBackend = testing::Tracing<testing::RecordingCudaBackend>;
using TracedOracle = testing::Tracing<testing::ReplayingCpuBackend>;

// Both sides quantize every linear's input to e4m3 per 128-column group (block) or per
// token (channel), from BF16-rounded activations and weights (the oracle rounds where the CUDA
// backend stores BF16: bf16_activations_cpu_backend.h); what differs is float32 summation order,
// and the e4m3 codes it moves across a rounding midpoint, which the oracle adopts from the GPU
// as near-ties (quantization_replay.h), as it adopts the GPU's routing (routing_replay.h).
constexpr double kMinCosine = 0.9999;
// Summed selection scores of the replayed experts within this of the oracle's optimum.
constexpr double kNearTie = 0.02;
// The FP8 block width the CUDA kernels support (cuda_fp8_ops.cpp checks it at load).
constexpr int64_t kCudaBlockIn = 128;
// After a routing flip the paths may part: the GPU's token within this of the oracle's max.
constexpr float kNearArgmax = 0.05f;

// The parameter naming the dummy block-layout model (not a fixture directory).
constexpr const char* kDummyBlockModel = "dummy-dsv3-fp8-block128";

int32_t argmax(const std::vector<float>& row) {
  return static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
}

class CudaFp8Model : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(cuda_device_available()) << "the gpu tests need a CUDA device";
    gpu_ = std::make_unique<TracedCudaBackend>(CudaBackendOptions{0, /*poison_step_allocations=*/true});
    oracle_ = std::make_unique<TracedOracle>(/*bf16_activations=*/true);
    if (GetParam() == kDummyBlockModel) {
      const fs::path directory = testing::write_fp8_block_model_config({});
      LoadOptions options;
      options.format = LoadFormat::Dummy;
      model_ = load_model(directory, *gpu_, options);
      oracle_model_ = load_model(directory, *oracle_, options);
      fs::remove_all(directory);
      std::mt19937_64 rng(testing::run_seed());
      std::printf("  %s: prompts from seed %llu\n", kDummyBlockModel, static_cast<unsigned long long>(testing::run_seed()));
      std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(vocab() - 1));
      for (size_t length : {1, 5, 33, 70}) {
        std::vector<int32_t> tokens(length);
        for (int32_t& t : tokens) t = token(rng);
        random_prompts_.push_back(std::move(tokens));
      }
      prompts_ = random_prompts_.size();
      return;
    }
    const fs::path directory = testing::fixture_directory(GetParam());
    // The CUDA FP8 kernels quantize activations in groups of 128 columns (DeepSeek's block);
    // a fixture with narrower blocks loads on the CPU only.
    // A copy: QuantConfig::load returns a temporary, and linear() a reference into it.
    const LinearScheme scheme = QuantConfig::load(directory).linear("model.layers.0.self_attn.o_proj");
    if (scheme.format == WeightFormat::Fp8Block && scheme.block_in != kCudaBlockIn)
      GTEST_SKIP() << GetParam() << ": FP8 blocks of " << scheme.block_in << " inputs; the CUDA kernels take "
                   << kCudaBlockIn;
    model_ = load_model(directory, *gpu_);  // Fp8Weights::Native: W8A8
    oracle_model_ = load_model(directory, *oracle_);
    reference_ = WeightStore::open(directory / "reference.safetensors");
    std::ifstream meta(directory / "reference.json");
    prompts_ = nlohmann::json::parse(meta)["prompts"].size();
  }
  int64_t vocab() const { return model_->config().vocab_size; }
  std::vector<int32_t> prompt(size_t p) const {
    if (!random_prompts_.empty()) return random_prompts_.at(p);
    return testing::read_reference_vector<int32_t>(reference_, "prompt_" + std::to_string(p) + ".tokens");
  }
  void start_replay() {
    oracle_->replay(std::move(gpu_->log));
    gpu_->log = {};
  }
  void expect_flips_are_near_ties(size_t p) {
    const auto& stats = oracle_->stats;
    EXPECT_TRUE(oracle_->exhausted()) << "prompt " << p;
    EXPECT_LE(stats.worst_deficit, kNearTie) << "prompt " << p << ": a routing flip that is not a near-tie: "
                                             << stats.worst_flip;
    const auto& quantization = oracle_->quantization_stats;
    EXPECT_EQ(quantization.mismatches, 0) << "prompt " << p << ": e4m3 codes that differ from the oracle's away from "
                                          << "a rounding near-tie; the first: " << quantization.first_mismatch;
    EXPECT_LE(quantization.code_flips * 1000, quantization.elements)
        << "prompt " << p << ": more than one e4m3 code in 1000 at a rounding near-tie";
  }
  // Cosine at every row; a row below kMinCosine fails unless the router flipped there.
  // Returns the minimum over all rows.
  double compare_rows(const std::vector<std::vector<float>>& gpu, const std::vector<std::vector<float>>& oracle,
                      const std::string& what) {
    const auto& flipped = oracle_->stats.flipped_rows;
    double worst = 1.0;
    for (size_t r = 0; r < gpu.size(); ++r) {
      const double value = testing::cosine(gpu[r], oracle[r]);
      worst = std::min(worst, value);
      if (value >= kMinCosine) continue;
      // A flip excuses a low cosine, never a non-finite one (NaN logits, e.g. a poisoned
      // step buffer left unwritten, must fail at every row).
      if (flipped.contains(static_cast<int64_t>(r)) && std::isfinite(value))
        std::printf("  %s %s position %zu: cosine %.6f below %.4f at a routing flip (near-tie, deficit <= %.2e)\n",
                    GetParam().c_str(), what.c_str(), r, value, kMinCosine, oracle_->stats.worst_deficit);
      else
        ADD_FAILURE() << what << " position " << r << ": cosine " << value << " < " << kMinCosine
                      << " with no routing flip at this position";
    }
    return worst;
  }
  void print_flips(const std::string& what) const {
    const auto& stats = oracle_->stats;
    std::printf("  %s %s: %lld/%lld routing flips, worst deficit %.2e%s%s\n", GetParam().c_str(), what.c_str(),
                static_cast<long long>(stats.flips), static_cast<long long>(stats.decisions), stats.worst_deficit,
                stats.flips ? "; worst: " : "", stats.flips ? stats.worst_flip.substr(0, 200).c_str() : "");
    const auto& quantization = oracle_->quantization_stats;
    std::printf("  %s %s: e4m3 rounding near-ties adopted: %lld codes of %lld, %lld scales; mismatches %lld\n",
                GetParam().c_str(), what.c_str(), static_cast<long long>(quantization.code_flips),
                static_cast<long long>(quantization.elements), static_cast<long long>(quantization.scale_flips),
                static_cast<long long>(quantization.mismatches));
  }

  std::unique_ptr<TracedCudaBackend> gpu_;
  std::unique_ptr<CausalLM> model_;
  std::unique_ptr<TracedOracle> oracle_;
  std::unique_ptr<CausalLM> oracle_model_;
  WeightStore reference_;                           // the fixture's references (fixtures only)
  std::vector<std::vector<int32_t>> random_prompts_;  // the dummy model's prompts
  size_t prompts_ = 0;
};

TEST_P(CudaFp8Model, W8A8LogitsMatchTheCpuOracleAtEveryPosition) {
  for (size_t p = 0; p < prompts_; ++p) {
    const std::vector<int32_t> tokens = prompt(p);
    SequenceRunner runner(*model_, static_cast<int64_t>(tokens.size()));
    const auto logits = runner.append(tokens, true);
    start_replay();
    SequenceRunner oracle_runner(*oracle_model_, static_cast<int64_t>(tokens.size()));
    const auto oracle_logits = oracle_runner.append(tokens, true);
    expect_flips_are_near_ties(p);
    const std::string what = "prompt " + std::to_string(p);
    const double worst = compare_rows(logits, oracle_logits, what);
    std::printf("  %s prompt %zu of %zu tokens: min cosine vs the W8A8 oracle %.6f\n", GetParam().c_str(), p,
                tokens.size(), worst);
    print_flips(what);
  }
}

// Op by op on one prompt's prefill: every op's output (quantized activations dequantized)
// against the oracle's, printed, so a logit mismatch above is located at the first op where the
// two part. Asserted when the router did not flip on this prompt (a flip changes every later op).
TEST_P(CudaFp8Model, EveryOpOfAPrefillMatchesTheOracle) {
  const size_t p = prompts_ - 1;  // the longest
  const std::vector<int32_t> tokens = prompt(p);
  gpu_->tracing = oracle_->tracing = true;
  SequenceRunner runner(*model_, static_cast<int64_t>(tokens.size()));
  runner.append(tokens, true);
  start_replay();
  SequenceRunner oracle_runner(*oracle_model_, static_cast<int64_t>(tokens.size()));
  oracle_runner.append(tokens, true);
  gpu_->tracing = oracle_->tracing = false;
  std::printf("  %s prompt %zu (%zu tokens):\n", GetParam().c_str(), p, tokens.size());
  const int64_t first_below = testing::print_trace_comparison(gpu_->trace, oracle_->trace, kMinCosine);
  ASSERT_EQ(gpu_->trace.size(), oracle_->trace.size());
  print_flips("prompt " + std::to_string(p));
  if (oracle_->stats.flips == 0) {
    EXPECT_EQ(first_below, -1) << "op " << first_below << " (" << gpu_->trace[first_below].label
                               << ") is the first below cosine " << kMinCosine;
  }
}

// Decode through the paged cache one token per step: the small-M FP8 GEMMs and the
// decode attention path, against the oracle stepping the same way.
TEST_P(CudaFp8Model, W8A8DecodeThroughCacheMatchesTheCpuOracle) {
  const std::vector<int32_t> tokens = prompt(prompts_ - 1);
  SequenceRunner stepped(*model_, static_cast<int64_t>(tokens.size()));
  const auto logits = stepped.append(tokens, true, 1);
  start_replay();
  SequenceRunner oracle_runner(*oracle_model_, static_cast<int64_t>(tokens.size()));
  const auto oracle_logits = oracle_runner.append(tokens, true, 1);
  expect_flips_are_near_ties(prompts_ - 1);
  // Each step is its own call, so flipped_rows (rows within a call) says nothing of the
  // position: an outlier is only excused when some step flipped.
  double worst = 1.0;
  for (size_t r = 0; r < tokens.size(); ++r) {
    const double value = testing::cosine(logits[r], oracle_logits[r]);
    worst = std::min(worst, value);
    EXPECT_TRUE(std::isfinite(value)) << "position " << r;  // NaN logits fail even after a flip
    if (oracle_->stats.flips == 0) {
      EXPECT_GE(value, kMinCosine) << "position " << r;
    }
  }
  std::printf("  %s decode of prompt %zu, %zu steps: min cosine vs the W8A8 oracle %.6f\n", GetParam().c_str(),
              prompts_ - 1, tokens.size(), worst);
  print_flips("decode");
}

// The GPU's greedy tokens are the oracle's argmax at every step before the first routing
// flip (the oracle follows the GPU's tokens and routing and judges each choice); after a
// flip the paths may part, and the GPU's token must stay a near-argmax of the oracle.
TEST_P(CudaFp8Model, GreedyIsTheOraclesUntilARoutingFlip) {
  for (size_t p = 0; p < prompts_; ++p) {
    const std::vector<int32_t> tokens = prompt(p);
    const int64_t steps = 16;
    SequenceRunner generator(*model_, static_cast<int64_t>(tokens.size()) + steps);
    const std::vector<int32_t> generated = generator.generate_greedy(tokens, steps);
    ASSERT_EQ(static_cast<int64_t>(generated.size()), steps);
    start_replay();
    SequenceRunner oracle_runner(*oracle_model_, static_cast<int64_t>(tokens.size()) + steps);
    std::vector<float> last = oracle_runner.append(tokens, false).back();
    int64_t same = 0, first_flip_step = -1;
    float smallest_margin = INFINITY;  // oracle's best minus its logit of the GPU's token, over the agreeing steps
    for (int64_t i = 0; i < steps; ++i) {
      if (first_flip_step < 0 && oracle_->stats.flips > 0) first_flip_step = i;
      const int32_t best = argmax(last);
      std::vector<float> others = last;
      others[best] = -INFINITY;
      const float margin = last[best] - *std::max_element(others.begin(), others.end());
      if (first_flip_step < 0) {
        EXPECT_EQ(generated[i], best) << "prompt " << p << " step " << i << " with no routing flip so far: oracle "
                                      << "logit of the GPU's token " << last[generated[i]] << ", of its own "
                                      << last[best] << " (top-2 margin " << margin << ")";
        smallest_margin = std::min(smallest_margin, margin);
      } else {
        EXPECT_GE(last[generated[i]], last[best] - kNearArgmax) << "prompt " << p << " step " << i;
      }
      same += generated[i] == best;
      if (i + 1 < steps) last = oracle_runner.append({generated[i]}, false).back();
    }
    if (first_flip_step < 0 && oracle_->stats.flips > 0) first_flip_step = steps;
    expect_flips_are_near_ties(p);
    std::printf("  %s prompt %zu: greedy = oracle argmax at %lld/%lld steps; %s; smallest oracle top-2 margin "
                "before it %.2e\n",
                GetParam().c_str(), p, static_cast<long long>(same), static_cast<long long>(steps),
                first_flip_step < 0 ? "no routing flip"
                                    : ("first routing flip before step " + std::to_string(first_flip_step)).c_str(),
                smallest_margin);
    print_flips("greedy of prompt " + std::to_string(p));
  }
}

std::vector<std::string> fp8_models() {
  std::vector<std::string> names = testing::fixture_names(testing::FixtureKind::Fp8);
  names.push_back(kDummyBlockModel);
  return names;
}

INSTANTIATE_TEST_SUITE_P(Fp8Models, CudaFp8Model, ::testing::ValuesIn(fp8_models()),
                         [](const auto& info) { return testing::fixture_test_name(info.param); });

}  // namespace
}  // namespace rackserve
