// BF16 y = x W^T for decode-sized m (<= 64) on tensor cores: the weights are the stream, read
// once. The FP8 small-M design (linear_fp8_small_m.cu) with bf16 bytes: a warp owns 16 weight
// rows (the 16-row A operand of mma.sync m16n8k16) and every (8 / row_warps)-th 64-wide K
// block of its CTA's split; the tokens are the 8-column B operand, T n8 tiles per warp (all m
// tokens: T = 1, 2, 4, 8 for m <= 8, 16, 32, 64). A CTA is row_warps (1, 2, 4) warps over rows
// times 8 / row_warps over K; the warps over rows read the same x block at about the same
// time, so x comes from L2 m / (16 row_warps) times per weight byte instead of m / 16 (L1
// serves the rest; the plan keeps that ratio <= 1).
//
// Weights go global -> shared through a per-warp cp.async ring, and each lane copies and reads
// back only its own chunks: the 16-byte chunks at k offsets 8t and 32 + 8t of one K block, for
// weight rows g and g + 8 (and it loads the same offsets of token g's x from L1/L2). Its 8
// words are the fragments of the block's 4 MMAs: MMA j takes words 2j and 2j + 1 (k slots
// 2t.. and 8 + 2t..) of A (rows g, g + 8) and of B (token g) alike, which permutes k inside
// the block identically for both operands, so the dot product is unchanged.
//
// Budget (per warp, per 64-wide K block):
//   bytes      weights 16 rows x 128 B = 2 KB (4 cp.async of 16 B per lane, L1 bypassed, 64
//              contiguous bytes per row per instruction = whole sectors); x T x 1 KB (2 loads of
//              16 B per lane per tile, issued before the ring wait so their latency overlaps it)
//   MMAs       4T m16n8k16: 16 rows x 8T tokens x 64 k, f32 accumulators in the MMA
//   registers  T <= 4 runs 2 CTAs per SM (<= 128 registers), T = 8 one; ptxas numbers in
//              docs/kernels.md
//   smem       the ring: 8 warps x stages x 2 KB = 48 KB (3 stages, T <= 4) or 96 KB (6 stages,
//              T = 8); reused after the K loop for the cross-warp reduction (8 x 4T x 32 floats)
//   in flight  (stages - 1) x 2 KB per warp = 64 KB (T <= 4, 2 CTAs) or 80 KB (T = 8) per SM;
//              DRAM needs ~ bandwidth x latency per SM: 4.8 TB/s x ~1 us / 132 = ~36 KB on H200,
//              1.8 TB/s x ~1 us / 188 = ~10 KB on SM120
//   time       H200 DRAM share of one 2 KB block per SM: ~125 clocks (16 B/clock/SM at 1.98 GHz);
//              its MMAs for m = 64: 32 HMMA.16816 per warp-block, far below the tensor rate:
//              memory-bound for every m <= 64
#include <algorithm>

#include "common/device_utils.cuh"
#include "common/mma_utils.cuh"
#include "common/shared_memory_budget.cuh"
#include "gemm/linear_split_k.cuh"
#include "rackserve/kernels/gemm_params.h"

namespace rackserve::kernels {

namespace {

constexpr int kWarps = 8, kThreads = kWarps * 32;
constexpr int kBlockK = kLinearBf16SmallMBlockK;  // bf16 per weight row per K block (128 bytes)
constexpr int kChunksPerLane = 4;                 // rows g, g + 8 x k offsets 8t, 32 + 8t
static_assert(kBlockK == 64, "a K block is 4 lanes x 2 chunks of 8 bf16 per row");

// How the kernel runs for T token tiles per warp and R warps over rows. T <= 4 fits 128
// registers per thread, so two CTAs share an SM with 3 ring stages each; T = 8 needs more
// (32 accumulators and 64 registers of x per block), so one CTA per SM gets 6 stages.
// Shared memory: the weight ring, [kWarps][kStages][4 chunks][32 lanes] x 16 bytes (each lane
// reads back only the chunks it copied itself, so the ring needs no barrier), then, after the
// K loop, the cross-warp reduction [kWarps][4T][32] floats in the same bytes.
template <int kTokenTiles, int kRowWarps>
struct SmallMConfig {
  static_assert(kTokenTiles == 1 || kTokenTiles == 2 || kTokenTiles == 4 || kTokenTiles == 8, "1..8 n8 tiles");
  static_assert(kRowWarps == 1 || kRowWarps == 2 || kRowWarps == 4, "1, 2 or 4 warps over rows");
  static constexpr int kKWarps = kWarps / kRowWarps;  // warps sharing a row group's K range
  static constexpr int kRowsPerCta = 16 * kRowWarps;
  static constexpr int kCtasPerSm = kTokenTiles <= 4 ? 2 : 1;
  static constexpr int kStages = kTokenTiles <= 4 ? 3 : 6;
  static constexpr int kValues = kTokenTiles * 4;  // accumulator floats per lane
  static constexpr int kRingBytes = kWarps * kStages * kChunksPerLane * 32 * 16;
  static constexpr int kReductionBytes = kWarps * kValues * 32 * 4;
  static constexpr int kSharedBytes = kRingBytes > kReductionBytes ? kRingBytes : kReductionBytes;
  static_assert(kSharedBytes <= kSharedMemoryBudgetBytes, "the SM120 budget is 99 KB of shared memory per block");
  static_assert(kCtasPerSm * (kSharedBytes + 1024) <= 100 * 1024, "SM120 has 100 KB of shared memory per SM");
};

int64_t token_tiles(int64_t m) { return m <= 8 ? 1 : m <= 16 ? 2 : m <= 32 ? 4 : 8; }
int ctas_per_sm(int64_t m) { return token_tiles(m) <= 4 ? 2 : 1; }
// The fewest warps over rows that keep x's L2 traffic <= the weight bytes (m / (16 R) <= 1).
int min_row_warps(int64_t m) { return m <= 16 ? 1 : m <= 32 ? 2 : 4; }

__device__ __forceinline__ uint32_t word(const uint4 (&chunks)[2], int index) {
  const uint4& chunk = chunks[index / 4];
  switch (index % 4) {
    case 0: return chunk.x;
    case 1: return chunk.y;
    case 2: return chunk.z;
    default: return chunk.w;
  }
}

// The 4 MMAs of one K block into d: mma j uses words 2j (k slots 2t..) and 2j + 1 (slots
// 8 + 2t..) of the lane's two chunks, for A (rows g, g + 8) and B (token g) alike.
__device__ __forceinline__ void mma_k_block(float (&d)[4], const uint4 (&weights)[2][2], const uint4 (&x)[2]) {
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const uint32_t a[4] = {word(weights[0], 2 * j), word(weights[1], 2 * j), word(weights[0], 2 * j + 1),
                           word(weights[1], 2 * j + 1)};
    const uint32_t b[2] = {word(x, 2 * j), word(x, 2 * j + 1)};
    mma_bf16_16x8x16(d, a, b);
  }
}

// Grid: x over row groups of 16 x kRowWarps, y over K splits. Dynamic shared memory:
// Config::kSharedBytes.
template <int kTokenTiles, int kRowWarps>
__global__ void __launch_bounds__(kThreads, SmallMConfig<kTokenTiles, kRowWarps>::kCtasPerSm)
    linear_bf16_small_m_mma_kernel(LinearBf16Params p, int k_blocks_per_split) {
  using Config = SmallMConfig<kTokenTiles, kRowWarps>;
  constexpr int kStages = Config::kStages, kKWarps = Config::kKWarps, kValues = Config::kValues;
  extern __shared__ __align__(16) uint8_t shared[];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, t = lane % 4;
  const int row_warp = warp / kKWarps, k_warp = warp % kKWarps;
  const int64_t cta_row_begin = static_cast<int64_t>(blockIdx.x) * Config::kRowsPerCta;
  const int64_t n_begin = cta_row_begin + row_warp * 16;  // this warp's 16 rows
  const int k_blocks = static_cast<int>((p.k + kBlockK - 1) / kBlockK);
  const int kb_begin = static_cast<int>(blockIdx.y) * k_blocks_per_split;
  const int kb_end = min(kb_begin + k_blocks_per_split, k_blocks);
  // This warp's blocks: my_first, + kKWarps, ... (maybe none).
  const int my_first = kb_begin + k_warp;
  const int my_count = my_first < kb_end ? (kb_end - my_first + kKWarps - 1) / kKWarps : 0;
  // Rows past n and tokens past m read row n - 1 / token m - 1 (valid memory); their results
  // are never stored.
  const int64_t rows[2] = {min(n_begin + g, p.n - 1), min(n_begin + g + 8, p.n - 1)};
  const __nv_bfloat16* weight = static_cast<const __nv_bfloat16*>(p.weight);
  const __nv_bfloat16* x = static_cast<const __nv_bfloat16*>(p.x);
  const int chunk_offsets[2] = {8 * t, 32 + 8 * t};
  const __nv_bfloat16* x_rows[kTokenTiles];
#pragma unroll
  for (int tile = 0; tile < kTokenTiles; ++tile)
    x_rows[tile] = x + min(static_cast<int64_t>(tile * 8 + g), p.m - 1) * p.k;
  // Chunk (stage, r, c) of this lane; a warp's 32 lanes' chunks are 512 contiguous bytes
  // (conflict-free 16-byte accesses).
  const uint32_t ring = smem_address(shared) + (warp * kStages * kChunksPerLane * 32 + lane) * 16;
  auto chunk_address = [&](int stage, int r, int c) {
    return ring + ((stage * kChunksPerLane + r * 2 + c) * 32) * 16;
  };

  // Copies this lane's 4 chunks of the warp's i-th block into its ring slot. Chunks past k
  // (k % 64 != 0; k % 8 == 0 so a chunk is all in or all out) are zero-filled, and the x
  // chunks there are zeros too.
  auto load_block = [&](int i) {
    const int64_t k0 = static_cast<int64_t>(my_first + i * kKWarps) * kBlockK;
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
    const int64_t kb0 = static_cast<int64_t>(my_first + i * kKWarps) * kBlockK;
    // x first: its L1/L2 latency overlaps the wait for the weights.
    uint4 x_chunks[kTokenTiles][2];
#pragma unroll
    for (int tile = 0; tile < kTokenTiles; ++tile)
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int64_t k = kb0 + chunk_offsets[c];
        x_chunks[tile][c] =
            k < p.k ? __ldg(reinterpret_cast<const uint4*>(x_rows[tile] + k)) : make_uint4(0, 0, 0, 0);
      }
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
#pragma unroll
    for (int tile = 0; tile < kTokenTiles; ++tile) mma_k_block(accumulator[tile], slice, x_chunks[tile]);
  }
  cp_async_wait<0>();  // only empty groups remain; leave nothing in flight

  // Sum each row group's K warps' partials (each covered its own K blocks) in warp order, in
  // the ring's bytes: after this barrier no warp reads the ring any more.
  __syncthreads();
  float* partials = reinterpret_cast<float*>(shared);  // [kWarps][kValues][32], K warps of a row group adjacent
#pragma unroll
  for (int tile = 0; tile < kTokenTiles; ++tile)
#pragma unroll
    for (int c = 0; c < 4; ++c) partials[(warp * kValues + tile * 4 + c) * 32 + lane] = accumulator[tile][c];
  __syncthreads();
  const bool split = gridDim.y > 1;
  for (int e = threadIdx.x; e < kRowWarps * kValues * 32; e += kThreads) {
    const int e_row_warp = e / (kValues * 32), e_value = e % (kValues * 32);
    float sum = 0.0f;
#pragma unroll
    for (int w = 0; w < kKWarps; ++w) sum += partials[((e_row_warp * kKWarps + w) * kValues) * 32 + e_value];
    // Value e_value is accumulator[tile][c] of lane l: c0,c1 at (row g, tokens 2t, 2t + 1),
    // c2,c3 at row g + 8.
    const int value = e_value / 32, l = e_value % 32, tile = value / 4, c = value % 4;
    const int64_t row = cta_row_begin + e_row_warp * 16 + l / 4 + (c >= 2 ? 8 : 0);
    const int64_t token = tile * 8 + 2 * (l % 4) + (c & 1);
    if (row >= p.n || token >= p.m) continue;
    if (split)
      p.workspace[(static_cast<int64_t>(blockIdx.y) * p.m + token) * p.n + row] = sum;
    else
      store_element(p.y, p.y_type, token * p.n + row, sum);
  }
}

template <int kTokenTiles, int kRowWarps>
int launch_small_m(const LinearBf16Params& p, const LinearBf16SmallMConfig& config, cudaStream_t stream) {
  using Config = SmallMConfig<kTokenTiles, kRowWarps>;
  auto kernel = linear_bf16_small_m_mma_kernel<kTokenTiles, kRowWarps>;
  if (int status = opt_in_dynamic_shared_memory(reinterpret_cast<const void*>(kernel), Config::kSharedBytes,
                                                "linear_bf16_small_m_mma"))
    return status;
  const int64_t row_ctas = (p.n + Config::kRowsPerCta - 1) / Config::kRowsPerCta;
  if (row_ctas > INT32_MAX) return cudaErrorInvalidValue;
  dim3 grid(static_cast<unsigned>(row_ctas), static_cast<unsigned>(config.splits));
  kernel<<<grid, kThreads, Config::kSharedBytes, stream>>>(p, config.k_blocks_per_split);
  if (int status = launch_status()) return status;
  return config.splits > 1 ? launch_linear_split_reduce(p.workspace, p.y, p.y_type, p.m * p.n, config.splits, stream)
                           : cudaSuccess;
}

template <int kTokenTiles>
int dispatch_row_warps(const LinearBf16Params& p, const LinearBf16SmallMConfig& config, cudaStream_t stream) {
  switch (config.row_warps) {
    case 1: return launch_small_m<kTokenTiles, 1>(p, config, stream);
    case 2: return launch_small_m<kTokenTiles, 2>(p, config, stream);
    default: return launch_small_m<kTokenTiles, 4>(p, config, stream);
  }
}

}  // namespace

// The plan, unmeasured (compiled only; the H200 run decides, bench/kernel_roofline.cpp gemm):
//  - row_warps: the fewest that keep x's L2 traffic <= the weight bytes (min_row_warps), then
//    doubled while each warp would stream fewer than 8 blocks (16 KB) and the wider CTAs still
//    fill every resident slot: short-K, many-row shapes (q_b 1536 wide: 24 blocks) otherwise
//    spend much of each CTA in its prologue and epilogue.
//  - splits: the least modelled time, waves of resident CTAs x (blocks per warp + 1)
//    (plan_small_m_split_k; kv_a 576 x 7168 at m = 1 on 132 SMs: 36 row CTAs x 7), capped so
//    every K warp keeps >= 1 block and the f32 partials (written and read back: 8 x splits x m
//    x n bytes) stay within half the weight bytes (2 x n x k).
LinearBf16SmallMConfig plan_linear_bf16_small_m(int64_t m, int64_t n, int64_t k, int sm_count) {
  const int64_t tokens = std::clamp<int64_t>(m, 1, kLinearBf16SmallMMaxTokens);
  const int64_t k_blocks = std::max<int64_t>(1, (k + kBlockK - 1) / kBlockK);
  const int64_t resident = int64_t{ctas_per_sm(tokens)} * resolve_sm_count(sm_count);
  auto row_ctas = [&](int row_warps) { return std::max<int64_t>(1, (n + 16 * row_warps - 1) / (16 * row_warps)); };
  int row_warps = min_row_warps(tokens);
  while (row_warps < 4 && k_blocks / (kWarps / row_warps) < 8 && row_ctas(2 * row_warps) >= resident) row_warps *= 2;
  const int k_warps = kWarps / row_warps;
  const SplitK cut = plan_small_m_split_k(row_ctas(row_warps), resident, k_blocks, k_warps,
                                          std::min(k_blocks / k_warps, k / (8 * tokens)));
  LinearBf16SmallMConfig config;
  config.row_warps = row_warps;
  config.splits = cut.splits;
  config.k_blocks_per_split = cut.k_blocks_per_split;
  return config;
}

LinearBf16SmallMConfig linear_bf16_small_m_config(int64_t m, int64_t k, int splits, int row_warps) {
  const SplitK cut = split_k_evenly((k + kBlockK - 1) / kBlockK, splits);
  LinearBf16SmallMConfig config;
  config.row_warps = row_warps > 0 ? row_warps : min_row_warps(std::clamp<int64_t>(m, 1, kLinearBf16SmallMMaxTokens));
  config.splits = cut.splits;
  config.k_blocks_per_split = cut.k_blocks_per_split;
  return config;
}

int launch_linear_bf16_small_m_mma(const LinearBf16Params& p, const LinearBf16SmallMConfig& config, Stream stream) {
  if (p.m < 0 || p.m > kLinearBf16SmallMMaxTokens || p.n <= 0 || p.k <= 0 || p.k % 8 != 0 || !p.weight ||
      !aligned16(p.weight) || (p.y_type != ElementType::F32 && p.y_type != ElementType::BF16))
    return cudaErrorInvalidValue;
  if (p.m > 0 && (!p.x || !p.y || !aligned16(p.x))) return cudaErrorInvalidValue;
  const int64_t k_blocks = (p.k + kBlockK - 1) / kBlockK;
  if (k_blocks > INT32_MAX / 2 || (config.row_warps != 1 && config.row_warps != 2 && config.row_warps != 4) ||
      config.splits < 1 || config.splits > 65535 || config.k_blocks_per_split < 1 ||
      int64_t{config.splits} * config.k_blocks_per_split < k_blocks ||
      int64_t{config.splits - 1} * config.k_blocks_per_split >= k_blocks)
    return cudaErrorInvalidValue;
  if (config.splits > 1 && p.m > 0 && !p.workspace) return cudaErrorInvalidValue;
  if (p.m == 0) return cudaSuccess;
  auto s = static_cast<cudaStream_t>(stream);
  switch (token_tiles(p.m)) {
    case 1: return dispatch_row_warps<1>(p, config, s);
    case 2: return dispatch_row_warps<2>(p, config, s);
    case 4: return dispatch_row_warps<4>(p, config, s);
    default: return dispatch_row_warps<8>(p, config, s);
  }
}

}  // namespace rackserve::kernels
