// The decode-sized GEMM design (m <= 64) shared by the BF16 linear (linear_bf16_small_m_mma.cu),
// the W8A8 FP8 linear (linear_fp8_small_m.cu) and the FP8 experts' small-M path
// (moe/moe_fp8_small_m.cu): y = x W^T with the weights as the stream, read once. All move
// 128-byte K blocks of a weight row (64 bf16 or 128 e4m3), so everything but the element math
// and the problem's shape is one kernel, templated on a Policy (below).
//
// A warp owns 16 weight rows (the 16-row A operand of mma.sync m16n8k16 bf16 / m16n8k32 e4m3)
// and every (8 / row_warps)-th K block of its CTA's split; the tokens are the 8-column B
// operand, T n8 tiles per warp (all m tokens: T = 1, 2, 4, 8 for m <= 8, 16, 32, 64). A CTA is
// row_warps (1, 2, 4) warps over rows times 8 / row_warps over K; the warps over rows read the
// same x block at about the same time, so x comes from L2 m / (16 row_warps) times per weight
// row instead of m / 16 (L1 serves the rest; the plan keeps that ratio <= 1).
//
// Weights go global -> shared through a per-warp cp.async ring, and each lane copies and reads
// back only its own chunks: the 16-byte chunks at byte offsets 16t and 64 + 16t of one K block,
// for weight rows g and g + 8 (and it loads the same offsets of token g's x from L1/L2). Its 8
// words are the fragments of the block's 4 MMAs: MMA j takes words 2j and 2j + 1 of A (rows g,
// g + 8) and of B (token g) alike, which permutes k inside the block identically for both
// operands, so the dot product (and a per-block scale) is unchanged.
//
// Budget (per warp, per K block):
//   bytes      weights 16 rows x 128 B = 2 KB (4 cp.async of 16 B per lane, L1 bypassed, 64
//              contiguous bytes per row per instruction = whole sectors); x T x 1 KB (2 loads of
//              16 B per lane per tile) and the policy's load_scales, both issued before the ring
//              wait so their latency overlaps it
//   MMAs       4T (16 rows x 8T tokens x one block of k)
//   registers  T <= kTwoCtaTiles (4 bf16, 2 e4m3) runs 2 CTAs per SM (<= 128 registers), more
//              tiles one; ptxas numbers in docs/kernels.md
//   smem       the ring: 8 warps x stages x 2 KB = 48 KB (3 stages, 2 CTAs per SM) or 96 KB (6
//              stages, one); reused after the K loop for the cross-warp reduction (8 x 4T x 32 floats)
//   in flight  (stages - 1) x 2 KB per warp = 64 KB (2 CTAs) or 80 KB (one) per SM;
//              DRAM needs ~ bandwidth x latency per SM: 4.8 TB/s x ~1 us / 132 = ~36 KB on H200,
//              1.8 TB/s x ~1 us / 188 = ~10 KB on SM120
//   time       H200 DRAM share of one 2 KB block per SM: ~125 clocks (16 B/clock/SM at 1.98 GHz);
//              the MMAs of m = 64, 32 per warp-block, stay far below the tensor rate: memory-bound
//              for every m <= 64
//
// Policy (the element type, the problem's shape and the math; Bf16SmallMPolicy and
// Fp8SmallMPolicy<bool> for the dense linears, MoeFp8SmallMPolicy<bool> for the FP8 experts):
//   using Params, Element; kElementBytes        the launch parameters (p.n, p.k: the matrix's
//                                               rows and k) and the stored element
//   kTwoCtaTiles, kName                         see Config; the kernel's name in launch errors
//   kStaticView                                 make_view reads nothing an earlier kernel writes:
//                                               the weight prologue may run before
//                                               wait_for_prior_kernel (Plan::overlap_prior)
//   struct View; make_view(p, view) -> bool     this CTA's matrix (view.weight, [n, k]), x
//                                               (view.x) and token count (view.m <= 8T); false
//                                               when the CTA has nothing to do
//   x_row(p, view, u)                           the row of view.x holding token u
//   template <int T> struct Scales              what one K block's MMAs need besides the
//                                               fragments (empty where nothing is scaled per block)
//   load_scales<T>(p, view, rows, kb, k_blocks) issued with the x loads, before the ring wait
//   accumulate<T>(acc, weights, x, scales, tiles)
//                                               the block's MMAs of token tiles [0, tiles) into
//                                               acc[T][4]
//   kTokensVaryPerCta                           view.m differs between CTAs (experts): tiles
//                                               past ceil(view.m / 8) are skipped, x loads and
//                                               MMAs alike; otherwise every CTA runs all T
//   store(p, view, u, row, sum)                 a finished dot of token u and weight row `row`
//                                               (gridDim.y > 1: this split's partial)
//   kFinishesSplits; finish_splits(p, row_begin, rows)
//                                               after the stores: the dense linears' in-kernel
//                                               split sum (DenseProblem); the experts' none
#pragma once

#include <algorithm>

#include "common/device_utils.cuh"
#include "common/mma_utils.cuh"
#include "common/shared_memory_budget.cuh"
#include "gemm/linear_split_k.cuh"
#include "rackserve/kernels/gemm_params.h"

namespace rackserve::kernels::small_m {

constexpr int kWarps = 8, kThreads = kWarps * 32;
constexpr int kBlockBytes = 128;   // bytes of one weight row per K block
constexpr int kChunksPerLane = 4;  // rows g, g + 8 x byte offsets 16t, 64 + 16t
constexpr int kMaxTokens = 64;

// How the kernel runs for T token tiles per warp and R warps over rows. Up to kTwoCtaTiles
// (the policy's: 4 for bf16, 2 for e4m3, whose per-block partials and scales need more) the
// registers fit 128 per thread, so two CTAs share an SM with 3 ring stages each; above it (T = 8:
// 32 accumulators and 64 registers of x per block) one CTA per SM gets 6 stages.
// Shared memory: the weight ring, [kWarps][kStages][4 chunks][32 lanes] x 16 bytes (each lane
// reads back only the chunks it copied itself, so the ring needs no barrier), then, after the
// K loop, the cross-warp reduction [kWarps][4T][32] floats in the same bytes.
template <int kTokenTiles, int kRowWarps, int kTwoCtaTiles>
struct Config {
  static_assert(kTokenTiles == 1 || kTokenTiles == 2 || kTokenTiles == 4 || kTokenTiles == 8, "1..8 n8 tiles");
  static_assert(kRowWarps == 1 || kRowWarps == 2 || kRowWarps == 4, "1, 2 or 4 warps over rows");
  static constexpr int kKWarps = kWarps / kRowWarps;  // warps sharing a row group's K range
  static constexpr int kRowsPerCta = 16 * kRowWarps;
  static constexpr int kCtasPerSm = kTokenTiles <= kTwoCtaTiles ? 2 : 1;
  static constexpr int kStages = kCtasPerSm == 2 ? 3 : 6;
  static constexpr int kValues = kTokenTiles * 4;  // accumulator floats per lane
  static constexpr int kRingBytes = kWarps * kStages * kChunksPerLane * 32 * 16;
  static constexpr int kReductionBytes = kWarps * kValues * 32 * 4;
  static constexpr int kSharedBytes = kRingBytes > kReductionBytes ? kRingBytes : kReductionBytes;
  static_assert(kSharedBytes <= kSharedMemoryBudgetBytes, "the SM120 budget is 99 KB of shared memory per block");
  static_assert(kCtasPerSm * (kSharedBytes + 1024) <= 100 * 1024, "SM120 has 100 KB of shared memory per SM");
};

inline int64_t token_tiles(int64_t m) { return m <= 8 ? 1 : m <= 16 ? 2 : m <= 32 ? 4 : 8; }
inline int ctas_per_sm(int64_t m, int two_cta_tiles) { return token_tiles(m) <= two_cta_tiles ? 2 : 1; }
// The fewest warps over rows that keep x's L2 traffic <= the weight bytes (m / (16 R) <= 1).
inline int min_row_warps(int64_t m) { return m <= 16 ? 1 : m <= 32 ? 2 : 4; }

// How one problem runs: row_warps, and K cut into `splits` ranges of whole blocks.
struct Plan {
  int row_warps = 1;
  int splits = 1;
  int k_blocks_per_split = 1;
  // Launch with programmatic stream serialization (sm_90+): the kernel may start while the
  // previous one finishes, and streams its first weight blocks into the rings (static data)
  // before wait_for_prior_kernel, hiding its launch and first DRAM round trip behind that
  // kernel's tail. x, the scales of x and every store come after the wait.
  bool overlap_prior = false;
};

// The plan, for `element_bytes`-wide elements (2 bf16, 1 e4m3) and the policy's kTwoCtaTiles:
//  - row_warps: the fewest that keep x's L2 traffic <= the weight bytes (min_row_warps), then
//    doubled while each warp would stream fewer than 8 blocks (16 KB) and the wider CTAs still
//    fill every resident slot: short-K, many-row shapes (q_b 1536 wide: 24 blocks of bf16)
//    otherwise spend much of each CTA in its prologue and epilogue.
//  - splits: the least modelled time, waves of resident CTAs x (blocks per warp + 2)
//    (plan_small_m_split_k; kv_a 576 x 7168 at m = 1 on 132 SMs: 36 row CTAs x 7), capped so
//    every K warp keeps >= 1 block and the f32 partials (written and read back: 8 x splits x m
//    x n bytes) stay within half the weight bytes (element_bytes x n x k).
//  - resident CTAs: sm_count x resident_per_sm, the CTAs of this m's kernel one SM holds
//    (resident_ctas_per_sm on the device: 3 at T = 1 on the H200, whose 64K registers and
//    228 KB of shared memory hold more than the 2 the launch bounds promise); <= 0: the
//    launch bounds' count (ctas_per_sm), which is what SM120's 100 KB give.
inline Plan make_plan(int64_t m, int64_t n, int64_t k, int element_bytes, int two_cta_tiles, int sm_count,
                      int resident_per_sm = 0) {
  const int64_t tokens = std::clamp<int64_t>(m, 1, kMaxTokens);
  const int64_t k_blocks = std::max<int64_t>(1, (k * element_bytes + kBlockBytes - 1) / kBlockBytes);
  const int per_sm = resident_per_sm > 0 ? resident_per_sm : ctas_per_sm(tokens, two_cta_tiles);
  const int64_t resident = int64_t{per_sm} * resolve_sm_count(sm_count);
  auto row_ctas = [&](int row_warps) { return std::max<int64_t>(1, (n + 16 * row_warps - 1) / (16 * row_warps)); };
  int row_warps = min_row_warps(tokens);
  while (row_warps < 4 && k_blocks / (kWarps / row_warps) < 8 && row_ctas(2 * row_warps) >= resident) row_warps *= 2;
  const int k_warps = kWarps / row_warps;
  const SplitK cut = plan_small_m_split_k(row_ctas(row_warps), resident, k_blocks, k_warps,
                                          std::min(k_blocks / k_warps, k * element_bytes / (16 * tokens)));
  return {row_warps, cut.splits, cut.k_blocks_per_split};
}

// Whether `plan` is well formed for k_blocks K blocks: row_warps 1, 2 or 4, splits covering
// the blocks with none empty.
inline bool valid_plan(const Plan& plan, int64_t k_blocks) {
  return (plan.row_warps == 1 || plan.row_warps == 2 || plan.row_warps == 4) && plan.splits >= 1 &&
         plan.splits <= 65535 && plan.k_blocks_per_split >= 1 &&
         int64_t{plan.splits} * plan.k_blocks_per_split >= k_blocks &&
         int64_t{plan.splits - 1} * plan.k_blocks_per_split < k_blocks;
}

__device__ __forceinline__ uint32_t word(const uint4 (&chunks)[2], int index) {
  const uint4& chunk = chunks[index / 4];
  switch (index % 4) {
    case 0: return chunk.x;
    case 1: return chunk.y;
    case 2: return chunk.z;
    default: return chunk.w;
  }
}

// The A (rows g, g + 8) and B (token g) fragments of MMA j of a block: words 2j and 2j + 1 of
// the lane's chunks.
__device__ __forceinline__ void fragments(int j, const uint4 (&weights)[2][2], const uint4 (&x)[2], uint32_t (&a)[4],
                                          uint32_t (&b)[2]) {
  a[0] = word(weights[0], 2 * j), a[1] = word(weights[1], 2 * j);
  a[2] = word(weights[0], 2 * j + 1), a[3] = word(weights[1], 2 * j + 1);
  b[0] = word(x, 2 * j), b[1] = word(x, 2 * j + 1);
}

// Grid: x over row groups of 16 x kRowWarps, y over K splits, z over the policy's matrices
// (make_view). Dynamic shared memory: Config::kSharedBytes.
template <class Policy, int kTokenTiles, int kRowWarps>
__global__ void __launch_bounds__(kThreads, Config<kTokenTiles, kRowWarps, Policy::kTwoCtaTiles>::kCtasPerSm)
    small_m_kernel(typename Policy::Params p, int k_blocks_per_split) {
  using C = Config<kTokenTiles, kRowWarps, Policy::kTwoCtaTiles>;
  using Element = typename Policy::Element;
  constexpr int kStages = C::kStages, kKWarps = C::kKWarps, kValues = C::kValues;
  constexpr int kBlockK = kBlockBytes / Policy::kElementBytes, kChunkK = 16 / Policy::kElementBytes;
  extern __shared__ __align__(16) uint8_t shared[];
  if constexpr (!Policy::kStaticView) wait_for_prior_kernel();
  typename Policy::View view;
  if (!Policy::make_view(p, view)) return;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, t = lane % 4;
  const int row_warp = warp / kKWarps, k_warp = warp % kKWarps;
  const int64_t cta_row_begin = static_cast<int64_t>(blockIdx.x) * C::kRowsPerCta;
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
  const Element* weight = view.weight;
  const int chunk_offsets[2] = {kChunkK * t, kBlockK / 2 + kChunkK * t};
  // Token tiles that hold a token of this CTA (all T unless view.m varies per CTA).
  const int active_tiles =
      Policy::kTokensVaryPerCta ? min(kTokenTiles, static_cast<int>((view.m + 7) / 8)) : kTokenTiles;
  const Element* x_rows[kTokenTiles];
#pragma unroll
  for (int tile = 0; tile < kTokenTiles; ++tile)
    x_rows[tile] = view.x + Policy::x_row(p, view, min(static_cast<int64_t>(tile * 8 + g), view.m - 1)) * p.k;
  // Chunk (stage, r, c) of this lane; a warp's 32 lanes' chunks are 512 contiguous bytes
  // (conflict-free 16-byte accesses).
  const uint32_t ring = smem_address(shared) + (warp * kStages * kChunksPerLane * 32 + lane) * 16;
  auto chunk_address = [&](int stage, int r, int c) {
    return ring + ((stage * kChunksPerLane + r * 2 + c) * 32) * 16;
  };

  // Copies this lane's 4 chunks of the warp's i-th block into its ring slot. Chunks past k
  // (k not a multiple of the block; a multiple of the chunk, so a chunk is all in or all out)
  // are zero-filled, and the x chunks there are zeros too.
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
  if constexpr (Policy::kStaticView) wait_for_prior_kernel();  // x and every store come after
  for (int i = 0; i < my_count; ++i) {
    const int kb = my_first + i * kKWarps;
    const int64_t kb0 = static_cast<int64_t>(kb) * kBlockK;
    // x and the scales first: their L1/L2 latency overlaps the wait for the weights.
    uint4 x_chunks[kTokenTiles][2];
#pragma unroll
    for (int tile = 0; tile < kTokenTiles; ++tile) {
      if (tile >= active_tiles) break;  // never read (accumulate stops at active_tiles)
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int64_t k = kb0 + chunk_offsets[c];
        x_chunks[tile][c] =
            k < p.k ? __ldg(reinterpret_cast<const uint4*>(x_rows[tile] + k)) : make_uint4(0, 0, 0, 0);
      }
    }
    const typename Policy::template Scales<kTokenTiles> scales =
        Policy::template load_scales<kTokenTiles>(p, view, rows, kb, k_blocks);
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
    Policy::template accumulate<kTokenTiles>(accumulator, slice, x_chunks, scales, active_tiles);
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
    if (row >= p.n || token >= view.m) continue;
    Policy::store(p, view, token, row, sum);
  }
  if constexpr (Policy::kFinishesSplits) Policy::finish_splits(p, cta_row_begin, C::kRowsPerCta);
}

// The dense linears' View and store (y = x W^T over all p.m tokens; splits write
// p.workspace [splits, m, n], reduced by launch): the pieces Bf16SmallMPolicy and
// Fp8SmallMPolicy share.
template <class Params, class Element>
struct DenseProblem {
  struct View {
    const Element* weight;
    const Element* x;
    int64_t m;
  };
  static constexpr bool kStaticView = true;  // the weights and shapes are the step's constants
  static constexpr bool kTokensVaryPerCta = false;  // every CTA takes all p.m tokens
  __device__ static bool make_view(const Params& p, View& view) {
    view = {static_cast<const Element*>(p.weight), static_cast<const Element*>(p.x), p.m};
    return true;
  }
  __device__ static int64_t x_row(const Params&, const View&, int64_t u) { return u; }
  // Where y[u, row] lives: row-major [m, n], or with p.segment_rows > 0 the block of its
  // segment ([m, segment_rows], then [m, n - segment_rows]). A split's partials use the same
  // index, so the split reduction (elementwise) needs no change.
  __device__ static int64_t y_index(const Params& p, int64_t u, int64_t row) {
    if (p.segment_rows <= 0) return u * p.n + row;
    if (row < p.segment_rows) return u * p.segment_rows + row;
    return p.m * p.segment_rows + u * (p.n - p.segment_rows) + (row - p.segment_rows);
  }
  // sum already final (scaled) for token u, row `row`.
  __device__ static void store_dense(const Params& p, int64_t u, int64_t row, float sum) {
    const int64_t index = y_index(p, u, row);
    if (gridDim.y > 1)
      p.workspace[static_cast<int64_t>(blockIdx.y) * p.m * p.n + index] = sum;
    else
      store_element(p.y, p.y_type, index, sum);
  }

  // With splits and p.split_counters: the split CTAs of a row group count themselves in; the
  // last one sums every split's partial of the group's rows x all tokens in split order (as the
  // reduction kernel does: 0 + s0 + s1 + ...) into y and zeroes the counter for the next
  // launch. Called by every thread of the CTA after its stores.
  static constexpr bool kFinishesSplits = true;
  __device__ static void finish_splits(const Params& p, int64_t row_begin, int rows) {
    if (gridDim.y == 1 || !p.split_counters) return;
    __threadfence();  // this CTA's partials are visible device-wide before it counts in
    __syncthreads();
    // No static __shared__ flag: it would add to the dynamic ring's bytes and push the 48 KB
    // rings past the no-opt-in default.
    const bool last =
        __syncthreads_or(threadIdx.x == 0 && atomicAdd(p.split_counters + blockIdx.x, 1u) == gridDim.y - 1);
    if (!last) return;
    __threadfence();  // and the others' before the last one reads them
    const int64_t count = p.m * p.n;
    for (int64_t e = threadIdx.x; e < rows * p.m; e += blockDim.x) {
      const int64_t row = row_begin + e % rows, u = e / rows;
      if (row >= p.n) continue;
      const int64_t index = y_index(p, u, row);
      float sum = 0.0f;
      for (int s = 0; s < static_cast<int>(gridDim.y); ++s) sum += __ldcg(p.workspace + s * count + index);
      store_element(p.y, p.y_type, index, sum);
    }
    if (threadIdx.x == 0) p.split_counters[blockIdx.x] = 0;
  }
};

// Launches the kernel for (T, R) over row CTAs x splits x `problems` (gridDim.z: the policy's
// matrices, e.g. active experts). The params and plan are validated by the caller.
template <class Policy, int kTokenTiles, int kRowWarps>
int launch(const typename Policy::Params& p, const Plan& plan, int64_t problems, cudaStream_t stream) {
  using C = Config<kTokenTiles, kRowWarps, Policy::kTwoCtaTiles>;
  auto kernel = small_m_kernel<Policy, kTokenTiles, kRowWarps>;
  if (int status = opt_in_dynamic_shared_memory(reinterpret_cast<const void*>(kernel), C::kSharedBytes,
                                                Policy::kName))
    return status;
  const int64_t row_ctas = (p.n + C::kRowsPerCta - 1) / C::kRowsPerCta;
  if (row_ctas > INT32_MAX || problems < 1 || problems > 65535) return cudaErrorInvalidValue;
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(static_cast<unsigned>(row_ctas), static_cast<unsigned>(plan.splits),
                        static_cast<unsigned>(problems));
  config.blockDim = dim3(kThreads);
  config.dynamicSmemBytes = C::kSharedBytes;
  config.stream = stream;
  cudaLaunchAttribute overlap{};
  overlap.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  overlap.val.programmaticStreamSerializationAllowed = 1;
  if (plan.overlap_prior) {
    config.attrs = &overlap;
    config.numAttrs = 1;
  }
  if (cudaError_t status = cudaLaunchKernelEx(&config, kernel, p, plan.k_blocks_per_split)) return status;
  return launch_status();
}

// CTAs of the (T, R) kernel that one SM of the current device holds, with the registers and
// shared memory it was compiled to (cudaOccupancyMaxActiveBlocksPerMultiprocessor); 0 when
// that cannot be told (no error left behind).
template <class Policy, int kTokenTiles, int kRowWarps>
int resident_ctas_per_sm() {
  auto kernel = small_m_kernel<Policy, kTokenTiles, kRowWarps>;
  const int bytes = Config<kTokenTiles, kRowWarps, Policy::kTwoCtaTiles>::kSharedBytes;
  int per_sm = 0;
  if (opt_in_dynamic_shared_memory(reinterpret_cast<const void*>(kernel), bytes, Policy::kName) != cudaSuccess ||
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, bytes) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return per_sm;
}

// The same for m tokens' kernel with min_row_warps(m) (T = 1, 2 -> 1; 4 -> 2; 8 -> 4): what
// make_plan's resident_per_sm takes.
template <class Policy>
int resident_ctas_per_sm(int64_t m) {
  switch (token_tiles(std::clamp<int64_t>(m, 1, kMaxTokens))) {
    case 1: return resident_ctas_per_sm<Policy, 1, 1>();
    case 2: return resident_ctas_per_sm<Policy, 2, 1>();
    case 4: return resident_ctas_per_sm<Policy, 4, 2>();
    default: return resident_ctas_per_sm<Policy, 8, 4>();
  }
}

template <class Policy, int kTokenTiles>
int dispatch_row_warps(const typename Policy::Params& p, const Plan& plan, int64_t problems, cudaStream_t stream) {
  switch (plan.row_warps) {
    case 1: return launch<Policy, kTokenTiles, 1>(p, plan, problems, stream);
    case 2: return launch<Policy, kTokenTiles, 2>(p, plan, problems, stream);
    default: return launch<Policy, kTokenTiles, 4>(p, plan, problems, stream);
  }
}

// Launches the kernel for up to `max_tokens` (1..64) tokens per matrix, with a valid plan
// (valid_plan) on validated params, over `problems` matrices.
template <class Policy>
int run(const typename Policy::Params& p, const Plan& plan, int64_t max_tokens, int64_t problems,
        cudaStream_t stream) {
  switch (token_tiles(max_tokens)) {
    case 1: return dispatch_row_warps<Policy, 1>(p, plan, problems, stream);
    case 2: return dispatch_row_warps<Policy, 2>(p, plan, problems, stream);
    case 4: return dispatch_row_warps<Policy, 4>(p, plan, problems, stream);
    default: return dispatch_row_warps<Policy, 8>(p, plan, problems, stream);
  }
}

// The dense linears' launch: the kernel over all p.m tokens, then, when the plan splits K and
// the kernel cannot finish the splits itself (no counters, or more row groups than counters),
// the split reduction.
template <class Policy>
int run_dense(typename Policy::Params p, const Plan& plan, cudaStream_t stream) {
  const int64_t row_groups = (p.n + 16 * plan.row_warps - 1) / (16 * plan.row_warps);
  if (row_groups > kLinearSplitCounters) p.split_counters = nullptr;
  if (int status = run<Policy>(p, plan, p.m, 1, stream)) return status;
  return plan.splits > 1 && !p.split_counters
             ? launch_linear_split_reduce(p.workspace, p.y, p.y_type, p.m * p.n, plan.splits, stream)
             : cudaSuccess;
}

}  // namespace rackserve::kernels::small_m
