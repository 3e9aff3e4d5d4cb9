// The small-M GEMM plans (plan_linear_bf16_small_m, plan_linear_fp8_small_m, and the FP8
// experts' small-M path: host code of the kernels library, no device needed, so this runs under
// the `unit` label wherever CUDA builds).
// For every DeepSeek-V3 / Kimi-K2 / GLM-4.7 / MiniMax-M2 projection at TP 1-8, every m the
// kernels take and the SM counts of an H200 and an RTX PRO 6000, a plan must be one the
// launchers accept and must keep the promises the kernels' comments make.
#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

#include "moe/moe_fp8.cuh"
#include "rackserve/kernels/fp8_gemm_params.h"
#include "rackserve/kernels/gemm_params.h"
#include "rackserve/kernels/moe_fp8_params.h"

namespace rackserve {
namespace {

struct Shape {
  int64_t n, k;
};

// Per-GPU (n, k) of the models' projections at TP 1, 2, 4, 8 (replicated ones once), plus
// ragged and tiny shapes.
std::vector<Shape> shapes() {
  std::vector<Shape> all = {{1536, 7168}, {576, 7168}, {2048, 7168}, {200, 256}, {1, 128}, {129, 384}, {7168, 128}};
  for (int64_t tp : {1, 2, 4, 8}) {
    all.push_back({24576 / tp, 1536});   // DeepSeek-V3 q_b
    all.push_back({7168, 16384 / tp});   // o_proj
    all.push_back({36864 / tp, 7168});   // dense gate_up
    all.push_back({7168, 18432 / tp});   // dense down
    all.push_back({4096 / tp, 7168});    // shared expert gate_up
    all.push_back({7168, 2048 / tp});    // shared expert down
    all.push_back({12288 / tp, 5120});   // GLM-4.7 q
    all.push_back({5120, 12288 / tp});   // GLM-4.7 o
    all.push_back({163840 / tp, 7168});  // Kimi-K2 lm_head
    all.push_back({6144 / tp, 3072});    // MiniMax-M2 q
  }
  return all;
}

struct PlanView {
  int row_warps, splits, k_blocks_per_split;
};

// What both kernels promise (small_m_stream.cuh): row_warps 1, 2 or 4 and at least m / 16 so
// x comes from L2 at most once per weight byte; whole K blocks per split, none empty; splits
// only when every K warp keeps a block and the f32 partials stay within half the weight bytes.
void expect_valid(const PlanView& plan, int64_t m, const Shape& shape, int element_bytes, const std::string& what) {
  const int64_t k_blocks = (shape.k * element_bytes + 127) / 128;
  ASSERT_TRUE(plan.row_warps == 1 || plan.row_warps == 2 || plan.row_warps == 4) << what;
  EXPECT_GE(16 * plan.row_warps, m <= 16 ? 16 : m <= 32 ? 32 : 64) << what;
  ASSERT_GE(plan.splits, 1) << what;
  ASSERT_GE(plan.k_blocks_per_split, 1) << what;
  EXPECT_GE(int64_t{plan.splits} * plan.k_blocks_per_split, k_blocks) << what << ": blocks left out";
  EXPECT_LT(int64_t{plan.splits - 1} * plan.k_blocks_per_split, k_blocks) << what << ": an empty split";
  if (plan.splits > 1) {
    EXPECT_GE(plan.k_blocks_per_split, 8 / plan.row_warps) << what << ": a K warp without a block";
    EXPECT_LE(8 * plan.splits * m * shape.n, element_bytes * shape.n * shape.k / 2)
        << what << ": partials heavier than half the weights";
  }
}

// resident_per_sm 0 is the launch bounds' count (SM120's); 3 and 4 what larger SMs hold.
TEST(SmallMPlan, EveryShapeGetsAPlanTheKernelsAccept) {
  for (int sm_count : {132, 188})
    for (int per_sm : {0, 3, 4})
      for (const Shape& shape : shapes())
        for (int64_t m = 1; m <= 64; ++m) {
          const std::string what = "n=" + std::to_string(shape.n) + " k=" + std::to_string(shape.k) +
                                   " m=" + std::to_string(m) + " sms=" + std::to_string(sm_count) +
                                   " per_sm=" + std::to_string(per_sm);
          const kernels::LinearBf16SmallMConfig bf16 =
              kernels::plan_linear_bf16_small_m(m, shape.n, shape.k, sm_count, per_sm);
          expect_valid({bf16.row_warps, bf16.splits, bf16.k_blocks_per_split}, m, shape, 2, "bf16 " + what);
          const kernels::LinearFp8Config fp8 = kernels::plan_linear_fp8_small_m(m, shape.n, shape.k, sm_count, per_sm);
          expect_valid({fp8.row_warps, fp8.splits, fp8.k_blocks_per_split}, m, shape, 1, "fp8 " + what);
        }
}

// The plan counts the CTAs the device holds: DeepSeek-V3 q_a (1536 x 7168 e4m3: 96 row CTAs
// of 56 blocks) at m = 1 on 132 SMs fills 2 x 132 slots with 2 splits (192 CTAs) and the
// H200's 3 x 132 with 4 (384 CTAs of 14 blocks; small_m_stream.cuh, make_plan).
TEST(SmallMPlan, CountsTheResidentCtasTheDeviceHolds) {
  EXPECT_EQ(kernels::plan_linear_fp8_small_m(1, 1536, 7168, 132).splits, 2);
  EXPECT_EQ(kernels::plan_linear_fp8_small_m(1, 1536, 7168, 132, 2).splits, 2);
  EXPECT_EQ(kernels::plan_linear_fp8_small_m(1, 1536, 7168, 132, 3).splits, 4);
}

// Small-n projections need split-K to fill the SMs at batch 1 (kv_a: 36 row CTAs on 132 SMs),
// and a weight big enough for many waves needs none.
TEST(SmallMPlan, SplitsOnlyWhereTheRowsCannotFillTheSms) {
  EXPECT_GT(kernels::plan_linear_fp8_small_m(1, 576, 7168, 132).splits, 1);
  EXPECT_GT(kernels::plan_linear_bf16_small_m(1, 576, 7168, 132).splits, 1);
  EXPECT_EQ(kernels::plan_linear_fp8_small_m(1, 163840, 7168, 132).splits, 1);
  EXPECT_EQ(kernels::plan_linear_bf16_small_m(1, 163840, 7168, 132).splits, 1);
}

// The FP8 experts' small-M path: for the per-GPU expert shapes (E, hidden, N) of DeepSeek-V3,
// Kimi-K2, GLM-4.7 and MiniMax-M2 and every decode batch, both GEMMs get valid plans, and the
// workspace the backend allocates is the one the launch carves (same splits, room for the
// partials of every pair).
TEST(SmallMPlan, MoeFp8SmallMPlansAndWorkspace) {
  struct Experts {
    int64_t hidden, inter;
  };
  kernels::MoeFp8Config config;
  config.small_m = true;
  for (const Experts& e : {Experts{7168, 2048}, Experts{7168, 512}, Experts{7168, 256}, Experts{5120, 384},
                           Experts{5120, 192}, Experts{3072, 384}, Experts{3072, 192}, Experts{256, 128}})
    for (int64_t tokens = 1; tokens <= kernels::kMoeFp8SmallMMaxTokens; ++tokens) {
      const std::string what = "hidden " + std::to_string(e.hidden) + " inter " + std::to_string(e.inter) +
                               " tokens " + std::to_string(tokens);
      const int64_t top_k = 8, pairs = tokens * top_k;
      const kernels::MoeFp8Workspace w = kernels::moe_fp8_workspace(tokens, top_k, e.hidden, e.inter, config, 0);
      for (const auto& [plan, k, n] : {std::tuple{w.gate_up, e.hidden, 2 * e.inter}, std::tuple{w.down, e.inter, e.hidden}}) {
        expect_valid({plan.row_warps, plan.splits, plan.k_tiles_per_split}, tokens, Shape{n, k}, 1, what);
        const kernels::MoeFp8SplitPlan direct = kernels::plan_moe_fp8_small_m(tokens, top_k, n, k);
        EXPECT_EQ(plan.splits, direct.splits) << what;
        EXPECT_EQ(plan.row_warps, direct.row_warps) << what;
      }
      EXPECT_GE(w.activation_q, w.gate_up_partials + size_t(w.gate_up.splits) * pairs * 2 * e.inter * 4) << what;
      EXPECT_GE(w.bytes, w.down_partials + size_t(w.down.splits) * pairs * e.hidden * 4) << what;
      EXPECT_EQ(w.bytes, kernels::moe_fp8_workspace_bytes(tokens, top_k, e.hidden, e.inter, config, 0)) << what;
    }
}

// The FP8 experts' tiled K split (plan_moe_fp8_splits): for every candidate config, the
// experts' GEMMs of the target models at decode and prefill sizes and split targets of no
// device (0), an RTX PRO 6000 (188 x 2) and an H200 (132 x 5): the splits partition the K
// tiles with none empty, a split keeps >= 512 bytes of k unless there is one, 0 means
// kMoeFp8DefaultSplitCtas, and a larger target never splits less. DeepSeek-V3 TP 8 at one
// token with the decode default (8 pairs x 8 n-tiles of 64 rows) takes 6 splits for 384 CTAs
// and 10 for the H200's 660 (one wave each).
TEST(SmallMPlan, MoeFp8TiledSplitsFillOneWave) {
  std::vector<kernels::MoeFp8Config> configs(512);
  configs.resize(kernels::moe_fp8_candidate_configs(configs.data(), static_cast<int>(configs.size())));
  ASSERT_GT(configs.size(), 1u);
  for (const kernels::MoeFp8Config& config : configs)
    for (const auto& [n, k] : {std::pair<int64_t, int64_t>{1024, 7168}, {7168, 512}, {512, 7168}, {7168, 256},
                               {384, 5120}, {5120, 192}, {768, 3072}, {3072, 384}})
      for (int64_t pairs : {8, 64, 256, 512, 32768}) {
        const std::string what = "config " + std::to_string(config.block_m) + "x" + std::to_string(config.block_n) +
                                 "x" + std::to_string(config.block_k) + " n=" + std::to_string(n) +
                                 " k=" + std::to_string(k) + " pairs=" + std::to_string(pairs);
        const int64_t k_tiles = (k + config.block_k - 1) / config.block_k;
        int previous_splits = 0;
        for (int64_t target : {int64_t{376}, kernels::kMoeFp8DefaultSplitCtas, int64_t{660}}) {
          const kernels::MoeFp8SplitPlan plan = kernels::plan_moe_fp8_splits(pairs, n, k, config, target);
          EXPECT_GE(plan.splits, 1) << what;
          EXPECT_GE(int64_t{plan.splits} * plan.k_tiles_per_split, k_tiles) << what;
          EXPECT_LT(int64_t{plan.splits - 1} * plan.k_tiles_per_split, k_tiles) << what << ": an empty split";
          if (plan.splits > 1) EXPECT_GE(plan.k_tiles_per_split * config.block_k, 512) << what;
          EXPECT_GE(plan.splits, previous_splits) << what << " target " << target;
          previous_splits = plan.splits;
        }
        const kernels::MoeFp8SplitPlan by_default = kernels::plan_moe_fp8_splits(pairs, n, k, config, 0);
        const kernels::MoeFp8SplitPlan default_target =
            kernels::plan_moe_fp8_splits(pairs, n, k, config, kernels::kMoeFp8DefaultSplitCtas);
        EXPECT_EQ(by_default.splits, default_target.splits) << what;
      }
  const kernels::MoeFp8Config decode = kernels::default_moe_fp8_config(1, 8, 256);
  EXPECT_EQ(kernels::plan_moe_fp8_splits(8, 512, 7168, decode, 384).splits, 6);
  EXPECT_EQ(kernels::plan_moe_fp8_splits(8, 512, 7168, decode, 660).splits, 10);
}

}  // namespace
}  // namespace rackserve
