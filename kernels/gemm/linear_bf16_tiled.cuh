// Body of the large-M (prefill) BF16 GEMM y = x W^T: one CTA computes a BlockM x BlockN
// tile of y, streaming BlockK-wide slices of x and W through a cp.async ring of Stages
// shared-memory buffers, ldmatrix into mma.sync m16n8k16 fragments, float32 accumulators.
// Edges (any m, n; k a multiple of 8) are zero-filled by cp.async, so no branch sits in the
// main loop. Launched by linear_bf16_tiled.cu, which validates LinearBf16Params.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "common/device_utils.cuh"
#include "common/mma_utils.cuh"
#include "common/shared_memory_budget.cuh"
#include "rackserve/kernels/gemm_params.h"

namespace rackserve::kernels {

// How the tiled GEMM runs (the problem itself is LinearBf16Params).
template <int BlockM, int BlockN, int BlockK, int Stages, int WarpsM, int WarpsN>
struct TiledGemmConfig {
  static constexpr int kBlockM = BlockM, kBlockN = BlockN, kBlockK = BlockK, kStages = Stages;
  static constexpr int kWarpsM = WarpsM, kWarpsN = WarpsN, kThreads = WarpsM * WarpsN * 32;
  static constexpr int kWarpM = BlockM / WarpsM, kWarpN = BlockN / WarpsN;  // one warp's tile of y
  static constexpr int kFragmentsM = kWarpM / 16, kFragmentsN = kWarpN / 8;  // mma tiles per warp
  static constexpr int kChunksPerRow = BlockK / 8;                           // 16-byte chunks
  static constexpr int kStageElements = (BlockM + BlockN) * BlockK;          // x slice, then W slice
  static constexpr int kSharedBytes = Stages * kStageElements * 2;

  static_assert(BlockK == 32, "the shared-memory swizzle assumes 64-byte rows (4 chunks of 16 bytes)");
  static_assert(kWarpM % 16 == 0 && kWarpN % 16 == 0, "a warp tile is whole 16x16 ldmatrix_x4 blocks");
  static_assert((BlockM * kChunksPerRow) % kThreads == 0 && (BlockN * kChunksPerRow) % kThreads == 0,
                "every thread copies the same number of chunks per stage");
  static_assert(Stages >= 2, "a pipeline needs at least two buffers");
  static_assert(kSharedBytes <= kSharedMemoryBudgetBytes, "the SM120 budget is 99 KB of shared memory per block");
};

// Offset in elements of (row, 16-byte chunk) inside a [rows][32] bf16 slice. A 64-byte row
// puts two rows in each 128-byte bank line; ldmatrix reads one chunk of 8 consecutive rows,
// so XOR-ing the chunk with (row / 2) % 4 gives those 8 reads 8 different 16-byte bank
// groups (row parity picks the half of the line, the XOR the slot within it). cp.async
// writes stay a permutation inside each line, so they are conflict-free too.
__device__ __forceinline__ int swizzled_offset(int row, int chunk) {
  return row * 32 + ((chunk ^ ((row >> 1) & 3)) * 8);
}

__device__ __forceinline__ void store_pair(float* y, int64_t index, float first, float second) {
  *reinterpret_cast<float2*>(y + index) = make_float2(first, second);
}
__device__ __forceinline__ void store_pair(__nv_bfloat16* y, int64_t index, float first, float second) {
  *reinterpret_cast<__nv_bfloat162*>(y + index) = __floats2bfloat162_rn(first, second);
}
__device__ __forceinline__ void store_one(float* y, int64_t index, float value) { y[index] = value; }
__device__ __forceinline__ void store_one(__nv_bfloat16* y, int64_t index, float value) {
  y[index] = __float2bfloat16(value);
}

// Grid: x over m tiles (fastest, so consecutive CTAs share one W tile through L2), y over
// n tiles. Dynamic shared memory: Config::kSharedBytes.
template <typename Config, typename Output>
__global__ void __launch_bounds__(Config::kThreads, 1) linear_bf16_tiled_kernel(LinearBf16Params p) {
  wait_for_prior_kernel();
  extern __shared__ __align__(128) __nv_bfloat16 shared[];
  const int thread = threadIdx.x, lane = thread % 32, warp = thread / 32;
  const int warp_m = warp % Config::kWarpsM, warp_n = warp / Config::kWarpsM;
  const int64_t m_begin = static_cast<int64_t>(blockIdx.x) * Config::kBlockM;
  const int64_t n_begin = static_cast<int64_t>(blockIdx.y) * Config::kBlockN;
  const __nv_bfloat16* x = static_cast<const __nv_bfloat16*>(p.x);
  const __nv_bfloat16* weight = static_cast<const __nv_bfloat16*>(p.weight);
  const int k_tiles = static_cast<int>((p.k + Config::kBlockK - 1) / Config::kBlockK);
  const uint32_t shared_base = smem_address(shared);

  // Copies k slice `k_tile` of the x and W tiles into buffer `stage`; rows past m or n and
  // chunks past k are zero-filled (zeros add nothing to the product).
  auto load_stage = [&](int stage, int k_tile) {
    const uint32_t a_base = shared_base + stage * Config::kStageElements * 2;
    const uint32_t b_base = a_base + Config::kBlockM * Config::kBlockK * 2;
    const int64_t k_begin = static_cast<int64_t>(k_tile) * Config::kBlockK;
#pragma unroll
    for (int i = 0; i < Config::kBlockM * Config::kChunksPerRow / Config::kThreads; ++i) {
      const int index = thread + i * Config::kThreads, row = index / Config::kChunksPerRow;
      const int chunk = index % Config::kChunksPerRow;
      const int64_t m = m_begin + row, k = k_begin + chunk * 8;
      const bool valid = m < p.m && k < p.k;
      cp_async_16(a_base + swizzled_offset(row, chunk) * 2, valid ? x + m * p.k + k : x, valid);
    }
#pragma unroll
    for (int i = 0; i < Config::kBlockN * Config::kChunksPerRow / Config::kThreads; ++i) {
      const int index = thread + i * Config::kThreads, row = index / Config::kChunksPerRow;
      const int chunk = index % Config::kChunksPerRow;
      const int64_t n = n_begin + row, k = k_begin + chunk * 8;
      const bool valid = n < p.n && k < p.k;
      cp_async_16(b_base + swizzled_offset(row, chunk) * 2, valid ? weight + n * p.k + k : weight, valid);
    }
  };

  float accumulator[Config::kFragmentsM][Config::kFragmentsN][4] = {};

  // Prologue: Stages - 1 slices in flight. Every iteration commits exactly one group (maybe
  // empty), so "group i holds slice i" and wait<Stages - 2> means slice kt has landed.
#pragma unroll
  for (int stage = 0; stage < Config::kStages - 1; ++stage) {
    if (stage < k_tiles) load_stage(stage, stage);
    cp_async_commit();
  }

  for (int k_tile = 0; k_tile < k_tiles; ++k_tile) {
    cp_async_wait<Config::kStages - 2>();
    // Slice k_tile is visible to all warps, and every warp is done with the buffer the
    // next load overwrites (it held slice k_tile - 1).
    __syncthreads();
    const int next = k_tile + Config::kStages - 1;
    if (next < k_tiles) load_stage(next % Config::kStages, next);
    cp_async_commit();

    const uint32_t a_base = shared_base + (k_tile % Config::kStages) * Config::kStageElements * 2;
    const uint32_t b_base = a_base + Config::kBlockM * Config::kBlockK * 2;
#pragma unroll
    for (int k_step = 0; k_step < Config::kBlockK / 16; ++k_step) {
      // A: x4 = rows 0-7 / 8-15 of k 0-7, then of k 8-15 -> a[0..3] of the mma fragment.
      uint32_t a[Config::kFragmentsM][4];
#pragma unroll
      for (int i = 0; i < Config::kFragmentsM; ++i) {
        const int row = warp_m * Config::kWarpM + i * 16 + (lane & 15);
        ldmatrix_x4(a[i], a_base + swizzled_offset(row, k_step * 2 + (lane >> 4)) * 2);
      }
      // B = W^T stored n-major: x4 = (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7),
      // (n 8-15, k 8-15) -> b[0..1] of two adjacent n8 fragments.
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
      for (int i = 0; i < Config::kFragmentsM; ++i)
#pragma unroll
        for (int j = 0; j < Config::kFragmentsN; ++j) mma_bf16_16x8x16(accumulator[i][j], a[i], b[j]);
    }
  }
  cp_async_wait<0>();  // only empty groups remain; leave nothing in flight at exit

  // Epilogue straight from the fragments: c[0..1] at (g, 2t..2t+1), c[2..3] at (g + 8, ...).
  // Pairs are stored as one 4/8-byte write when n is even and y is 8-byte aligned.
  Output* y = static_cast<Output*>(p.y);
  const bool paired = (p.n % 2 == 0) && (reinterpret_cast<uintptr_t>(p.y) % 8 == 0);
  const int g = lane / 4, t = lane % 4;
#pragma unroll
  for (int i = 0; i < Config::kFragmentsM; ++i) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int64_t m = m_begin + warp_m * Config::kWarpM + i * 16 + g + half * 8;
      if (m >= p.m) continue;
#pragma unroll
      for (int j = 0; j < Config::kFragmentsN; ++j) {
        const int64_t n = n_begin + warp_n * Config::kWarpN + j * 8 + 2 * t;
        const float first = accumulator[i][j][2 * half], second = accumulator[i][j][2 * half + 1];
        if (paired && n + 1 < p.n) {
          store_pair(y, m * p.n + n, first, second);
        } else {
          if (n < p.n) store_one(y, m * p.n + n, first);
          if (n + 1 < p.n) store_one(y, m * p.n + n + 1, second);
        }
      }
    }
  }
}

}  // namespace rackserve::kernels
