// W8A8 FP8 y = x W^T for decode-sized m (<= 64): the small-M streaming design
// (small_m_stream.cuh) with e4m3 elements. A K block is 128 e4m3 (128 bytes) per weight row,
// exactly the Block layout's scale block; the lane's two 16-byte chunks sit at k offsets 16t
// and 64 + 16t, and MMA j (m16n8k32) takes their words 2j (k slots 4t..) and 2j + 1 (slots
// 16 + 4t..). The permutation stays inside the block, so a block's scales apply to its sum.
//
// Each MMA runs on a zero accumulator and is added in f32 (linear_fp8.cuh says why): per
// token tile the block's 4 MMAs give an f32 partial dot, which the Block layout adds times
// x_scale[token, block] x w_scale[row / block_out, block] (loaded with x, before the ring
// wait), and the Channel layout adds as is, multiplying the finished dot by x_scale[token] x
// w_scale[row] in the epilogue (the contract's order).
#include "gemm/small_m_fp8.cuh"

namespace rackserve::kernels {

namespace {

static_assert(kFp8BlockK == small_m::kBlockBytes, "a K block is one 128-wide scale block of e4m3");
// Two CTAs per SM up to 2 token tiles; at 4 the per-tile partials and the Block layout's
// scales need more than 128 registers (ptxas spilled at that cap), so one CTA with 6 stages.
constexpr int kFp8TwoCtaTiles = 2;

template <bool kBlockScaling>
struct Fp8SmallMPolicy : small_m::DenseProblem<LinearFp8Params, uint8_t> {
  using Params = LinearFp8Params;
  using Element = uint8_t;
  static constexpr int kElementBytes = 1;
  static constexpr int kTwoCtaTiles = kFp8TwoCtaTiles;
  static constexpr const char* kName = "linear_fp8_small_m";

  // Block: the block's scales of this lane's weight rows (g, g + 8), loaded before the ring
  // wait, and where its tokens' scales for the block start (read per tile in accumulate, from
  // L1 mostly: the CTA's warps share them; hoisting them too spills registers at T >= 4).
  // Channel: nothing.
  template <int T>
  struct Scales {
    float weight[2];
    const float* x_column;  // &x_scales[0, kb]; token u's scale at x_column[u * k_blocks]
    int k_blocks, last_token;
  };

  template <int T>
  __device__ static Scales<T> load_scales(const Params& p, const View&, const int64_t (&rows)[2], int kb,
                                          int k_blocks) {
    Scales<T> scales{};
    if constexpr (kBlockScaling) {
#pragma unroll
      for (int r = 0; r < 2; ++r) scales.weight[r] = __ldg(p.weight_scales + (rows[r] / p.block_out) * k_blocks + kb);
      scales.x_column = p.x_scales + kb;
      scales.k_blocks = k_blocks;
      scales.last_token = static_cast<int>(p.m - 1);  // m <= 64
    }
    return scales;
  }

  template <int T>
  __device__ static void accumulate(float (&accumulator)[T][4], const uint4 (&weights)[2][2], const uint4 (&x)[T][2],
                                    const Scales<T>& scales, int tiles) {
    small_m::accumulate_e4m3<kBlockScaling>(accumulator, weights, x, tiles, scales.weight, [&](int u) {
      return __ldg(scales.x_column + min(u, scales.last_token) * scales.k_blocks);
    });
  }

  __device__ static void store(const Params& p, const View&, int64_t u, int64_t row, float sum) {
    if constexpr (!kBlockScaling) sum = sum * p.x_scales[u] * p.weight_scales[row];  // Channel: dot x x_scale x w_scale
    store_dense(p, u, row, sum);
  }
};

small_m::Plan plan_of(const LinearFp8Config& config) {
  return {config.row_warps, config.splits, config.k_blocks_per_split, config.overlap_prior};
}

}  // namespace

LinearFp8Config plan_linear_fp8_small_m(int64_t m, int64_t n, int64_t k, int sm_count, int resident_per_sm) {
  const small_m::Plan plan = small_m::make_plan(m, n, k, 1, kFp8TwoCtaTiles, sm_count, resident_per_sm);
  LinearFp8Config config;
  config.row_warps = plan.row_warps;
  config.splits = plan.splits;
  config.k_blocks_per_split = plan.k_blocks_per_split;
  return config;
}

int linear_fp8_small_m_resident_per_sm(int64_t m, Fp8ScaleLayout layout) {
  return layout == Fp8ScaleLayout::Block ? small_m::resident_ctas_per_sm<Fp8SmallMPolicy<true>>(m)
                                         : small_m::resident_ctas_per_sm<Fp8SmallMPolicy<false>>(m);
}

int launch_linear_fp8_small_m(const LinearFp8Params& p, const LinearFp8Config& config, Stream stream) {
  if (int status = validate_linear_fp8(p, config)) return status;
  if (p.m > small_m::kMaxTokens || !small_m::valid_plan(plan_of(config), fp8_k_blocks(p.k)))
    return cudaErrorInvalidValue;
  if (p.m == 0) return cudaSuccess;
  auto s = static_cast<cudaStream_t>(stream);
  return p.layout == Fp8ScaleLayout::Block ? small_m::run_dense<Fp8SmallMPolicy<true>>(p, plan_of(config), s)
                                           : small_m::run_dense<Fp8SmallMPolicy<false>>(p, plan_of(config), s);
}

}  // namespace rackserve::kernels
