// Grouped MoE experts on the GPU against the CPU backend, and the token sort/align kernel
// against a host reference. Routings are built here, not by the router, so the tests control
// which experts are hot (many tokens: the tiled path once the batch is above 64 tokens),
// which are cold (a few tokens: the streaming path) and which get no token at all. Fresh
// random inputs each run (seed printed), step allocations poisoned with NaN, bf16-rounded
// inputs so both backends see the same values.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "core/dtype.h"
#include "rackserve/kernels/moe_params.h"
#include "support/test_random.h"

namespace rackserve {
namespace {

using testing::run_seed;

struct Shape3 {
  int64_t tokens, experts, top_k, hidden, inter;
};

// top_k distinct experts per token: with probability 1/2 from a few hot experts, else from
// the cold ones; the last `unused` experts are never chosen.
std::vector<int32_t> skewed_routing(const Shape3& s, int64_t hot, int64_t unused, std::mt19937_64& rng) {
  std::vector<int32_t> ids(s.tokens * s.top_k);
  const int64_t usable = s.experts - unused;
  std::uniform_int_distribution<int64_t> pick_hot(0, hot - 1), pick_any(0, usable - 1);
  std::bernoulli_distribution hot_coin(0.5);
  for (int64_t t = 0; t < s.tokens; ++t) {
    for (int64_t k = 0; k < s.top_k; ++k) {
      int32_t expert;
      bool taken;
      do {
        expert = static_cast<int32_t>(hot_coin(rng) ? pick_hot(rng) : pick_any(rng));
        taken = std::find(ids.begin() + t * s.top_k, ids.begin() + t * s.top_k + k, expert) !=
                ids.begin() + t * s.top_k + k;
      } while (taken);
      ids[t * s.top_k + k] = expert;
    }
  }
  return ids;
}

class MoeExpertsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(cuda_device_available()) << "the gpu tests need a CUDA device";
    cpu_ = make_cpu_backend(0);
    gpu_ = make_cuda_backend(CudaBackendOptions{0, /*poison_step_allocations=*/true});
    rng_.seed(run_seed() + ::testing::UnitTest::GetInstance()->random_seed());
    std::printf("seed %llu\n", static_cast<unsigned long long>(run_seed()));
  }

  std::vector<float> random(int64_t count, float scale) {
    std::normal_distribution<float> normal(0.0f, scale);
    std::vector<float> values(count);
    for (float& value : values) value = bf16_to_f32(f32_to_bf16(normal(rng_)));
    return values;
  }

  struct Pair {
    Tensor cpu, gpu;
  };
  Pair upload(std::vector<float>& values, const Shape& shape, DType gpu_dtype) {
    Tensor host{values.data(), DType::F32, shape, Device{}};
    return {cpu_->upload_persistent(host, DType::F32), gpu_->upload_persistent(host, gpu_dtype)};
  }
  Pair upload_ints(std::vector<int32_t>& values, const Shape& shape) {
    Tensor host{values.data(), DType::I32, shape, Device{}};
    return {cpu_->upload_persistent(host, DType::I32), gpu_->upload_persistent(host, DType::I32)};
  }

  // Runs both backends on `ids` and checks ||gpu - cpu|| / ||cpu|| and that a second GPU run
  // gives bit-identical output (deterministic summation).
  void check_case(const Shape3& s, std::vector<int32_t> ids) {
    SCOPED_TRACE(::testing::Message() << "tokens " << s.tokens << " experts " << s.experts << " top_k " << s.top_k
                                      << " hidden " << s.hidden << " inter " << s.inter);
    std::vector<float> routing_weights(s.tokens * s.top_k);
    std::uniform_real_distribution<float> uniform(0.05f, 1.0f);
    for (float& w : routing_weights) w = uniform(rng_);
    auto x_values = random(s.tokens * s.hidden, 1.0f);
    auto gate_up_values = random(s.experts * 2 * s.inter * s.hidden, 1.0f / std::sqrt(float(s.hidden)));
    auto down_values = random(s.experts * s.hidden * s.inter, 1.0f / std::sqrt(float(s.inter)));
    Pair x = upload(x_values, {s.tokens, s.hidden}, DType::BF16);
    Pair gate_up = upload(gate_up_values, {s.experts, 2 * s.inter, s.hidden}, DType::BF16);
    Pair down = upload(down_values, {s.experts, s.hidden, s.inter}, DType::BF16);
    Pair expert_ids = upload_ints(ids, {s.tokens, s.top_k});
    Pair weights = upload(routing_weights, {s.tokens, s.top_k}, DType::F32);

    cpu_->begin_step();
    gpu_->begin_step();
    Tensor cpu_out = cpu_->moe_experts(x.cpu, {expert_ids.cpu, weights.cpu}, {gate_up.cpu, down.cpu});
    Tensor gpu_out = gpu_->moe_experts(x.gpu, {expert_ids.gpu, weights.gpu}, {gate_up.gpu, down.gpu});
    auto expected = cpu_->download_f32(cpu_out);
    auto actual = gpu_->download_f32(gpu_out);
    ASSERT_EQ(expected.size(), actual.size());
    double difference = 0.0, reference = 0.0;
    int64_t non_finite = 0;
    for (size_t i = 0; i < expected.size(); ++i) {
      if (!std::isfinite(actual[i])) {
        ++non_finite;
        continue;
      }
      difference += (actual[i] - expected[i]) * double(actual[i] - expected[i]);
      reference += double(expected[i]) * expected[i];
    }
    EXPECT_EQ(non_finite, 0) << "unwritten (NaN-poisoned) or non-finite outputs";
    EXPECT_LT(std::sqrt(difference / std::max(reference, 1e-30)), 1e-4);

    gpu_->begin_step();
    Tensor again = gpu_->moe_experts(x.gpu, {expert_ids.gpu, weights.gpu}, {gate_up.gpu, down.gpu});
    EXPECT_TRUE(gpu_->download_f32(again) == actual) << "two runs on the same inputs differ";
  }

  std::unique_ptr<Backend> cpu_, gpu_;
  std::mt19937_64 rng_;
};

TEST_F(MoeExpertsTest, TinyFixtureShapes) {
  for (int64_t experts : {12, 16})
    for (int64_t tokens : {1, 7, 64, 300}) {
      Shape3 s{tokens, experts, 8, 64, 32};
      check_case(s, skewed_routing(s, /*hot=*/2, /*unused=*/2, rng_));
    }
}

TEST_F(MoeExpertsTest, ManyExpertsHotColdAndUnused) {
  // DeepSeek-V3 (256) and Kimi-K2 (384) expert counts, top-8, narrowed widths for the CPU oracle.
  for (int64_t experts : {256, 384})
    for (int64_t tokens : {1, 7, 64, 300}) {
      Shape3 s{tokens, experts, 8, 256, 128};
      check_case(s, skewed_routing(s, /*hot=*/3, /*unused=*/16, rng_));
    }
}

TEST_F(MoeExpertsTest, AllTokensOnOneExpert) {
  // Every token's first slot on expert 0: one list of `tokens` pairs spanning many blocks.
  for (int64_t tokens : {64, 300}) {
    Shape3 s{tokens, 16, 4, 128, 64};
    std::vector<int32_t> ids = skewed_routing(s, 4, 0, rng_);
    for (int64_t t = 0; t < tokens; ++t) {
      auto row = ids.begin() + t * s.top_k;
      auto zero = std::find(row, row + s.top_k, 0);
      if (zero != row + s.top_k) std::iter_swap(row, zero);
      else row[0] = 0;
    }
    check_case(s, ids);
  }
}

TEST_F(MoeExpertsTest, RealWidths) {
  // hidden 7168 with inter 512 (DeepSeek-V3 / Kimi-K2 experts at TP4) and 2048 (TP1);
  // 65 tokens puts every expert of the first case on the tiled path.
  for (Shape3 s : {Shape3{7, 8, 8, 7168, 512}, Shape3{65, 8, 8, 7168, 512}, Shape3{7, 4, 2, 7168, 2048}}) {
    std::vector<int32_t> ids(s.tokens * s.top_k);
    for (int64_t t = 0; t < s.tokens; ++t) {
      std::vector<int32_t> order(s.experts);
      std::iota(order.begin(), order.end(), 0);
      std::shuffle(order.begin(), order.end(), rng_);
      std::copy(order.begin(), order.begin() + s.top_k, ids.begin() + t * s.top_k);
    }
    check_case(s, ids);
  }
}

// The align kernel itself: lists in pair order, padded with -1 to the block, active experts
// ascending, the block map, and nothing written for unused experts; for the BF16 kernels'
// block (32) and the FP8 kernels' block_m values (16, 64).
TEST_F(MoeExpertsTest, AlignTokensMatchesHostReference) {
  for (int64_t block : {kernels::kMoeAlignBlock, int64_t{16}, int64_t{64}})
  for (Shape3 s : {Shape3{1, 256, 8, 0, 0}, Shape3{300, 256, 8, 0, 0}, Shape3{2000, 384, 8, 0, 0},
                   Shape3{64, 12, 8, 0, 0}}) {
    SCOPED_TRACE(::testing::Message() << "block " << block);
    std::vector<int32_t> ids = skewed_routing(s, 3, 2, rng_);
    const kernels::MoeAlignLayout layout = kernels::moe_align_layout(s.tokens, s.top_k, s.experts, block);
    const size_t ints = layout.pairs + layout.capacity + 3 * layout.max_active + layout.max_blocks;
    int32_t* device = nullptr;
    ASSERT_EQ(cudaMalloc(&device, ints * sizeof(int32_t)), cudaSuccess);
    ASSERT_EQ(cudaMemset(device, 0x7f, ints * sizeof(int32_t)), cudaSuccess);  // poison
    ASSERT_EQ(cudaMemcpy(device, ids.data(), ids.size() * sizeof(int32_t), cudaMemcpyHostToDevice), cudaSuccess);
    kernels::MoeAlignParams p{};
    p.expert_ids = device;
    p.sorted_pairs = device + layout.pairs;
    p.active_experts = p.sorted_pairs + layout.capacity;
    p.active_offsets = p.active_experts + layout.max_active;
    p.active_counts = p.active_offsets + layout.max_active;
    p.block_slots = p.active_counts + layout.max_active;
    p.pairs = layout.pairs;
    p.experts = s.experts;
    p.max_active = layout.max_active;
    p.max_blocks = layout.max_blocks;
    p.block = block;
    ASSERT_EQ(kernels::launch_moe_align_tokens(p, nullptr), cudaSuccess);
    std::vector<int32_t> out(ints);
    ASSERT_EQ(cudaMemcpy(out.data(), device, ints * sizeof(int32_t), cudaMemcpyDeviceToHost), cudaSuccess);
    cudaFree(device);

    // Host reference.
    std::vector<int32_t> sorted(layout.capacity, -1), active, offsets, counts, slots(layout.max_blocks, -1);
    int32_t position = 0;
    for (int32_t e = 0; e < s.experts; ++e) {
      int32_t count = 0;
      for (int32_t pair = 0; pair < layout.pairs; ++pair)
        if (ids[pair] == e) sorted[position + count++] = pair;
      if (count == 0) continue;
      const int32_t blocks = static_cast<int32_t>((count + block - 1) / block);
      for (int32_t b = 0; b < blocks; ++b) slots[position / block + b] = int32_t(active.size());
      active.push_back(e);
      offsets.push_back(position);
      counts.push_back(count);
      position += static_cast<int32_t>(blocks * block);
    }
    active.resize(layout.max_active, -1);
    offsets.resize(layout.max_active, 0);
    counts.resize(layout.max_active, 0);
    auto section = [&](size_t begin, size_t size) {
      return std::vector<int32_t>(out.begin() + begin, out.begin() + begin + size);
    };
    size_t at = layout.pairs;
    EXPECT_EQ(section(at, layout.capacity), sorted) << "tokens " << s.tokens;
    at += layout.capacity;
    EXPECT_EQ(section(at, layout.max_active), active);
    at += layout.max_active;
    EXPECT_EQ(section(at, layout.max_active), offsets);
    at += layout.max_active;
    EXPECT_EQ(section(at, layout.max_active), counts);
    at += layout.max_active;
    EXPECT_EQ(section(at, layout.max_blocks), slots);
  }
}

}  // namespace
}  // namespace rackserve
