// W8A8 FP8 y = x W^T for prefill-sized m: one CTA computes a 128 (tokens) x 64 (features)
// tile of y over its split's 128-wide K blocks, which stream through a 4-stage cp.async ring;
// ldmatrix feeds mma.sync m16n8k32 e4m3 (x the A operand, W the "col" B operand, as in
// linear_bf16_tiled.cuh with bytes for bf16 halves). One K block per stage is one scale block
// of the Block layout: its f32 partial gets both scales and joins the accumulator before the
// next block, as the contract says.
//
// Budget (per CTA of 8 warps, 4 x 2, warp tile 32 x 32; per 128-wide K block):
//   bytes      x 128 x 128 + W 64 x 128 = 24 KB through shared memory (6 cp.async of 16 B per thread)
//   MMAs       4 k32 steps x (2 x 4) = 32 per warp, 256 per CTA (1 M MAC): 43 MAC per byte staged
//   ldmatrix   per warp and k32 step: 2 x4 for A (32 rows) + 2 x4 for B (32 columns) = 2 KB
//   registers  accumulators 32 + (Block) the block's partials 32 + MMA results 32 + fragments
//              16 per step; ptxas: Block 181 (sm_120a) / 179 (sm_90a), Channel 108 / 112 of the
//              255 that __launch_bounds__(256, 1) allows, no spills. A 128 x 128 tile (64 x 32 per
//              warp) needs twice the accumulators and spilled in the Block layout, hence 128 x 64.
//   smem       4 stages x 24 KB = 96 KB (<= 99 KB, SM120; static_assert below): one CTA per SM
//   epilogue   Block: per K block 12 scale loads per thread (L1) and 32 FMAs, ~5% of the MMA issue
//   L2         x is re-read n / 64 times, W m / 128 times (the grid runs m tiles fastest, so the
//              CTAs sharing a W tile run together)
//   split-K    when the tiles do not fill the SMs (small n or m), K is split and the partials are
//              summed by linear_fp8_split_reduce (linear_split_k.cu)
#include <algorithm>

#include "common/device_utils.cuh"
#include "common/mma_utils.cuh"
#include "common/shared_memory_budget.cuh"
#include "gemm/linear_fp8.cuh"

namespace rackserve::kernels {

namespace {

// How the tiled FP8 GEMM runs (the problem itself is LinearFp8Params).
template <int BlockM, int BlockN, int Stages, int WarpsM, int WarpsN>
struct TiledFp8Config {
  static constexpr int kBlockM = BlockM, kBlockN = BlockN, kBlockK = kFp8BlockK, kStages = Stages;
  static constexpr int kWarpsM = WarpsM, kWarpsN = WarpsN, kThreads = WarpsM * WarpsN * 32;
  static constexpr int kWarpM = BlockM / WarpsM, kWarpN = BlockN / WarpsN;  // one warp's tile of y
  static constexpr int kFragmentsM = kWarpM / 16, kFragmentsN = kWarpN / 8;  // mma tiles per warp
  static constexpr int kChunksPerRow = kBlockK / 16;                         // 16-byte chunks of e4m3
  static constexpr int kStageBytes = (BlockM + BlockN) * kBlockK;            // x slice, then W slice
  static constexpr int kSharedBytes = Stages * kStageBytes;

  static_assert(kBlockK == 128, "the swizzle assumes 128-byte rows (8 chunks of 16 bytes)");
  static_assert(kWarpM * kWarpsM == BlockM && kWarpN * kWarpsN == BlockN, "the warps tile the CTA tile");
  static_assert(kWarpM % 16 == 0 && kWarpN % 16 == 0, "a warp tile is whole 16x32 ldmatrix_x4 blocks");
  static_assert((BlockM * kChunksPerRow) % kThreads == 0 && (BlockN * kChunksPerRow) % kThreads == 0,
                "every thread copies the same number of chunks per stage");
  static_assert(Stages >= 2, "a pipeline needs at least two buffers");
  static_assert(kSharedBytes <= kSharedMemoryBudgetBytes, "the SM120 budget is 99 KB of shared memory per block");
};

using PrefillConfig = TiledFp8Config</*BlockM=*/128, /*BlockN=*/64, /*Stages=*/4, /*WarpsM=*/4, /*WarpsN=*/2>;

// Byte offset of (row, 16-byte chunk) inside a [rows][128] e4m3 slice. ldmatrix reads one
// chunk of 8 consecutive rows: XOR-ing the chunk with row % 8 puts them in 8 different 16-byte
// bank groups; a row's 8 cp.async writes stay a permutation of its own 128-byte line.
__device__ __forceinline__ int swizzled_offset(int row, int chunk) { return row * 128 + ((chunk ^ (row & 7)) << 4); }

// Grid: x over m tiles (fastest, so consecutive CTAs share one W tile through L2), y over n
// tiles, z over K splits. Dynamic shared memory: Config::kSharedBytes.
template <typename Config, typename Output, bool kBlockScaling>
__global__ void __launch_bounds__(Config::kThreads, 1) linear_fp8_tiled_kernel(LinearFp8Params p,
                                                                               int k_blocks_per_split) {
  wait_for_prior_kernel();
  extern __shared__ __align__(128) uint8_t shared[];
  const int thread = threadIdx.x, lane = thread % 32, warp = thread / 32;
  const int warp_m = warp % Config::kWarpsM, warp_n = warp / Config::kWarpsM;
  const int g = lane / 4, t = lane % 4;
  const int64_t m_begin = static_cast<int64_t>(blockIdx.x) * Config::kBlockM;
  const int64_t n_begin = static_cast<int64_t>(blockIdx.y) * Config::kBlockN;
  const uint8_t* x = static_cast<const uint8_t*>(p.x);
  const uint8_t* weight = static_cast<const uint8_t*>(p.weight);
  const int k_blocks = static_cast<int>(fp8_k_blocks(p.k));
  const int kb_begin = static_cast<int>(blockIdx.z) * k_blocks_per_split;
  const int kb_count = min(kb_begin + k_blocks_per_split, k_blocks) - kb_begin;
  const uint32_t shared_base = smem_address(shared);

  // Copies K block `kb` of the x and W tiles into buffer `stage`; rows past m or n and chunks
  // past k are zero-filled (zeros add nothing to the product).
  auto load_stage = [&](int stage, int kb) {
    const uint32_t a_base = shared_base + stage * Config::kStageBytes;
    const uint32_t b_base = a_base + Config::kBlockM * Config::kBlockK;
    const int64_t k_begin = static_cast<int64_t>(kb) * Config::kBlockK;
#pragma unroll
    for (int i = 0; i < Config::kBlockM * Config::kChunksPerRow / Config::kThreads; ++i) {
      const int index = thread + i * Config::kThreads, row = index / Config::kChunksPerRow;
      const int chunk = index % Config::kChunksPerRow;
      const int64_t m = m_begin + row, k = k_begin + chunk * 16;
      const bool valid = m < p.m && k < p.k;
      cp_async_16(a_base + swizzled_offset(row, chunk), valid ? x + m * p.k + k : x, valid);
    }
#pragma unroll
    for (int i = 0; i < Config::kBlockN * Config::kChunksPerRow / Config::kThreads; ++i) {
      const int index = thread + i * Config::kThreads, row = index / Config::kChunksPerRow;
      const int chunk = index % Config::kChunksPerRow;
      const int64_t n = n_begin + row, k = k_begin + chunk * 16;
      const bool valid = n < p.n && k < p.k;
      cp_async_16(b_base + swizzled_offset(row, chunk), valid ? weight + n * p.k + k : weight, valid);
    }
  };

  // Block layout: where this thread's rows (x scales) and columns (W scales) start in the
  // scale tables; rows / columns past m / n read the last valid one (never stored).
  int x_scale_rows[Config::kFragmentsM][2] = {};
  int weight_scale_rows[Config::kFragmentsN][2] = {};
  if constexpr (kBlockScaling) {
#pragma unroll
    for (int i = 0; i < Config::kFragmentsM; ++i)
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int64_t m = m_begin + warp_m * Config::kWarpM + i * 16 + g + half * 8;
        x_scale_rows[i][half] = static_cast<int>(min(m, p.m - 1)) * k_blocks;
      }
#pragma unroll
    for (int j = 0; j < Config::kFragmentsN; ++j)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int64_t n = n_begin + warp_n * Config::kWarpN + j * 8 + 2 * t + e;
        weight_scale_rows[j][e] = static_cast<int>(min(n, p.n - 1) / p.block_out) * k_blocks;
      }
  }

  float accumulator[Config::kFragmentsM][Config::kFragmentsN][4] = {};

  // Prologue: Stages - 1 blocks in flight. Every iteration commits exactly one group (maybe
  // empty), so "group i holds block i" and wait<Stages - 2> means block i has landed.
#pragma unroll
  for (int stage = 0; stage < Config::kStages - 1; ++stage) {
    if (stage < kb_count) load_stage(stage, kb_begin + stage);
    cp_async_commit();
  }

  for (int i_block = 0; i_block < kb_count; ++i_block) {
    const int kb = kb_begin + i_block;
    cp_async_wait<Config::kStages - 2>();
    // Block i_block is visible to all warps, and every warp is done with the buffer the next
    // load overwrites (it held block i_block - 1).
    __syncthreads();
    const int next = i_block + Config::kStages - 1;
    if (next < kb_count) load_stage(next % Config::kStages, kb_begin + next);
    cp_async_commit();

    const uint32_t a_base = shared_base + (i_block % Config::kStages) * Config::kStageBytes;
    const uint32_t b_base = a_base + Config::kBlockM * Config::kBlockK;
    constexpr int kSteps = Config::kBlockK / 32;  // k32 steps per block
    // A: x4 = rows 0-7 / 8-15 of k 0-15, then of k 16-31 -> a[0..3] of the mma fragment.
    auto load_a = [&](uint32_t (&a)[4], int i, int step) {
      const int row = warp_m * Config::kWarpM + i * 16 + (lane & 15);
      ldmatrix_x4(a, a_base + swizzled_offset(row, step * 2 + (lane >> 4)));
    };
    // B = W^T stored n-major: x4 = (n 0-7, k 0-15), (n 0-7, k 16-31), (n 8-15, k 0-15),
    // (n 8-15, k 16-31) -> b[0..1] of two adjacent n8 fragments.
    auto load_b = [&](uint32_t (&b)[Config::kFragmentsN][2], int step) {
#pragma unroll
      for (int j = 0; j < Config::kFragmentsN / 2; ++j) {
        const int row = warp_n * Config::kWarpN + j * 16 + ((lane >> 4) << 3) + (lane & 7);
        uint32_t r[4];
        ldmatrix_x4(r, b_base + swizzled_offset(row, step * 2 + ((lane >> 3) & 1)));
        b[2 * j][0] = r[0];
        b[2 * j][1] = r[1];
        b[2 * j + 1][0] = r[2];
        b[2 * j + 1][1] = r[3];
      }
    };
    // Block: the f32 partial of this 128-wide block (a second set of accumulators), which
    // gets both scales and joins the accumulator after the block's 4 k32 steps. Every MMA runs
    // on a zero accumulator and is added in f32 (linear_fp8.cuh). The steps stay a loop: fully
    // unrolled, ptxas overlaps them past the 255 registers and spills.
    float partial[Config::kFragmentsM][Config::kFragmentsN][4] = {};
#pragma unroll 1
    for (int step = 0; step < kSteps; ++step) {
      uint32_t a[Config::kFragmentsM][4], b[Config::kFragmentsN][2];
#pragma unroll
      for (int i = 0; i < Config::kFragmentsM; ++i) load_a(a[i], i, step);
      load_b(b, step);
#pragma unroll
      for (int i = 0; i < Config::kFragmentsM; ++i)
#pragma unroll
        for (int j = 0; j < Config::kFragmentsN; ++j)
          mma_e4m3_add(kBlockScaling ? partial[i][j] : accumulator[i][j], a[i], b[j]);
    }
    if constexpr (kBlockScaling) {
      float x_scale[Config::kFragmentsM][2], weight_scale[Config::kFragmentsN][2];
#pragma unroll
      for (int i = 0; i < Config::kFragmentsM; ++i)
#pragma unroll
        for (int half = 0; half < 2; ++half) x_scale[i][half] = __ldg(p.x_scales + x_scale_rows[i][half] + kb);
#pragma unroll
      for (int j = 0; j < Config::kFragmentsN; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e) weight_scale[j][e] = __ldg(p.weight_scales + weight_scale_rows[j][e] + kb);
      // c0,c1 at (row g, columns 2t, 2t + 1), c2,c3 at row g + 8.
#pragma unroll
      for (int i = 0; i < Config::kFragmentsM; ++i)
#pragma unroll
        for (int j = 0; j < Config::kFragmentsN; ++j)
#pragma unroll
          for (int c = 0; c < 4; ++c)
            accumulator[i][j][c] =
                fmaf(partial[i][j][c], x_scale[i][c / 2] * weight_scale[j][c % 2], accumulator[i][j][c]);
    }
  }
  cp_async_wait<0>();  // only empty groups remain; leave nothing in flight at exit

  // Epilogue straight from the fragments. Pairs are stored as one 4/8-byte write when n is
  // even and the destination is 8-byte aligned. With splits the f32 partial goes to the
  // workspace (Channel scales already applied), summed later by the split reduction.
  const bool split = gridDim.z > 1;
  Output* y = static_cast<Output*>(p.y);
  float* partial_y = split ? p.workspace + static_cast<int64_t>(blockIdx.z) * p.m * p.n : nullptr;
  const void* destination = split ? static_cast<const void*>(partial_y) : p.y;
  const bool paired = (p.n % 2 == 0) && (reinterpret_cast<uintptr_t>(destination) % 8 == 0);
#pragma unroll
  for (int i = 0; i < Config::kFragmentsM; ++i) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int64_t m = m_begin + warp_m * Config::kWarpM + i * 16 + g + half * 8;
      if (m >= p.m) continue;
      const float x_scale = kBlockScaling ? 1.0f : p.x_scales[m];
#pragma unroll
      for (int j = 0; j < Config::kFragmentsN; ++j) {
        const int64_t n = n_begin + warp_n * Config::kWarpN + j * 8 + 2 * t;
        float first = accumulator[i][j][2 * half], second = accumulator[i][j][2 * half + 1];
        if constexpr (!kBlockScaling) {
          // Channel: dot * x_scale * w_scale, in the contract's order.
          first = first * x_scale * (n < p.n ? p.weight_scales[n] : 0.0f);
          second = second * x_scale * (n + 1 < p.n ? p.weight_scales[n + 1] : 0.0f);
        }
        if (split) {
          if (paired && n + 1 < p.n) {
            store_y_pair(partial_y, m * p.n + n, first, second);
          } else {
            if (n < p.n) store_y(partial_y, m * p.n + n, first);
            if (n + 1 < p.n) store_y(partial_y, m * p.n + n + 1, second);
          }
        } else if (paired && n + 1 < p.n) {
          store_y_pair(y, m * p.n + n, first, second);
        } else {
          if (n < p.n) store_y(y, m * p.n + n, first);
          if (n + 1 < p.n) store_y(y, m * p.n + n + 1, second);
        }
      }
    }
  }
}

template <typename Config, typename Output, bool kBlockScaling>
int launch_tiled(const LinearFp8Params& p, const LinearFp8Config& config, cudaStream_t stream) {
  auto kernel = linear_fp8_tiled_kernel<Config, Output, kBlockScaling>;
  if (int status = opt_in_dynamic_shared_memory(reinterpret_cast<const void*>(kernel), Config::kSharedBytes,
                                                "linear_fp8_tiled"))
    return status;
  const int64_t m_tiles = (p.m + Config::kBlockM - 1) / Config::kBlockM;
  const int64_t n_tiles = (p.n + Config::kBlockN - 1) / Config::kBlockN;
  if (m_tiles > INT32_MAX || n_tiles > 65535) return cudaErrorInvalidValue;
  dim3 grid(static_cast<unsigned>(m_tiles), static_cast<unsigned>(n_tiles), static_cast<unsigned>(config.splits));
  kernel<<<grid, Config::kThreads, Config::kSharedBytes, stream>>>(p, config.k_blocks_per_split);
  if (int status = launch_status()) return status;
  return config.splits > 1 ? launch_linear_fp8_split_reduce(p, config.splits, stream) : cudaSuccess;
}

template <typename Output>
int dispatch_layout(const LinearFp8Params& p, const LinearFp8Config& config, cudaStream_t stream) {
  return p.layout == Fp8ScaleLayout::Block ? launch_tiled<PrefillConfig, Output, true>(p, config, stream)
                                           : launch_tiled<PrefillConfig, Output, false>(p, config, stream);
}

}  // namespace

LinearFp8Config plan_linear_fp8_tiled(int64_t m, int64_t n, int64_t k, int sm_count) {
  sm_count = resolve_sm_count(sm_count);
  constexpr int kMinBlocksPerSplit = 4;  // keeps the ring busy past its prologue
  const int64_t k_blocks = std::max<int64_t>(1, fp8_k_blocks(k));
  const int64_t tiles = std::max<int64_t>(1, (m + PrefillConfig::kBlockM - 1) / PrefillConfig::kBlockM) *
                        std::max<int64_t>(1, (n + PrefillConfig::kBlockN - 1) / PrefillConfig::kBlockN);
  // One CTA per SM (registers and shared memory both allow one): the time is waves x K blocks
  // per split. Take the fewest splits within 5% of the best (each split adds an f32 partial of
  // the tile to write and sum).
  const int64_t limit = std::max<int64_t>(1, std::min<int64_t>(k_blocks / kMinBlocksPerSplit, 64));
  auto cost = [&](int64_t candidate) {
    const int64_t per_split = (k_blocks + candidate - 1) / candidate;
    const int64_t used = (k_blocks + per_split - 1) / per_split;
    return static_cast<double>((tiles * used + sm_count - 1) / sm_count * per_split);
  };
  double best = cost(1);
  for (int64_t candidate = 2; candidate <= limit; ++candidate) best = std::min(best, cost(candidate));
  int64_t splits = 1;
  while (cost(splits) > best * 1.05) ++splits;
  const SplitK cut = split_k_evenly(k_blocks, splits);
  LinearFp8Config config;
  config.splits = cut.splits;
  config.k_blocks_per_split = cut.k_blocks_per_split;
  return config;
}

int launch_linear_fp8_tiled(const LinearFp8Params& p, const LinearFp8Config& config, Stream stream) {
  if (int status = validate_linear_fp8(p, config)) return status;
  if (p.segment_rows != 0) return cudaErrorInvalidValue;  // the small-M kernel's option only
  if (p.m == 0) return cudaSuccess;
  auto s = static_cast<cudaStream_t>(stream);
  return p.y_type == ElementType::F32 ? dispatch_layout<float>(p, config, s)
                                      : dispatch_layout<__nv_bfloat16>(p, config, s);
}

}  // namespace rackserve::kernels
