// The expert GEMM of the FP8 routed experts (MoeFp8GemmArgs), one body for decode and
// prefill. A CTA owns block_n weight rows of one expert x one align block of block_m pairs x
// one K split. The weights are the 16-row A operand of mma.sync m16n8k32 e4m3 and the pairs
// the 8-column B operand, so a decode step with a few pairs per expert streams each active
// expert's weights once (block_m = 16 wastes at most half of the B columns, not weight
// bytes), and a prefill tile reuses each weight byte block_m times.
//
// Per K tile (block_k bytes of k): the weight slice [block_n][block_k] and the pairs' rows
// [block_m][block_k] (gathered through sorted_pairs; sentinel rows and rows past n are zero-
// filled) go global -> shared with 16-byte cp.async into a `stages`-deep ring, swizzled so that
// ldmatrix reads 8 rows of one 16-byte column without bank conflicts (128-byte rows: chunk ^
// row % 8; 64-byte rows, two per 128-byte line: chunk ^ (row / 2) % 4). ldmatrix.b16 loads e4m3
// fragments exactly as bf16 ones (linear_fp8.cuh).
//
// Warps: a warps_n x warps_m grid over the tile (warp tile WN x WM, chosen to minimise the
// shared-memory bytes read per MMA), and for the one config too small for that (16 x 32 with 8
// warps) two K groups that take alternate k32 steps and meet in shared memory at the end.
// Each MMA runs on a zero accumulator and is added in f32 (linear_fp8.cuh says why); in the
// Block layout it is added times its weight scale x activation scale (every K tile lies in one
// 128-wide scale block), in the Channel layout the scales multiply the final sum.
#pragma once

#include "common/device_utils.cuh"
#include "common/mma_utils.cuh"
#include "common/shared_memory_budget.cuh"
#include "gemm/linear_fp8.cuh"
#include "moe/moe_fp8.cuh"

namespace rackserve::kernels {

// The warp grid of a block_n x block_m tile: warps = n x m x k.
struct MoeFp8WarpGrid {
  int n = 0, m = 0, k = 0;
};
constexpr MoeFp8WarpGrid moe_fp8_warp_grid(int block_m, int block_n, int warps) {
  MoeFp8WarpGrid best;
  int64_t best_numerator = -1, best_denominator = 1;
  for (int k = 1; k <= 2 && best.n == 0; ++k)
    for (int n = 1; n <= warps; n *= 2) {
      if (warps % (n * k) != 0) continue;
      const int m = warps / (n * k);
      if (block_n % (n * 16) != 0 || block_m % (m * 8) != 0) continue;
      // MMAs per shared byte read: (tile_n tile_m / 128) / (32 (tile_n + tile_m)).
      const int64_t tile_n = block_n / n, tile_m = block_m / m;
      const int64_t numerator = tile_n * tile_m, denominator = tile_n + tile_m;
      if (numerator * best_denominator > best_numerator * denominator) {
        best = {n, m, k};
        best_numerator = numerator, best_denominator = denominator;
      }
    }
  return best;
}

template <int BlockM, int BlockN, int Warps>
struct MoeFp8Tile {
  static constexpr MoeFp8WarpGrid kGrid = moe_fp8_warp_grid(BlockM, BlockN, Warps);
  static constexpr int kThreads = Warps * 32;
  static constexpr int kWarpsN = kGrid.n, kWarpsM = kGrid.m, kWarpsK = kGrid.k;
  static constexpr int kWarpN = BlockN / kWarpsN, kWarpM = BlockM / kWarpsM;
  static constexpr int kFragmentsN = kWarpN / 16, kFragmentsM = kWarpM / 8;  // A (weights) and B (pairs) tiles
  static constexpr int kValues = kFragmentsN * kFragmentsM * 4;              // accumulators per lane
  static constexpr int kReductionBytes = (kWarpsK - 1) * kWarpsN * kWarpsM * kValues * 32 * 4;
  static_assert(kGrid.n > 0, "no warp grid tiles this block_n x block_m with this many warps");
  static_assert(kWarpsK == 1 || kWarpsK == 2, "at most two K groups (a 64-byte K tile has two k32 steps)");
  // The smallest ring (2 stages of 64-byte K tiles) holds the reduction.
  static_assert(kReductionBytes <= moe_fp8_ring_bytes(BlockM, BlockN, 64, 2), "the reduction reuses the ring");
  static_assert(moe_fp8_ring_bytes(BlockM, BlockN, 128, 4) + moe_fp8_table_bytes(BlockM, BlockN) <=
                    kSharedMemoryBudgetBytes,
                "every config of this tile fits SM120's 99 KB");
};

// Byte offset of (row, 16-byte chunk) in a [rows][block_k] slice (see the file comment).
__device__ __forceinline__ int moe_fp8_swizzle(int row, int chunk, bool wide) {
  return wide ? row * 128 + ((chunk ^ (row & 7)) << 4) : row * 64 + ((chunk ^ ((row >> 1) & 3)) << 4);
}

// cp.async.wait_group takes an immediate: the ring depth is a runtime value (2, 3 or 4).
__device__ __forceinline__ void moe_fp8_wait_ring(int stages) {
  if (stages <= 2)
    cp_async_wait<0>();
  else if (stages == 3)
    cp_async_wait<1>();
  else
    cp_async_wait<2>();
}

// Grid: x = align blocks (max_blocks; blocks past the last list exit), y = block_n tiles of
// n, z = K splits. Dynamic shared memory: moe_fp8_tiled_shared_bytes(config).
template <int BlockM, int BlockN, int Warps, bool kBlockScaling>
__global__ void __launch_bounds__(Warps * 32, 1) moe_fp8_gemm_kernel(MoeFp8GemmArgs p, int block_k, int stages) {
  wait_for_prior_kernel();
  using Tile = MoeFp8Tile<BlockM, BlockN, Warps>;
  constexpr int kFragmentsN = Tile::kFragmentsN, kFragmentsM = Tile::kFragmentsM;
  extern __shared__ __align__(128) uint8_t shared[];
  const int slot = p.block_slots[blockIdx.x];
  if (slot < 0) return;
  const int64_t expert = p.active_experts[slot];
  const int thread = threadIdx.x, lane = thread % 32, warp = thread / 32, g = lane / 4, t = lane % 4;
  const int warp_n = warp % Tile::kWarpsN, warp_m = (warp / Tile::kWarpsN) % Tile::kWarpsM;
  const int warp_k = warp / (Tile::kWarpsN * Tile::kWarpsM);
  const int64_t n_begin = static_cast<int64_t>(blockIdx.y) * BlockN;
  const bool wide = block_k == 128;
  const int chunk_shift = wide ? 3 : 2, chunks_per_row = 1 << chunk_shift;
  const int stage_bytes = (BlockN + BlockM) * block_k;
  const int k_tiles = static_cast<int>((p.k + block_k - 1) / block_k);
  const int kt_begin = static_cast<int>(blockIdx.z) * p.k_tiles_per_split;
  const int kt_count = min(kt_begin + p.k_tiles_per_split, k_tiles) - kt_begin;
  const int64_t k_blocks = fp8_k_blocks(p.k);  // Block: scale columns

  // The tables: the block's pairs (ids, -1 for sentinels; byte offsets of their activation
  // rows, -1 for sentinels) and, Block layout, the scale-table offsets of every pair's
  // activation row and every weight row (32-bit: the launcher checks the tables' sizes; rows
  // past n read the last one and sentinels row 0, never stored / exact zeros).
  int64_t* row_offsets = reinterpret_cast<int64_t*>(shared + stages * stage_bytes);  // 8-byte aligned
  int32_t* pair_ids = reinterpret_cast<int32_t*>(row_offsets + BlockM);
  int32_t* activation_scale_rows = pair_ids + BlockM;
  int32_t* weight_scale_rows = activation_scale_rows + BlockM;
  if (thread < BlockM) {
    const int pair = p.sorted_pairs[static_cast<int64_t>(blockIdx.x) * BlockM + thread];
    const int64_t row = pair < 0 ? 0 : pair / p.pairs_per_row;
    pair_ids[thread] = pair;
    row_offsets[thread] = pair < 0 ? -1 : row * p.k;
    activation_scale_rows[thread] = static_cast<int32_t>(row * k_blocks);
  }
  if constexpr (kBlockScaling) {
    const int64_t scale_rows = (p.n + p.block_out - 1) / p.block_out;
    for (int row = thread; row < BlockN; row += Tile::kThreads) {
      const int64_t n = min(n_begin + row, p.n - 1);
      weight_scale_rows[row] = static_cast<int32_t>((expert * scale_rows + n / p.block_out) * k_blocks);
    }
  }
  __syncthreads();

  const uint8_t* weights = p.weights + expert * p.n * p.k;
  const uint32_t shared_base = smem_address(shared);
  // This thread's weight chunks: 16-byte column `w_chunk` of tile rows w_row + pass x
  // w_rows_per_pass. A pass is 16, 32 or 64 rows, a multiple of the swizzle's period in rows
  // (8 wide, 8 narrow), so pass after pass the chunk moves by a fixed stride in shared memory
  // as in global memory, and a K tile only adds offsets (decode streams are issue-bound on
  // address arithmetic otherwise: ALU 37% of issue on the H200, ncu, 2026-12-05). Rows past n
  // are zero-filled, rows past the tile not copied.
  const int w_row = thread >> chunk_shift, w_chunk = thread & (chunks_per_row - 1);
  const int w_rows_per_pass = Tile::kThreads >> chunk_shift;
  const int w_passes = w_row < BlockN ? (BlockN - w_row + w_rows_per_pass - 1) / w_rows_per_pass : 0;
  const int64_t w_rows_left = p.n - (n_begin + w_row);  // this thread's rows that exist: pass x w_rows_per_pass < it
  const uint8_t* w_source = weights + (n_begin + w_row) * p.k + w_chunk * 16;
  const int64_t w_source_stride = static_cast<int64_t>(w_rows_per_pass) * p.k;
  const uint32_t w_target = moe_fp8_swizzle(w_row, w_chunk, wide), w_target_stride = w_rows_per_pass * block_k;
  auto load_stage = [&](int stage, int kt) {
    const uint32_t w_base = shared_base + stage * stage_bytes;
    const uint32_t a_base = w_base + BlockN * block_k;
    const int64_t k_begin = static_cast<int64_t>(kt) * block_k;
    const bool k_inside = k_begin + w_chunk * 16 < p.k;
    const uint8_t* source = w_source + k_begin;
    uint32_t target = w_base + w_target;
    for (int pass = 0; pass < w_passes; ++pass) {
      const bool valid = k_inside && static_cast<int64_t>(pass) * w_rows_per_pass < w_rows_left;
      cp_async_16(target, valid ? source : weights, valid);
      source += w_source_stride;
      target += w_target_stride;
    }
    for (int index = thread; index < BlockM * chunks_per_row; index += Tile::kThreads) {
      const int row = index >> chunk_shift, chunk = index & (chunks_per_row - 1);
      const int64_t offset = row_offsets[row], k = k_begin + chunk * 16;
      const bool valid = offset >= 0 && k < p.k;
      cp_async_16(a_base + moe_fp8_swizzle(row, chunk, wide), valid ? p.activations + offset + k : p.activations,
                  valid);
    }
  };

  float accumulator[kFragmentsN][kFragmentsM][4] = {};
  // Prologue: stages - 1 tiles in flight. Every iteration commits exactly one group (maybe
  // empty), so "group i holds tile i" and waiting for stages - 2 pending means tile i landed.
  for (int stage = 0; stage < stages - 1; ++stage) {
    if (stage < kt_count) load_stage(stage, kt_begin + stage);
    cp_async_commit();
  }
  const int steps = block_k / 32;
  for (int i_tile = 0; i_tile < kt_count; ++i_tile) {
    moe_fp8_wait_ring(stages);
    // Tile i_tile is visible to all warps, and all are done with the buffer the next load
    // overwrites (it held tile i_tile - 1).
    __syncthreads();
    const int next = i_tile + stages - 1;
    if (next < kt_count) load_stage(next % stages, kt_begin + next);
    cp_async_commit();

    const uint32_t w_base = shared_base + (i_tile % stages) * stage_bytes;
    const uint32_t a_base = w_base + BlockN * block_k;
    float weight_scale[kFragmentsN][2], activation_scale[kFragmentsM][2];
    if constexpr (kBlockScaling) {
      const int kb = (kt_begin + i_tile) * block_k / kFp8BlockK;
      // c0,c1 at weight row g, c2,c3 at g + 8 of each A tile; columns 2t, 2t + 1 of each B tile.
#pragma unroll
      for (int i = 0; i < kFragmentsN; ++i)
#pragma unroll
        for (int half = 0; half < 2; ++half)
          weight_scale[i][half] =
              __ldg(p.weight_scales + weight_scale_rows[warp_n * Tile::kWarpN + i * 16 + g + half * 8] + kb);
#pragma unroll
      for (int j = 0; j < kFragmentsM; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e)
          activation_scale[j][e] =
              __ldg(p.activation_scales + activation_scale_rows[warp_m * Tile::kWarpM + j * 8 + 2 * t + e] + kb);
    }
    // The steps stay a loop (as in the dense tiled FP8 GEMM): unrolled, ptxas overlaps them
    // and the register count grows for no gain on a memory-bound decode.
#pragma unroll 1
    for (int step = warp_k; step < steps; step += Tile::kWarpsK) {
      uint32_t a[kFragmentsN][4], b[kFragmentsM][2];
      // A = weight rows: x4 = rows 0-7 / 8-15 of k 0-15, then of k 16-31.
#pragma unroll
      for (int i = 0; i < kFragmentsN; ++i) {
        const int row = warp_n * Tile::kWarpN + i * 16 + (lane & 15);
        ldmatrix_x4(a[i], w_base + moe_fp8_swizzle(row, step * 2 + (lane >> 4), wide));
      }
      // B = pair rows (k contiguous, the "col" operand): x4 = (pairs 0-7, k 0-15), (0-7, 16-31),
      // (8-15, 0-15), (8-15, 16-31) -> two n8 tiles; an odd last tile takes an x2.
#pragma unroll
      for (int j = 0; j + 1 < kFragmentsM; j += 2) {
        const int row = warp_m * Tile::kWarpM + j * 8 + ((lane >> 4) << 3) + (lane & 7);
        uint32_t r[4];
        ldmatrix_x4(r, a_base + moe_fp8_swizzle(row, step * 2 + ((lane >> 3) & 1), wide));
        b[j][0] = r[0], b[j][1] = r[1], b[j + 1][0] = r[2], b[j + 1][1] = r[3];
      }
      if constexpr (kFragmentsM % 2 == 1) {
        const int row = warp_m * Tile::kWarpM + (kFragmentsM - 1) * 8 + (lane & 7);
        uint32_t r[2];
        ldmatrix_x2(r, a_base + moe_fp8_swizzle(row, step * 2 + ((lane >> 3) & 1), wide));
        b[kFragmentsM - 1][0] = r[0], b[kFragmentsM - 1][1] = r[1];
      }
#pragma unroll
      for (int i = 0; i < kFragmentsN; ++i)
#pragma unroll
        for (int j = 0; j < kFragmentsM; ++j) {
          if constexpr (kBlockScaling) {
            float d[4];
            mma_e4m3_16x8x32(d, a[i], b[j]);
            // c0,c1: (weight row g, pairs 2t, 2t + 1); c2,c3: row g + 8.
#pragma unroll
            for (int c = 0; c < 4; ++c)
              accumulator[i][j][c] =
                  fmaf(d[c], weight_scale[i][c / 2] * activation_scale[j][c % 2], accumulator[i][j][c]);
          } else {
            mma_e4m3_add(accumulator[i][j], a[i], b[j]);
          }
        }
    }
  }
  cp_async_wait<0>();  // only empty groups remain; leave nothing in flight

  if constexpr (Tile::kWarpsK > 1) {
    // K group 1 hands its sums to group 0 through the ring's bytes.
    __syncthreads();
    float* exchange = reinterpret_cast<float*>(shared);
    const int warp_mn = warp % (Tile::kWarpsN * Tile::kWarpsM);
    if (warp_k == 1) {
#pragma unroll
      for (int i = 0; i < kFragmentsN; ++i)
#pragma unroll
        for (int j = 0; j < kFragmentsM; ++j)
#pragma unroll
          for (int c = 0; c < 4; ++c)
            exchange[((warp_mn * kFragmentsN + i) * kFragmentsM * 4 + j * 4 + c) * 32 + lane] = accumulator[i][j][c];
    }
    __syncthreads();
    if (warp_k == 1) return;
#pragma unroll
    for (int i = 0; i < kFragmentsN; ++i)
#pragma unroll
      for (int j = 0; j < kFragmentsM; ++j)
#pragma unroll
        for (int c = 0; c < 4; ++c)
          accumulator[i][j][c] += exchange[((warp_mn * kFragmentsN + i) * kFragmentsM * 4 + j * 4 + c) * 32 + lane];
  }

  // Epilogue straight from the fragments into this split's partials [pairs, n].
  float* partials = p.partials + static_cast<int64_t>(blockIdx.z) * p.pairs * p.n;
#pragma unroll
  for (int j = 0; j < kFragmentsM; ++j)
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int column = warp_m * Tile::kWarpM + j * 8 + 2 * t + e;
      const int pair = pair_ids[column];
      if (pair < 0) continue;
      const float activation_scale = kBlockScaling ? 1.0f : p.activation_scales[row_offsets[column] / p.k];
#pragma unroll
      for (int i = 0; i < kFragmentsN; ++i)
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int64_t n = n_begin + warp_n * Tile::kWarpN + i * 16 + g + half * 8;
          if (n >= p.n) continue;
          float value = accumulator[i][j][half * 2 + e];
          // Channel: dot x activation scale x weight scale, the contract's order.
          if constexpr (!kBlockScaling) value = value * activation_scale * p.weight_scales[expert * p.n + n];
          partials[static_cast<int64_t>(pair) * p.n + n] = value;
        }
    }
}

// The instantiation for `config` (block_k and stages are runtime arguments).
template <bool kBlockScaling, int BlockM, int BlockN>
MoeFp8GemmKernel moe_fp8_gemm_by_warps(int warps) {
  switch (warps) {
    case 4: return moe_fp8_gemm_kernel<BlockM, BlockN, 4, kBlockScaling>;
    case 8: return moe_fp8_gemm_kernel<BlockM, BlockN, 8, kBlockScaling>;
    default: return nullptr;
  }
}
template <bool kBlockScaling, int BlockM>
MoeFp8GemmKernel moe_fp8_gemm_by_n(int block_n, int warps) {
  switch (block_n) {
    case 32: return moe_fp8_gemm_by_warps<kBlockScaling, BlockM, 32>(warps);
    case 64: return moe_fp8_gemm_by_warps<kBlockScaling, BlockM, 64>(warps);
    case 128: return moe_fp8_gemm_by_warps<kBlockScaling, BlockM, 128>(warps);
    default: return nullptr;
  }
}
template <bool kBlockScaling>
MoeFp8GemmKernel moe_fp8_gemm_for(const MoeFp8Config& config) {
  switch (config.block_m) {
    case 16: return moe_fp8_gemm_by_n<kBlockScaling, 16>(config.block_n, config.warps);
    case 32: return moe_fp8_gemm_by_n<kBlockScaling, 32>(config.block_n, config.warps);
    case 64: return moe_fp8_gemm_by_n<kBlockScaling, 64>(config.block_n, config.warps);
    default: return nullptr;
  }
}

}  // namespace rackserve::kernels
