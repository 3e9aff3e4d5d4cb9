// W8A8 FP8 y = x W^T for decode-sized m (<= 64): the weights are the stream, read once.
// One CTA owns 16 weight rows (the 16-row A operand of mma.sync m16n8k32 e4m3) and a range of
// 128-wide K blocks (its split). The tokens are the 8-column B operand: a warp holds up to 4 n8
// tiles of them (m = 1..8 wastes no weight traffic); for m > 32 the CTA's warps form two groups
// of 4, one per 32 tokens. Within a group, warp w takes every 4th (or 8th) block of the range.
//
// Weights go global -> shared through a per-warp cp.async ring, and each lane copies and reads
// back only its own chunks: the 16-byte chunks at k offsets 16t and 64 + 16t of one K block,
// for weight rows g and g + 8 (and it loads the same offsets of token g's x from L1/L2). Its 8
// words are the fragments of the block's 4 MMAs in a fixed order, which permutes k inside the
// block identically for A and B (the lane holding k slot 4t of A holds slot 4t of B), so the
// dot product, and the Block layout's per-block scale, are unchanged. Each MMA runs on a zero
// accumulator and is added in f32 (linear_fp8.cuh says why).
//
// Budget (per warp, per 128-wide K block; T = token tiles of 8 per warp = 1, 2 or 4):
//   bytes      weights 16 rows x 128 = 2 KB (4 cp.async of 16 B per lane, L1 bypassed, 64
//              contiguous bytes per row per instruction = whole sectors); x T x 1 KB (2 loads of
//              16 B per lane per tile, L1/L2); Block scales 2 + 2T floats per lane (L1)
//   MMAs       4T m16n8k32 (16 rows x 8T tokens x 128 k): 8T MAC per weight byte (x2 groups for m > 32)
//   registers  (ptxas, sm_120a) T = 1: 64 / 80 (Channel / Block), T = 2: 78 / 108, T = 4: 124 / 162,
//              no spills; T <= 2 runs 2 CTAs per SM (<= 128 registers), T = 4 one
//   smem       the ring: 8 warps x stages x 2 KB = 48 KB (3 stages, T <= 2) or 96 KB (6 stages,
//              T = 4); reused after the K loop for the cross-warp reduction (8 x 4T x 32 floats)
//   in flight  (stages - 1) x 2 KB per warp = 64 KB (T <= 2, 2 CTAs) or 80 KB (T = 4) per SM;
//              DRAM needs ~ (1.8 TB/s / 188 SMs) x ~1 us = ~10 KB per SM on SM120
//   time       DRAM share of one block per SM: 2 KB / 9.6 GB/s = ~550 clocks at 2.6 GHz; the
//              MMAs of m = 64 (2 groups x T = 4) take ~32 x 4096 / 512 MAC per clock = ~256 clocks
//              (SM120 e4m3 mma.sync rate, estimated): memory-bound for every m <= 64
//   grid       ceil(n / 16) x splits CTAs, splits planned by waves of resident CTAs x blocks per
//              warp (plan_small_m_split_k; kv_a 576 x 7168: 36 x 7), capped so every warp keeps >= 1 block and the f32
//              partials (splits x m x n x 8 B of workspace traffic) stay small next to the weights
#include <algorithm>

#include "common/device_utils.cuh"
#include "common/mma_utils.cuh"
#include "common/shared_memory_budget.cuh"
#include "gemm/linear_fp8.cuh"

namespace rackserve::kernels {

namespace {

constexpr int kWarps = 8, kThreads = kWarps * 32;
constexpr int kRowsPerCta = 16;
constexpr int kMaxTokens = 64;
constexpr int kChunksPerLane = 4;  // rows g, g + 8 x k offsets 16t, 64 + 16t

// How the kernel runs for T token tiles per warp and G token groups (8T x G tokens). With
// T <= 2 the registers fit 128 per thread and two CTAs share an SM, with 3 ring stages each;
// with T = 4 the f32 partials and x fragments need more, so one CTA per SM gets 6 stages.
// Shared memory: the weight ring, [kWarps][kStages][4 chunks][32 lanes] x 16 bytes (each lane
// reads back only the chunks it copied itself, so the ring needs no barrier), then, after the
// K loop, the cross-warp reduction [kWarps][4T][32] floats in the same bytes.
template <int kTokenTiles, int kTokenGroups>
struct SmallMConfig {
  static_assert(kTokenTiles == 1 || kTokenTiles == 2 || kTokenTiles == 4, "1, 2 or 4 n8 tiles per warp");
  static_assert(kTokenGroups == 1 || (kTokenGroups == 2 && kTokenTiles == 4), "two groups only when full");
  static constexpr int kCtasPerSm = kTokenTiles <= 2 ? 2 : 1;
  static constexpr int kStages = kTokenTiles <= 2 ? 3 : 6;
  static constexpr int kWarpsPerGroup = kWarps / kTokenGroups;  // warps sharing one token group's K range
  static constexpr int kValues = kTokenTiles * 4;               // accumulator floats per lane
  static constexpr int kRingBytes = kWarps * kStages * kChunksPerLane * 32 * 16;
  static constexpr int kReductionBytes = kWarps * kValues * 32 * 4;
  static constexpr int kSharedBytes = kRingBytes > kReductionBytes ? kRingBytes : kReductionBytes;
  static_assert(kSharedBytes <= kSharedMemoryBudgetBytes, "the SM120 budget is 99 KB of shared memory per block");
  static_assert(kCtasPerSm * (kSharedBytes + 1024) <= 100 * 1024, "SM120 has 100 KB of shared memory per SM");
};

// Resident CTAs per SM for m tokens (the planner's target).
int ctas_per_sm(int64_t m) { return m <= 16 ? SmallMConfig<2, 1>::kCtasPerSm : SmallMConfig<4, 1>::kCtasPerSm; }

__device__ __forceinline__ uint32_t word(const uint4 (&chunks)[2], int index) {
  const uint4& chunk = chunks[index / 4];
  switch (index % 4) {
    case 0: return chunk.x;
    case 1: return chunk.y;
    case 2: return chunk.z;
    default: return chunk.w;
  }
}

// The 4 MMAs of one K block, added in f32 into d: mma j uses words 2j (k slots 4t..) and
// 2j + 1 (slots 16 + 4t..) of the lane's two chunks, for A (rows g, g + 8) and B (token g) alike.
__device__ __forceinline__ void mma_k_block(float (&d)[4], const uint4 (&weights)[2][2], const uint4 (&x)[2]) {
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const uint32_t a[4] = {word(weights[0], 2 * j), word(weights[1], 2 * j), word(weights[0], 2 * j + 1),
                           word(weights[1], 2 * j + 1)};
    const uint32_t b[2] = {word(x, 2 * j), word(x, 2 * j + 1)};
    mma_e4m3_add(d, a, b);
  }
}

// Grid: x over 16-row groups of W, y over K splits. Dynamic shared memory: Config::kSharedBytes.
template <int kTokenTiles, int kTokenGroups, bool kBlockScaling>
__global__ void __launch_bounds__(kThreads, SmallMConfig<kTokenTiles, kTokenGroups>::kCtasPerSm)
    linear_fp8_small_m_kernel(LinearFp8Params p, int k_blocks_per_split) {
  using Config = SmallMConfig<kTokenTiles, kTokenGroups>;
  constexpr int kStages = Config::kStages, kWarpsPerGroup = Config::kWarpsPerGroup, kValues = Config::kValues;
  extern __shared__ __align__(16) uint8_t shared[];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, t = lane % 4;
  const int group = warp / kWarpsPerGroup, warp_in_group = warp % kWarpsPerGroup;
  const int token_begin = group * kTokenTiles * 8;
  const int64_t n_begin = static_cast<int64_t>(blockIdx.x) * kRowsPerCta;
  const int k_blocks = static_cast<int>(fp8_k_blocks(p.k));
  const int kb_begin = static_cast<int>(blockIdx.y) * k_blocks_per_split;
  const int kb_end = min(kb_begin + k_blocks_per_split, k_blocks);
  // This warp's blocks: my_first, + kWarpsPerGroup, ... (maybe none).
  const int my_first = kb_begin + warp_in_group;
  const int my_count = my_first < kb_end ? (kb_end - my_first + kWarpsPerGroup - 1) / kWarpsPerGroup : 0;
  // Rows past n and tokens past m read row n - 1 / token m - 1 (valid memory); their results
  // are never stored.
  const int64_t rows[2] = {min(n_begin + g, p.n - 1), min(n_begin + g + 8, p.n - 1)};
  const uint8_t* weight = static_cast<const uint8_t*>(p.weight);
  const uint8_t* x = static_cast<const uint8_t*>(p.x);
  const int chunk_offsets[2] = {16 * t, 64 + 16 * t};
  int weight_scale_rows[2] = {0, 0};
  if constexpr (kBlockScaling)
    for (int r = 0; r < 2; ++r) weight_scale_rows[r] = static_cast<int>(rows[r] / p.block_out) * k_blocks;
  // Chunk (stage, r, c) of this lane; a warp's 32 lanes' chunks are 512 contiguous bytes
  // (conflict-free 16-byte accesses).
  const uint32_t ring = smem_address(shared) + (warp * kStages * kChunksPerLane * 32 + lane) * 16;
  auto chunk_address = [&](int stage, int r, int c) {
    return ring + ((stage * kChunksPerLane + r * 2 + c) * 32) * 16;
  };

  // Copies this lane's 4 chunks of the warp's i-th block into its ring slot. Chunks past k
  // (Channel with k % 128 != 0; k % 16 == 0 so a chunk is all in or all out) are zero-filled,
  // and the x chunks there are zeros too.
  auto load_block = [&](int i) {
    const int64_t k0 = static_cast<int64_t>(my_first + i * kWarpsPerGroup) * kFp8BlockK;
#pragma unroll
    for (int r = 0; r < 2; ++r)
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int64_t k = k0 + chunk_offsets[c];
        const bool valid = k < p.k;
        cp_async_16(chunk_address(i % kStages, r, c), valid ? weight + rows[r] * p.k + k : weight, valid);
      }
  };

  float accumulator[kTokenTiles][4] = {};
  // Prologue: kStages - 1 blocks in flight. Every iteration commits exactly one group (maybe
  // empty), so "group i holds block i" and wait<kStages - 2> means block i has landed.
#pragma unroll
  for (int i = 0; i < kStages - 1; ++i) {
    if (i < my_count) load_block(i);
    cp_async_commit();
  }
  for (int i = 0; i < my_count; ++i) {
    const int kb = my_first + i * kWarpsPerGroup;
    cp_async_wait<kStages - 2>();  // this lane's own copies of block i have landed
    uint4 slice[2][2];
#pragma unroll
    for (int r = 0; r < 2; ++r)
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const uint32_t address = chunk_address(i % kStages, r, c);
        asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];\n"
                     : "=r"(slice[r][c].x), "=r"(slice[r][c].y), "=r"(slice[r][c].z), "=r"(slice[r][c].w)
                     : "r"(address)
                     : "memory");
      }
    // Into the slot of block i - 1, which this lane finished reading one iteration ago.
    if (i + kStages - 1 < my_count) load_block(i + kStages - 1);
    cp_async_commit();

    float weight_scale[2] = {0.0f, 0.0f};
    if constexpr (kBlockScaling)
      for (int r = 0; r < 2; ++r) weight_scale[r] = __ldg(p.weight_scales + weight_scale_rows[r] + kb);
#pragma unroll
    for (int tile = 0; tile < kTokenTiles; ++tile) {
      const int64_t token = min(static_cast<int64_t>(token_begin + tile * 8 + g), p.m - 1);
      uint4 x_chunks[2];
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int64_t k = static_cast<int64_t>(kb) * kFp8BlockK + chunk_offsets[c];
        x_chunks[c] = k < p.k ? __ldg(reinterpret_cast<const uint4*>(x + token * p.k + k)) : make_uint4(0, 0, 0, 0);
      }
      // The f32 partial dot of this 128-wide block.
      float partial[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      mma_k_block(partial, slice, x_chunks);
      if constexpr (kBlockScaling) {
        // Block: times both scales, into the accumulator.
        const int64_t token0 = min(static_cast<int64_t>(token_begin + tile * 8 + 2 * t), p.m - 1);
        const int64_t token1 = min(static_cast<int64_t>(token_begin + tile * 8 + 2 * t + 1), p.m - 1);
        const float x_scale0 = __ldg(p.x_scales + token0 * k_blocks + kb);
        const float x_scale1 = __ldg(p.x_scales + token1 * k_blocks + kb);
        accumulator[tile][0] = fmaf(partial[0], x_scale0 * weight_scale[0], accumulator[tile][0]);
        accumulator[tile][1] = fmaf(partial[1], x_scale1 * weight_scale[0], accumulator[tile][1]);
        accumulator[tile][2] = fmaf(partial[2], x_scale0 * weight_scale[1], accumulator[tile][2]);
        accumulator[tile][3] = fmaf(partial[3], x_scale1 * weight_scale[1], accumulator[tile][3]);
      } else {
#pragma unroll
        for (int c = 0; c < 4; ++c) accumulator[tile][c] += partial[c];  // Channel: one dot over all of k
      }
    }
  }
  cp_async_wait<0>();  // only empty groups remain; leave nothing in flight

  // Sum each group's warps' partials (each covered its own K blocks) in warp order, in the
  // ring's bytes: after this barrier no warp reads the ring any more.
  __syncthreads();
  float* partials = reinterpret_cast<float*>(shared);  // [kWarps][kValues][32], warps of a group adjacent
#pragma unroll
  for (int tile = 0; tile < kTokenTiles; ++tile)
#pragma unroll
    for (int c = 0; c < 4; ++c) partials[(warp * kValues + tile * 4 + c) * 32 + lane] = accumulator[tile][c];
  __syncthreads();
  const bool split = gridDim.y > 1;
  for (int e = threadIdx.x; e < kTokenGroups * kValues * 32; e += kThreads) {
    const int e_group = e / (kValues * 32), e_value = e % (kValues * 32);
    float sum = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarpsPerGroup; ++w) sum += partials[((e_group * kWarpsPerGroup + w) * kValues) * 32 + e_value];
    // Value e_value is accumulator[tile][c] of lane l: c0,c1 at (row g, tokens 2t, 2t + 1),
    // c2,c3 at row g + 8.
    const int value = e_value / 32, l = e_value % 32, tile = value / 4, c = value % 4;
    const int64_t row = n_begin + l / 4 + (c >= 2 ? 8 : 0);
    const int64_t token = e_group * kTokenTiles * 8 + tile * 8 + 2 * (l % 4) + (c & 1);
    if (row >= p.n || token >= p.m) continue;
    if constexpr (!kBlockScaling) sum = sum * p.x_scales[token] * p.weight_scales[row];  // Channel epilogue
    if (split)
      p.workspace[(static_cast<int64_t>(blockIdx.y) * p.m + token) * p.n + row] = sum;
    else
      store_element(p.y, p.y_type, token * p.n + row, sum);
  }
}

template <int kTokenTiles, int kTokenGroups, bool kBlockScaling>
int launch_small_m(const LinearFp8Params& p, const LinearFp8Config& config, cudaStream_t stream) {
  auto kernel = linear_fp8_small_m_kernel<kTokenTiles, kTokenGroups, kBlockScaling>;
  constexpr int kSharedBytes = SmallMConfig<kTokenTiles, kTokenGroups>::kSharedBytes;
  if (int status = opt_in_dynamic_shared_memory(reinterpret_cast<const void*>(kernel), kSharedBytes,
                                                "linear_fp8_small_m"))
    return status;
  const int64_t row_ctas = (p.n + kRowsPerCta - 1) / kRowsPerCta;
  if (row_ctas > INT32_MAX) return cudaErrorInvalidValue;
  dim3 grid(static_cast<unsigned>(row_ctas), static_cast<unsigned>(config.splits));
  kernel<<<grid, kThreads, kSharedBytes, stream>>>(p, config.k_blocks_per_split);
  if (int status = launch_status()) return status;
  return config.splits > 1 ? launch_linear_fp8_split_reduce(p, config.splits, stream) : cudaSuccess;
}

template <bool kBlockScaling>
int dispatch_tokens(const LinearFp8Params& p, const LinearFp8Config& config, cudaStream_t stream) {
  if (p.m <= 8) return launch_small_m<1, 1, kBlockScaling>(p, config, stream);
  if (p.m <= 16) return launch_small_m<2, 1, kBlockScaling>(p, config, stream);
  if (p.m <= 32) return launch_small_m<4, 1, kBlockScaling>(p, config, stream);
  return launch_small_m<4, 2, kBlockScaling>(p, config, stream);
}

}  // namespace

LinearFp8Config plan_linear_fp8_small_m(int64_t m, int64_t n, int64_t k, int sm_count) {
  const int64_t k_blocks = std::max<int64_t>(1, fp8_k_blocks(k));
  const int64_t row_ctas = std::max<int64_t>(1, (n + kRowsPerCta - 1) / kRowsPerCta);
  const int64_t tokens = std::max<int64_t>(1, m);
  // Every warp of a CTA keeps at least one K block; the f32 partials (written and read back:
  // 8 x splits x m x n bytes) stay within ~half the weight bytes (n x k).
  const SplitK cut = plan_small_m_split_k(row_ctas, ctas_per_sm(tokens) * int64_t{resolve_sm_count(sm_count)},
                                          k_blocks, tokens > 32 ? kWarps / 2 : kWarps,
                                          std::min(k_blocks / kWarps, k / (16 * tokens)));
  LinearFp8Config config;
  config.splits = cut.splits;
  config.k_blocks_per_split = cut.k_blocks_per_split;
  return config;
}

int launch_linear_fp8_small_m(const LinearFp8Params& p, const LinearFp8Config& config, Stream stream) {
  if (int status = validate_linear_fp8(p, config)) return status;
  if (p.m > kMaxTokens) return cudaErrorInvalidValue;
  if (p.m == 0) return cudaSuccess;
  auto s = static_cast<cudaStream_t>(stream);
  return p.layout == Fp8ScaleLayout::Block ? dispatch_tokens<true>(p, config, s) : dispatch_tokens<false>(p, config, s);
}

}  // namespace rackserve::kernels
