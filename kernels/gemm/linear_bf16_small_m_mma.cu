// BF16 y = x W^T for decode-sized m (<= 64) on tensor cores: the small-M streaming design
// (small_m_stream.cuh) with bf16 elements. A K block is 64 bf16 (128 bytes) per weight row;
// the lane's two 16-byte chunks sit at k offsets 8t and 32 + 8t, and MMA j (m16n8k16) takes
// their words 2j (k slots 2t..) and 2j + 1 (slots 8 + 2t..), accumulating in f32 in the MMA.
#include "gemm/small_m_stream.cuh"
#include "rackserve/kernels/gemm_params.h"

namespace rackserve::kernels {

namespace {

static_assert(kLinearBf16SmallMBlockK * 2 == small_m::kBlockBytes, "a K block is 128 bytes of a weight row");
static_assert(kLinearBf16SmallMMaxTokens == small_m::kMaxTokens, "one token limit");

struct Bf16SmallMPolicy : small_m::DenseProblem<LinearBf16Params, __nv_bfloat16> {
  using Params = LinearBf16Params;
  using Element = __nv_bfloat16;
  static constexpr int kElementBytes = 2;
  static constexpr int kTwoCtaTiles = 4;
  static constexpr const char* kName = "linear_bf16_small_m_mma";
  template <int T>
  struct Scales {};  // bf16 needs none

  template <int T>
  __device__ static Scales<T> load_scales(const Params&, const View&, const int64_t (&)[2], int, int) {
    return {};
  }
  // The 4 MMAs per token tile, accumulated in the MMA (f32).
  template <int T>
  __device__ static void accumulate(float (&accumulator)[T][4], const uint4 (&weights)[2][2], const uint4 (&x)[T][2],
                                    const Scales<T>&, int /*tiles: all T (kTokensVaryPerCta is false)*/) {
#pragma unroll
    for (int tile = 0; tile < T; ++tile)
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        uint32_t a[4], b[2];
        small_m::fragments(j, weights, x[tile], a, b);
        mma_bf16_16x8x16(accumulator[tile], a, b);
      }
  }
  __device__ static void store(const Params& p, const View&, int64_t u, int64_t row, float sum) {
    store_dense(p, u, row, sum);
  }
};

small_m::Plan plan_of(const LinearBf16SmallMConfig& config) {
  return {config.row_warps, config.splits, config.k_blocks_per_split, config.overlap_prior};
}
LinearBf16SmallMConfig config_of(const small_m::Plan& plan) {
  LinearBf16SmallMConfig config;
  config.row_warps = plan.row_warps;
  config.splits = plan.splits;
  config.k_blocks_per_split = plan.k_blocks_per_split;
  return config;
}

}  // namespace

// small_m::make_plan says why (bench/kernel_roofline.cpp gemm compares it with forced splits).
LinearBf16SmallMConfig plan_linear_bf16_small_m(int64_t m, int64_t n, int64_t k, int sm_count, int resident_per_sm) {
  return config_of(small_m::make_plan(m, n, k, 2, Bf16SmallMPolicy::kTwoCtaTiles, sm_count, resident_per_sm));
}

int linear_bf16_small_m_resident_per_sm(int64_t m) { return small_m::resident_ctas_per_sm<Bf16SmallMPolicy>(m); }

LinearBf16SmallMConfig linear_bf16_small_m_config(int64_t m, int64_t k, int splits, int row_warps) {
  const SplitK cut = split_k_evenly((k + kLinearBf16SmallMBlockK - 1) / kLinearBf16SmallMBlockK, splits);
  const int rows = row_warps > 0 ? row_warps : small_m::min_row_warps(std::clamp<int64_t>(m, 1, small_m::kMaxTokens));
  return config_of({rows, cut.splits, cut.k_blocks_per_split});
}

int launch_linear_bf16_small_m_mma(const LinearBf16Params& p, const LinearBf16SmallMConfig& config, Stream stream) {
  if (p.m < 0 || p.m > kLinearBf16SmallMMaxTokens || p.n <= 0 || p.k <= 0 || p.k % 8 != 0 || !p.weight ||
      !aligned16(p.weight) || (p.y_type != ElementType::F32 && p.y_type != ElementType::BF16) ||
      p.segment_rows < 0 || p.segment_rows >= p.n)
    return cudaErrorInvalidValue;
  if (p.m > 0 && (!p.x || !p.y || !aligned16(p.x))) return cudaErrorInvalidValue;
  const int64_t k_blocks = (p.k + kLinearBf16SmallMBlockK - 1) / kLinearBf16SmallMBlockK;
  if (k_blocks > INT32_MAX / 2 || !small_m::valid_plan(plan_of(config), k_blocks)) return cudaErrorInvalidValue;
  if (config.splits > 1 && p.m > 0 && !p.workspace) return cudaErrorInvalidValue;
  if (p.m == 0) return cudaSuccess;
  return small_m::run_dense<Bf16SmallMPolicy>(p, plan_of(config), static_cast<cudaStream_t>(stream));
}

}  // namespace rackserve::kernels
