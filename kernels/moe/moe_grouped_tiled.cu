// mma.sync tiled path of the grouped MoE experts, for experts with many pairs (prefill):
// one CTA computes a 32 x 128 tile, M = one kMoeAlignBlock block of an expert's pair list
// (rows gathered through sorted_pairs; sentinel rows are zero-filled and never stored),
// N = 128 weight rows, through the same cp.async ring, swizzle and ldmatrix/mma fragments
// as the dense tiled GEMM (gemm/linear_bf16_tiled.cuh).
//   gate_up: the 128 weight rows are 64 gate rows and their 64 up rows, interleaved by 8 in
//            shared memory, so each lane's accumulators hold gate and up of the same
//            (token, column): SiLU x up is applied in registers, stored as bf16 high + low.
//   down:    A = activation high and low parts (two mma per fragment keep ~16 bits of the
//            f32 activation); the epilogue scales by the routing weight and writes each
//            pair's contribution row.
// Grid: x = blocks of the pair lists (fastest, so an expert's blocks share weight tiles in
// L2), y = N tiles.
#include "common/device_utils.cuh"
#include "gemm/linear_bf16_tiled.cuh"
#include "moe/moe_grouped.cuh"

namespace rackserve::kernels {

namespace {

using Config = TiledGemmConfig</*BlockM=*/32, /*BlockN=*/128, /*BlockK=*/32, /*Stages=*/4, /*WarpsM=*/1,
                               /*WarpsN=*/4>;
static_assert(Config::kBlockM == kMoeAlignBlock, "an M tile is exactly one block of an expert's pair list");
static_assert(Config::kWarpN % 16 == 0, "gate/up interleave: a warp's N range is whole 8-gate + 8-up groups");

template <bool kDown>
struct TiledLayout {
  static constexpr int kASources = kDown ? 2 : 1;  // down: activation high part, then low part
  static constexpr int kAElements = Config::kBlockM * Config::kBlockK;
  static constexpr int kStageElements = kASources * kAElements + Config::kBlockN * Config::kBlockK;
  static constexpr int kSharedBytes = Config::kStages * kStageElements * 2;
  static constexpr int kAChunksPerThread = Config::kBlockM * Config::kChunksPerRow / Config::kThreads;
  static constexpr int kBChunksPerThread = Config::kBlockN * Config::kChunksPerRow / Config::kThreads;
  static constexpr int kColumnsPerTile = kDown ? Config::kBlockN : Config::kBlockN / 2;
  static_assert(kSharedBytes <= kSharedMemoryBudgetBytes, "the SM120 budget is 99 KB of shared memory per block");
  static_assert(kAChunksPerThread >= 1 && kBChunksPerThread >= 1, "every thread copies A and B chunks");
};

template <bool kDown>
__global__ void __launch_bounds__(Config::kThreads) moe_grouped_tiled_kernel(MoeGroupedExpertsParams p,
                                                                             int64_t tiled_min_tokens) {
  wait_for_prior_kernel();
  using Layout = TiledLayout<kDown>;
  extern __shared__ __align__(128) __nv_bfloat16 shared[];
  const int slot = p.block_slots[blockIdx.x];
  if (slot < 0 || p.active_counts[slot] < tiled_min_tokens) return;
  const int64_t expert = p.active_experts[slot];
  const int32_t* block_pairs = p.sorted_pairs + static_cast<int64_t>(blockIdx.x) * Config::kBlockM;
  const int thread = threadIdx.x, lane = thread % 32, warp = thread / 32;
  const int warp_m = warp % Config::kWarpsM, warp_n = warp / Config::kWarpsM;
  const int64_t n_begin = static_cast<int64_t>(blockIdx.y) * Layout::kColumnsPerTile;
  const int64_t k_extent = kDown ? p.inter : p.hidden;
  const int k_tiles = static_cast<int>((k_extent + Config::kBlockK - 1) / Config::kBlockK);
  const uint32_t shared_base = smem_address(shared);

  // A sources: gate_up gathers the tokens' rows of x, down the pairs' activation rows.
  const __nv_bfloat16* a_high = static_cast<const __nv_bfloat16*>(kDown ? p.activated_high : p.x);
  const __nv_bfloat16* a_low = static_cast<const __nv_bfloat16*>(p.activated_low);
  int64_t a_offset[Layout::kAChunksPerThread];  // element offset of the row, -1 for a sentinel
#pragma unroll
  for (int i = 0; i < Layout::kAChunksPerThread; ++i) {
    const int pair = block_pairs[(thread + i * Config::kThreads) / Config::kChunksPerRow];
    a_offset[i] = pair < 0 ? -1 : (kDown ? static_cast<int64_t>(pair) * p.inter : pair / p.top_k * p.hidden);
  }
  // B rows: down, hidden rows n_begin + r; gate_up, shared row r is gate (r % 16 < 8) or up
  // (r % 16 >= 8) of column n_begin + (r / 16) * 8 + r % 8.
  const __nv_bfloat16* weights = static_cast<const __nv_bfloat16*>(kDown ? p.down : p.gate_up) +
                                 expert * (kDown ? 1 : 2) * p.inter * p.hidden;
  const __nv_bfloat16* b_row[Layout::kBChunksPerThread];  // nullptr past the edge
#pragma unroll
  for (int i = 0; i < Layout::kBChunksPerThread; ++i) {
    const int r = (thread + i * Config::kThreads) / Config::kChunksPerRow;
    if constexpr (kDown) {
      const int64_t n = n_begin + r;
      b_row[i] = n < p.hidden ? weights + n * p.inter : nullptr;
    } else {
      const int64_t column = n_begin + (r / 16) * 8 + r % 8;
      b_row[i] = column < p.inter ? weights + (column + (r % 16 >= 8 ? p.inter : 0)) * p.hidden : nullptr;
    }
  }

  // Copies k slice `k_tile` into buffer `stage`; sentinel rows, rows past the edge and
  // chunks past k are zero-filled (zeros add nothing to the product).
  auto load_stage = [&](int stage, int k_tile) {
    const uint32_t a_base = shared_base + stage * Layout::kStageElements * 2;
    const uint32_t b_base = a_base + Layout::kASources * Layout::kAElements * 2;
    const int64_t k_begin = static_cast<int64_t>(k_tile) * Config::kBlockK;
#pragma unroll
    for (int i = 0; i < Layout::kAChunksPerThread; ++i) {
      const int index = thread + i * Config::kThreads, row = index / Config::kChunksPerRow;
      const int chunk = index % Config::kChunksPerRow;
      const int64_t k = k_begin + chunk * 8;
      const bool valid = a_offset[i] >= 0 && k < k_extent;
      const uint32_t target = a_base + swizzled_offset(row, chunk) * 2;
      cp_async_16(target, valid ? a_high + a_offset[i] + k : a_high, valid);
      if constexpr (kDown)
        cp_async_16(target + Layout::kAElements * 2, valid ? a_low + a_offset[i] + k : a_low, valid);
    }
#pragma unroll
    for (int i = 0; i < Layout::kBChunksPerThread; ++i) {
      const int index = thread + i * Config::kThreads, row = index / Config::kChunksPerRow;
      const int chunk = index % Config::kChunksPerRow;
      const int64_t k = k_begin + chunk * 8;
      const bool valid = b_row[i] != nullptr && k < k_extent;
      cp_async_16(b_base + swizzled_offset(row, chunk) * 2, valid ? b_row[i] + k : weights, valid);
    }
  };

  float accumulator[Config::kFragmentsM][Config::kFragmentsN][4] = {};

  // Pipeline as in linear_bf16_tiled.cuh: one commit per iteration, so group i holds slice i.
#pragma unroll
  for (int stage = 0; stage < Config::kStages - 1; ++stage) {
    if (stage < k_tiles) load_stage(stage, stage);
    cp_async_commit();
  }
  for (int k_tile = 0; k_tile < k_tiles; ++k_tile) {
    cp_async_wait<Config::kStages - 2>();
    __syncthreads();
    const int next = k_tile + Config::kStages - 1;
    if (next < k_tiles) load_stage(next % Config::kStages, next);
    cp_async_commit();

    const uint32_t a_base = shared_base + (k_tile % Config::kStages) * Layout::kStageElements * 2;
    const uint32_t b_base = a_base + Layout::kASources * Layout::kAElements * 2;
#pragma unroll
    for (int k_step = 0; k_step < Config::kBlockK / 16; ++k_step) {
      uint32_t a[Layout::kASources][Config::kFragmentsM][4];
#pragma unroll
      for (int source = 0; source < Layout::kASources; ++source)
#pragma unroll
        for (int i = 0; i < Config::kFragmentsM; ++i) {
          const int row = warp_m * Config::kWarpM + i * 16 + (lane & 15);
          ldmatrix_x4(a[source][i],
                      a_base + (source * Layout::kAElements + swizzled_offset(row, k_step * 2 + (lane >> 4))) * 2);
        }
      uint32_t b[Config::kFragmentsN][2];
#pragma unroll
      for (int j = 0; j < Config::kFragmentsN / 2; ++j) {
        const int row = warp_n * Config::kWarpN + j * 16 + ((lane >> 4) << 3) + (lane & 7);
        uint32_t r[4];
        ldmatrix_x4(r, b_base + swizzled_offset(row, k_step * 2 + ((lane >> 3) & 1)) * 2);
        b[2 * j][0] = r[0];
        b[2 * j][1] = r[1];
        b[2 * j + 1][0] = r[2];
        b[2 * j + 1][1] = r[3];
      }
#pragma unroll
      for (int source = 0; source < Layout::kASources; ++source)
#pragma unroll
        for (int i = 0; i < Config::kFragmentsM; ++i)
#pragma unroll
          for (int j = 0; j < Config::kFragmentsN; ++j) mma_bf16_16x8x16(accumulator[i][j], a[source][i], b[j]);
    }
  }
  cp_async_wait<0>();

  // Epilogue from the fragments: c[0..1] at (g, 2t..2t+1), c[2..3] at (g + 8, ...).
  const int g = lane / 4, t = lane % 4;
#pragma unroll
  for (int i = 0; i < Config::kFragmentsM; ++i) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int64_t pair = block_pairs[warp_m * Config::kWarpM + i * 16 + g + half * 8];
      if (pair < 0) continue;
      if constexpr (kDown) {
        const float weight = p.weights[pair];
#pragma unroll
        for (int j = 0; j < Config::kFragmentsN; ++j) {
          const int64_t n = n_begin + warp_n * Config::kWarpN + j * 8 + 2 * t;
          if (n < p.hidden)
            *reinterpret_cast<float2*>(p.contributions + pair * p.hidden + n) =
                make_float2(weight * accumulator[i][j][2 * half], weight * accumulator[i][j][2 * half + 1]);
        }
      } else {
        // Fragment 2j holds gate, 2j + 1 up, of columns n_begin + (warp_n * kWarpN / 16 + j) * 8 + 0..7.
#pragma unroll
        for (int j = 0; j < Config::kFragmentsN / 2; ++j) {
          const int64_t column = n_begin + (warp_n * Config::kWarpN / 16 + j) * 8 + 2 * t;
          if (column >= p.inter) continue;
          __nv_bfloat16 high[2], low[2];
#pragma unroll
          for (int e = 0; e < 2; ++e)
            split_bf16(silu_times(accumulator[i][2 * j][2 * half + e], accumulator[i][2 * j + 1][2 * half + e]),
                       high[e], low[e]);
          const int64_t index = pair * p.inter + column;
          *reinterpret_cast<__nv_bfloat162*>(static_cast<__nv_bfloat16*>(p.activated_high) + index) = {high[0], high[1]};
          *reinterpret_cast<__nv_bfloat162*>(static_cast<__nv_bfloat16*>(p.activated_low) + index) = {low[0], low[1]};
        }
      }
    }
  }
}

template <bool kDown>
int launch_tiled(const MoeGroupedExpertsParams& p, int64_t tiled_min_tokens, cudaStream_t stream) {
  using Layout = TiledLayout<kDown>;
  auto kernel = moe_grouped_tiled_kernel<kDown>;
  if (int status = opt_in_dynamic_shared_memory(reinterpret_cast<const void*>(kernel), Layout::kSharedBytes,
                                                kDown ? "moe_down_tiled" : "moe_gate_up_tiled"))
    return status;
  const int64_t n_extent = kDown ? p.hidden : p.inter;
  const int64_t n_tiles = (n_extent + Layout::kColumnsPerTile - 1) / Layout::kColumnsPerTile;
  if (p.max_blocks > INT32_MAX || n_tiles > 65535) return cudaErrorInvalidValue;
  dim3 grid(static_cast<unsigned>(p.max_blocks), static_cast<unsigned>(n_tiles));
  kernel<<<grid, Config::kThreads, Layout::kSharedBytes, stream>>>(p, tiled_min_tokens);
  return launch_status();
}

}  // namespace

int launch_moe_gate_up_tiled(const MoeGroupedExpertsParams& p, int64_t tiled_min_tokens, cudaStream_t stream) {
  return launch_tiled<false>(p, tiled_min_tokens, stream);
}

int launch_moe_down_tiled(const MoeGroupedExpertsParams& p, int64_t tiled_min_tokens, cudaStream_t stream) {
  return launch_tiled<true>(p, tiled_min_tokens, stream);
}

}  // namespace rackserve::kernels
