// Split-KV (flash-decoding) absorbed-MLA decode over the paged latent cache (step 2 of
// mla_attention_paged.cu's three steps, same numerics up to bf16 operands): one CTA per
// (query token, split of its context, group of 16 or 32 heads). 32-key tiles of the cache
// stream in through a two-stage cp.async ring, and mma.sync m16n8k16 computes
//   S = Q . K^T  over the 576 columns      (heads x 32 keys, f32)
//   O = O * rescale + P . V, V = K[:, :512] (heads x 512, f32 in registers)
// with an online softmax in f32 between them. A split writes O / sum and its log-sum-exp;
// the combine kernel merges the splits. A query whose context needs one split writes
// out_latent directly. q_latent and P are rounded to bf16 for the MMA (f32 accumulate);
// that rounding is the only numerical difference from the reference kernel.
//
// An E4M3 cache (MlaCacheType::E4M3: e4m3 bytes + an f32 scale per entry) replaces the
// cp.async ring by a register stage: each thread loads its 72 bytes of the next tile (4 x 16
// + 8) and the row's scale, and at the top of the following iteration dequantizes them
// (e4m3 * scale, rounded to bf16) into the same bf16 tile layout, so S, softmax and PV are
// the bf16 kernel's. Per tile 32 x (576 + 4) = 18.6 KB of cache instead of 36.9 KB; the
// conversion is ~220 ALU instructions per thread per tile.
//
// Budget (per CTA of 8 warps, per 32-key tile; DeepSeek-V3: lora 512 + rope 64):
//   bytes      32 x 1152 = 36.9 KB of cache (37.4 KB in shared memory with row padding)
//   MMAs       S: heads/16 x 4 n8 x 36 k16;  PV: heads/16 x 64 n8 x 2 k16
//              16 heads: 144 + 128 = 272 (34 per warp); 32 heads: 288 + 256 = 544 (68 per warp)
//   flops/B    16 heads 30, 32 heads 60 (128 heads over 4 groups: 242 per cache byte)
//   Q          A fragments in registers for the warp's share of the 36 k-steps: a warp owns
//              (head tile, k-part) with 36 / (8 / head tiles) steps, 5 x 4 = 20 regs (16 heads)
//              or 9 x 4 = 36 regs (32 heads); frees the 18-37 KB the bf16 Q took in shared memory
//   O          heads x 512 f32 over 256 threads: 32 regs (16 heads), 64 regs (32 heads)
//   smem       2 stages x 37.4 KB + S partials 20 KB + P 2.5 KB = ~96 KB (<= 99 KB, SM120)
//   barriers   3 per tile (tile landed | S partials | P), i.e. one per 12 KB of cache
//   in flight  one 37 KB tile per CTA while the previous computes; with one CTA per SM that is
//              188 x 37 KB = 7 MB on SM120 (needs 1.8 TB/s x ~1 us = 1.8 MB) and 132 x 37 KB
//              = 4.9 MB on H100 (needs ~2.4 MB)
//   time       DRAM share of a tile per SM: 37 KB / (1.8 TB/s / 188) = 3.9 us on SM120,
//              37 KB / (3.0 TB/s / 132) = 1.6 us on H100; MMA time per tile at the tensor
//              peak (SM120 ~512 bf16 FMA/clk/SM): 16 heads ~0.45 us, 32 heads ~0.9 us, so
//              16 heads is bandwidth-bound; 128 heads (4 groups, 3.6 us of MMA per tile) is
//              at the compute/bandwidth balance on SM120 and compute-bound on H100 with
//              mma.sync (~1.3-1.5 us of MMA per group-tile, ~55% of copy bandwidth at best).
//   L2         the 4 head groups of a 128-head query read each tile once each; they are
//              adjacent in blockIdx so they run together and 3 of the 4 reads hit L2
//              (L2 traffic = 4x DRAM traffic for 128 heads, 2x for 64).
#include <cuda_runtime.h>

#include <cstdint>

#include "attention/mla_cache_e4m3.cuh"
#include "attention/mla_sparse_keys.cuh"
#include "common/device_utils.cuh"
#include "common/mma_utils.cuh"
#include "rackserve/kernels/mla_decode_params.h"

namespace rackserve::kernels {

namespace {

constexpr int kLora = 512, kRope = 64, kWidth = kLora + kRope;  // cache row: 576 bf16 = 1152 bytes
// Shared rows get 16 bytes of padding: 1168 / 16 is odd, so the 8 rows of an ldmatrix
// land in 8 different bank groups.
constexpr int kRowStride = kWidth + 8;
constexpr int kChunksPerRow = kWidth / 8;  // 16-byte cp.async chunks
constexpr int kKSteps = kWidth / 16;       // k16 steps of Q . K^T
constexpr int kKeysPerTile = 32;
constexpr int kKeyGranule = 16;               // keys_per_split must be a multiple of this
constexpr int kPStride = kKeysPerTile + 8;    // P rows: 80 bytes, conflict-free ldmatrix
constexpr int kScoreStride = kKeysPerTile + 8;  // S partial rows: float2 stores conflict-free per half-warp
constexpr int kThreads = 256, kWarps = kThreads / 32;
constexpr int kLoadThreadsPerRow = kThreads / kKeysPerTile;   // 8 threads copy one key row
constexpr int kChunksPerThread = kChunksPerRow / kLoadThreadsPerRow;  // 9 x 16 bytes each
constexpr int kE4m3LatentChunks = kLora / 16 / kLoadThreadsPerRow;      // e4m3 rows: 4 x 16 latent bytes each
constexpr int kCombineThreads = kLora / 4;
constexpr int kMaxSplits = 256;        // a forced config may use up to this many
constexpr int kPlanMaxSplits = 128;    // the heuristic stays below
constexpr int kMinKeysPerSplit = 256;  // the f32 partial of a split stays ~10% of its cache bytes
constexpr int kSplitCostKeys = 96;     // fixed cost of one more CTA per (token, head group), in keys
constexpr int kSmemLimit = 99 * 1024;  // SM120's dynamic shared memory per block
constexpr float kLog2e = 1.4426950408889634f;
static_assert(kChunksPerThread * kLoadThreadsPerRow == kChunksPerRow, "a key row splits evenly over its threads");
static_assert(kE4m3LatentChunks * 16 * kLoadThreadsPerRow == kLora && kRope == 8 * kLoadThreadsPerRow,
              "an e4m3 key row splits into 16-byte latent chunks and 8-byte rope pieces over its threads");
static_assert(kKeysPerTile % kKeyGranule == 0, "tiles hold whole granules");

// Shared memory of one CTA, in bytes; every region starts 16-byte aligned.
template <int kHeadTiles, int kStages>
struct Layout {
  static constexpr int kHeads = 16 * kHeadTiles;
  // Warps of the S phase: (head tile, part of the k-steps); each covers all 32 keys.
  static constexpr int kKParts = kWarps / kHeadTiles;
  static constexpr int kStepsPerWarp = (kKSteps + kKParts - 1) / kKParts;
  static constexpr int kRowThreads = kThreads / kHeads;  // softmax threads per head row
  static constexpr int kKeysPerThread = kKeysPerTile / kRowThreads;
  static constexpr int tiles = 0;                                    // [kStages][32][kRowStride] bf16
  static constexpr int tile_bytes = kKeysPerTile * kRowStride * 2;
  static constexpr int scores = tiles + kStages * tile_bytes;       // [kKParts][kHeads][kScoreStride] f32
  static constexpr int p = scores + kKParts * kHeads * kScoreStride * 4;  // [kHeads][kPStride] bf16
  static constexpr int row_scale = p + kHeads * kPStride * 2;       // [kHeads] f32, this tile's rescale
  static constexpr int row_sum = row_scale + kHeads * 4;            // [kHeads] f32, final softmax sums
  static constexpr int bytes = row_sum + kHeads * 4;
  static_assert(kHeadTiles == 1 || kHeadTiles == 2, "16 or 32 heads per CTA (O lives in registers)");
  static_assert(kKParts * kHeadTiles == kWarps && kKeysPerThread >= 1, "warp split of the S phase");
  static_assert(kStages >= 2, "cp.async ring needs two stages");
  static_assert(tile_bytes % 16 == 0 && scores % 16 == 0 && p % 16 == 0, "16-byte aligned regions");
  static_assert(bytes <= kSmemLimit, "SM120 allows 99 KB of shared memory per block");
};

__device__ int find_sequence(const int32_t* query_start, int64_t sequences, int64_t token) {
  int low = 0, high = static_cast<int>(sequences) - 1;
  while (low < high) {  // last s with query_start[s] <= token
    int middle = (low + high + 1) / 2;
    if (query_start[middle] <= token) low = middle; else high = middle - 1;
  }
  return low;
}

// Splits used by a query with `keys` keys: the same rule in both kernels.
__device__ __forceinline__ int used_splits(int64_t keys, const MlaDecodeConfig& config) {
  const int64_t wanted = (keys + config.keys_per_split - 1) / config.keys_per_split;
  return static_cast<int>(wanted < config.splits ? wanted : config.splits);
}

// page_shift = log2(page_size) when page_size is a power of two (the served case, 64),
// else -1 and the page is found with a 32-bit division. Positions are int32, so keys fit.
// kCache E4M3: the cache holds e4m3 bytes and a scale per entry; tiles are dequantized to
// bf16 into the same shared-memory layout, so everything after the loader is shared.
template <int kHeadTiles, int kStages, MlaCacheType kCache>
__global__ void __launch_bounds__(kThreads, 1)
    mla_decode_split_kv_kernel(MlaDecodeParams p, MlaDecodeConfig config, int head_groups, int page_shift) {
  wait_for_prior_kernel();
  using L = Layout<kHeadTiles, kStages>;
  constexpr bool kE4m3 = kCache == MlaCacheType::E4M3;
  static_assert(!kE4m3 || kStages == 2, "the e4m3 loader stages one tile in registers: a two-stage ring");
  extern __shared__ __align__(16) unsigned char smem[];
  int64_t block = blockIdx.x;  // head group fastest: the groups of one split share its cache reads in L2
  const int group = static_cast<int>(block % head_groups);
  block /= head_groups;
  const int split = static_cast<int>(block % config.splits);
  const int64_t t = block / config.splits;
  // Key indices [0, keys) of the query: cache positions (causal) or the indexer's chosen ones.
  const MlaQueryKeys query_keys = mla_query_keys(p.positions, p.key_positions, p.top_k, t);
  const int keys = query_keys.count;
  const int splits_here = used_splits(keys, config);
  if (split >= splits_here) return;
  const int begin = split * config.keys_per_split;
  const int end = split == splits_here - 1 ? keys : begin + config.keys_per_split;
  const int tiles = (end - begin + kKeysPerTile - 1) / kKeysPerTile;
  const int head0 = group * L::kHeads;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;

  const int32_t* pages = p.block_table + static_cast<int64_t>(find_sequence(p.query_start, p.sequences, t)) * p.max_blocks;
  float* scores = reinterpret_cast<float*>(smem + L::scores);
  __nv_bfloat16* p_smem = reinterpret_cast<__nv_bfloat16*>(smem + L::p);
  float* row_scale = reinterpret_cast<float*>(smem + L::row_scale);
  float* row_sum = reinterpret_cast<float*>(smem + L::row_sum);

  // Eight threads copy one key row (one page lookup each). Keys at or past `end` (another
  // split's, or past the context) are zero-filled, never read.
  const int load_row = threadIdx.x / kLoadThreadsPerRow, load_sub = threadIdx.x % kLoadThreadsPerRow;
  const uint32_t page_size = static_cast<uint32_t>(p.page_size);
  auto entry_of = [&](int key) {  // key < end: its entry's index in the cache
    const uint32_t k = static_cast<uint32_t>(query_keys.position(key));
    const uint32_t page = page_shift >= 0 ? k >> page_shift : k / page_size;
    const uint32_t slot = page_shift >= 0 ? k & (page_size - 1) : k - page * page_size;
    return static_cast<int64_t>(pages[page]) * p.page_size + slot;
  };
  // BF16: a warp writes 4 rows x 128 contiguous bytes per cp.async.
  auto load_tile = [&](int tile, int stage) {
    const int key = begin + tile * kKeysPerTile + load_row;
    const bool valid = key < end;
    const __nv_bfloat16* source = static_cast<const __nv_bfloat16*>(p.cache);
    if (valid) source += entry_of(key) * kWidth;
    const uint32_t base = smem_address(smem + L::tiles + stage * L::tile_bytes) + load_row * kRowStride * 2;
#pragma unroll
    for (int j = 0; j < kChunksPerThread; ++j) {
      const int chunk = load_sub + j * kLoadThreadsPerRow;
      cp_async_16(base + chunk * 16, source + (valid ? chunk * 8 : 0), valid);
    }
  };
  // E4M3: the next tile waits in registers. Thread load_sub of a row holds latent bytes
  // [16 (load_sub + 8 j), +16) for j < 4 (8 threads x 16 contiguous bytes per j), rope bytes
  // [512 + 8 load_sub, +8) and the row's scale: 72 bytes + 4 (19 registers).
  uint4 staged_latent[kE4m3LatentChunks];  // unused (and eliminated) by the bf16 kernel
  uint2 staged_rope = make_uint2(0, 0);
  float staged_scale = 0.0f;
  auto load_registers = [&](int tile) {
    const int key = begin + tile * kKeysPerTile + load_row;
#pragma unroll
    for (int j = 0; j < kE4m3LatentChunks; ++j) staged_latent[j] = make_uint4(0, 0, 0, 0);
    staged_rope = make_uint2(0, 0);
    staged_scale = 0.0f;  // an absent key dequantizes to exact zeros
    if (key < end) {
      const int64_t entry = entry_of(key);
      const uint8_t* source = static_cast<const uint8_t*>(p.cache) + entry * kWidth;
#pragma unroll
      for (int j = 0; j < kE4m3LatentChunks; ++j)
        staged_latent[j] = __ldg(reinterpret_cast<const uint4*>(source + (load_sub + j * kLoadThreadsPerRow) * 16));
      staged_rope = __ldg(reinterpret_cast<const uint2*>(source + kLora + load_sub * 8));
      staged_scale = __ldg(p.cache_scales + entry);
    }
  };
  // Dequantized (e4m3 * scale, rounded to bf16) into the bf16 tile. A latent chunk is 32
  // bytes of shared memory, two 16-byte stores; threads 4-7 of a row store their second
  // half first, so the 8 stores of a row's quarter-warp hit 8 different bank groups.
  auto store_registers = [&](int stage) {
    unsigned char* row = smem + L::tiles + stage * L::tile_bytes + load_row * kRowStride * 2;
    const bool swap = load_sub >= 4;
#pragma unroll
    for (int j = 0; j < kE4m3LatentChunks; ++j) {
      const uint4 codes = staged_latent[j];
      const uint2 a = dequantize_e4m3x4_to_bf16(codes.x, staged_scale);
      const uint2 b = dequantize_e4m3x4_to_bf16(codes.y, staged_scale);
      const uint2 c = dequantize_e4m3x4_to_bf16(codes.z, staged_scale);
      const uint2 d = dequantize_e4m3x4_to_bf16(codes.w, staged_scale);
      const uint4 low = make_uint4(a.x, a.y, b.x, b.y), high = make_uint4(c.x, c.y, d.x, d.y);  // columns 0-7, 8-15
      uint4* chunk = reinterpret_cast<uint4*>(row + (load_sub + j * kLoadThreadsPerRow) * 32);
      chunk[swap ? 1 : 0] = swap ? high : low;
      chunk[swap ? 0 : 1] = swap ? low : high;
    }
    const uint2 a = dequantize_e4m3x4_to_bf16(staged_rope.x, staged_scale);
    const uint2 b = dequantize_e4m3x4_to_bf16(staged_rope.y, staged_scale);
    *reinterpret_cast<uint4*>(row + (kLora + load_sub * 8) * 2) = make_uint4(a.x, a.y, b.x, b.y);
  };
  if constexpr (kE4m3) {
    load_registers(0);  // lands while Q is read; stored to stage 0 before the loop
  } else {
    for (int stage = 0; stage < kStages - 1; ++stage) {
      if (stage < tiles) load_tile(stage, stage);
      cp_async_commit();
    }
  }

  // S phase roles: warp = (head tile s_tile, k-part); its k-steps are k_part + i * kKParts.
  const int k_part = warp % L::kKParts, s_tile = warp / L::kKParts;
  // Q A fragments of those steps, straight from global: a0 (g, 2t) a1 (g+8, 2t) a2 (g, 2t+8)
  // a3 (g+8, 2t+8) of the 16 x 16 block; q_latent (f32) below column 512, the rope part of q
  // above; absent heads and steps past 36 are 0.
  uint32_t q_frag[L::kStepsPerWarp][4];
#pragma unroll
  for (int i = 0; i < L::kStepsPerWarp; ++i) {
    const int step = k_part + i * L::kKParts;
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int64_t h = head0 + s_tile * 16 + lane / 4 + (r % 2) * 8;
      const int column = step * 16 + (lane % 4) * 2 + (r / 2) * 8;
      uint32_t packed = 0;
      if (step < kKSteps && h < p.heads) {
        if (column < kLora) {
          const float2 pair = *reinterpret_cast<const float2*>(p.q_latent + (t * p.heads + h) * kLora + column);
          packed = pack_bf16x2(pair.x, pair.y);
        } else {
          packed = *reinterpret_cast<const uint32_t*>(static_cast<const __nv_bfloat16*>(p.q) +
                                                       (t * p.heads + h) * (p.nope + kRope) + p.nope + column - kLora);
        }
      }
      q_frag[i][r] = packed;
    }
  }
  // B of Q.K^T (rows = keys, ldmatrix x4): matrices (keys 0-7, k 0-7) (keys 0-7, k 8-15)
  // (keys 8-15, k 0-7) (keys 8-15, k 8-15) of a 16-key pair.
  const int k_lane = ((lane & 7) + (lane >> 4) * 8) * kRowStride + ((lane >> 3) & 1) * 8;
  // Softmax roles: kRowThreads consecutive lanes own one head row.
  const int my_row = threadIdx.x / L::kRowThreads, my_sub = threadIdx.x % L::kRowThreads;
  const float scale_log2 = p.softmax_scale * kLog2e;
  float running_max = -INFINITY, running_sum = 0.0f;
  // PV roles: warp owns latent columns [64 warp, 64 warp + 64) of every head row.
  const uint32_t p_lane = smem_address(p_smem + (lane % 16) * kPStride + (lane / 16) * 8);
  const int v_lane = (lane & 15) * kRowStride + warp * 64 + (lane >> 4) * 8;  // B of P.V: rows = keys (trans)
  float o[kHeadTiles][8][4];
#pragma unroll
  for (int m = 0; m < kHeadTiles; ++m)
#pragma unroll
    for (int n = 0; n < 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) o[m][n][e] = 0.0f;

  if constexpr (kE4m3) {
    store_registers(0);
    if (tiles > 1) load_registers(1);
  }

  for (int tile = 0; tile < tiles; ++tile) {
    if constexpr (kE4m3) {
      __syncthreads();  // stage tile % 2 is stored by all threads; the previous tile's stage, P and scores are free
      if (tile + 1 < tiles) store_registers((tile + 1) % 2);  // loaded during the previous tile's compute
      if (tile + 2 < tiles) load_registers(tile + 2);         // lands during this tile's compute
    } else {
      cp_async_wait<kStages - 2>();
      __syncthreads();  // tile landed for all threads; the previous tile's stage, P and scores are free
      if (tile + kStages - 1 < tiles) load_tile(tile + kStages - 1, (tile + kStages - 1) % kStages);
      cp_async_commit();
    }
    const uint32_t k_base = smem_address(smem + L::tiles + (tile % kStages) * L::tile_bytes);

    {  // S partial over this warp's k-steps, all 32 keys -> scores[k_part]
      float s[4][4];
#pragma unroll
      for (int n = 0; n < 4; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[n][e] = 0.0f;
#pragma unroll
      for (int i = 0; i < L::kStepsPerWarp; ++i) {
        const int step = k_part + i * L::kKParts;
        if (step < kKSteps) {  // only the 16-head split leaves a ragged last step (36 = 4 x 8 + 4)
#pragma unroll
          for (int pair = 0; pair < 2; ++pair) {
            uint32_t b[4];
            ldmatrix_x4(b, k_base + (k_lane + pair * 16 * kRowStride + step * 16) * 2);
            const uint32_t first[2] = {b[0], b[1]}, second[2] = {b[2], b[3]};
            mma_bf16_16x8x16(s[2 * pair], q_frag[i], first);
            mma_bf16_16x8x16(s[2 * pair + 1], q_frag[i], second);
          }
        }
      }
      float* out = scores + (k_part * L::kHeads + s_tile * 16 + lane / 4) * kScoreStride + (lane % 4) * 2;
#pragma unroll
      for (int n = 0; n < 4; ++n) {
        *reinterpret_cast<float2*>(out + n * 8) = make_float2(s[n][0], s[n][1]);
        *reinterpret_cast<float2*>(out + 8 * kScoreStride + n * 8) = make_float2(s[n][2], s[n][3]);
      }
    }
    __syncthreads();

    {  // Online softmax of row my_row over this tile (log2 domain).
      const int first_key = begin + tile * kKeysPerTile;
      float s[L::kKeysPerThread], tile_max = -INFINITY;
#pragma unroll
      for (int j = 0; j < L::kKeysPerThread; ++j) {
        const int key = my_sub * L::kKeysPerThread + j;
        float value = 0.0f;
#pragma unroll
        for (int part = 0; part < L::kKParts; ++part) value += scores[(part * L::kHeads + my_row) * kScoreStride + key];
        s[j] = first_key + key < end ? value * scale_log2 : -INFINITY;
        tile_max = fmaxf(tile_max, s[j]);
      }
#pragma unroll
      for (int offset = L::kRowThreads / 2; offset > 0; offset >>= 1)
        tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, offset));
      const float new_max = fmaxf(running_max, tile_max);  // finite: every tile holds a key < end
      const float rescale = exp2f(running_max - new_max);
      float sum = 0.0f;
#pragma unroll
      for (int j = 0; j < L::kKeysPerThread; ++j) {
        const __nv_bfloat16 weight = __float2bfloat16(exp2f(s[j] - new_max));
        p_smem[my_row * kPStride + my_sub * L::kKeysPerThread + j] = weight;
        sum += __bfloat162float(weight);  // the sum of the weights the MMA uses
      }
#pragma unroll
      for (int offset = L::kRowThreads / 2; offset > 0; offset >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
      running_sum = running_sum * rescale + sum;
      running_max = new_max;
      if (my_sub == 0) row_scale[my_row] = rescale;
    }
    __syncthreads();

    {  // O = O * rescale + P . V over the tile's two 16-key steps
#pragma unroll
      for (int m = 0; m < kHeadTiles; ++m) {
        const float low = row_scale[m * 16 + lane / 4], high = row_scale[m * 16 + lane / 4 + 8];
#pragma unroll
        for (int n = 0; n < 8; ++n) {
          o[m][n][0] *= low;
          o[m][n][1] *= low;
          o[m][n][2] *= high;
          o[m][n][3] *= high;
        }
      }
#pragma unroll
      for (int ks = 0; ks < kKeysPerTile / 16; ++ks) {
        uint32_t a[kHeadTiles][4];
#pragma unroll
        for (int m = 0; m < kHeadTiles; ++m) ldmatrix_x4(a[m], p_lane + (m * 16 * kPStride + ks * 16) * 2);
#pragma unroll
        for (int pair = 0; pair < 4; ++pair) {
          uint32_t b[4];
          ldmatrix_x4_trans(b, k_base + (v_lane + ks * 16 * kRowStride + pair * 16) * 2);
          const uint32_t first[2] = {b[0], b[1]}, second[2] = {b[2], b[3]};
#pragma unroll
          for (int m = 0; m < kHeadTiles; ++m) {
            mma_bf16_16x8x16(o[m][2 * pair], a[m], first);
            mma_bf16_16x8x16(o[m][2 * pair + 1], a[m], second);
          }
        }
      }
    }
  }

  // Normalise and write: out_latent when this query needs one split, else the partial and its LSE.
  if (my_sub == 0) row_sum[my_row] = running_sum;
  __syncthreads();
  const bool direct = splits_here == 1;
  const int64_t partial_row = (t * config.splits + split) * p.heads;
  if (!direct && my_sub == 0 && head0 + my_row < p.heads)
    p.partial_lse[partial_row + head0 + my_row] = running_max + log2f(running_sum);
#pragma unroll
  for (int m = 0; m < kHeadTiles; ++m)
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int row = m * 16 + lane / 4 + half * 8;
      const int64_t h = head0 + row;
      if (h >= p.heads) continue;
      const float inverse = 1.0f / row_sum[row];
      float* out = direct ? p.out_latent + (t * p.heads + h) * kLora : p.partial_out + (partial_row + h) * kLora;
#pragma unroll
      for (int n = 0; n < 8; ++n)
        *reinterpret_cast<float2*>(out + warp * 64 + n * 8 + (lane % 4) * 2) =
            make_float2(o[m][n][2 * half] * inverse, o[m][n][2 * half + 1] * inverse);
    }
}

// out_latent[t, h] = sum_s 2^(lse_s - lse) partial_s over the splits query t used; one
// block per (token, head), four columns per thread.
__global__ void __launch_bounds__(kCombineThreads)
    mla_decode_combine_kernel(MlaDecodeParams p, MlaDecodeConfig config) {
  wait_for_prior_kernel();
  __shared__ float weights[kMaxSplits];
  const int64_t t = blockIdx.x / p.heads, h = blockIdx.x % p.heads;
  const int splits = used_splits(mla_query_keys(p.positions, p.key_positions, p.top_k, t).count, config);
  if (splits <= 1) return;  // the split kernel wrote out_latent itself
  const float* lse = p.partial_lse + t * config.splits * p.heads + h;
  float max_lse = -INFINITY;
  for (int s = 0; s < splits; ++s) max_lse = fmaxf(max_lse, lse[s * p.heads]);
  for (int s = threadIdx.x; s < splits; s += blockDim.x) weights[s] = exp2f(lse[s * p.heads] - max_lse);
  __syncthreads();
  float total = 0.0f;
  for (int s = 0; s < splits; ++s) total += weights[s];
  const int c = threadIdx.x * 4;
  float4 sum = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  for (int s = 0; s < splits; ++s) {
    const float4 part = *reinterpret_cast<const float4*>(p.partial_out + ((t * config.splits + s) * p.heads + h) * kLora + c);
    const float w = weights[s];
    sum.x += w * part.x;
    sum.y += w * part.y;
    sum.z += w * part.z;
    sum.w += w * part.w;
  }
  const float inverse = 1.0f / total;
  *reinterpret_cast<float4*>(p.out_latent + (t * p.heads + h) * kLora + c) =
      make_float4(sum.x * inverse, sum.y * inverse, sum.z * inverse, sum.w * inverse);
}

int heads_per_cta(int64_t heads) { return heads <= 16 ? 16 : 32; }

template <int kHeadTiles, int kStages, MlaCacheType kCache>
int launch_split_kv(const MlaDecodeParams& p, const MlaDecodeConfig& config, cudaStream_t stream) {
  using L = Layout<kHeadTiles, kStages>;
  auto kernel = mla_decode_split_kv_kernel<kHeadTiles, kStages, kCache>;
  int device = 0, optin = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess)
    return launch_status();
  if (optin < L::bytes) return cudaErrorInvalidConfiguration;  // device gives less than the 99 KB budget
  if (cudaError_t error = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, L::bytes))
    return error;
  const int64_t head_groups = (p.heads + L::kHeads - 1) / L::kHeads;
  const int64_t blocks = p.tokens * config.splits * head_groups;
  if (blocks > INT32_MAX) return cudaErrorInvalidConfiguration;
  const bool power_of_two = (p.page_size & (p.page_size - 1)) == 0;
  const int page_shift = power_of_two ? __builtin_ctzll(static_cast<unsigned long long>(p.page_size)) : -1;
  kernel<<<static_cast<unsigned>(blocks), kThreads, L::bytes, stream>>>(p, config, static_cast<int>(head_groups),
                                                                        page_shift);
  return launch_status();
}

}  // namespace

bool mla_decode_supported(int64_t lora, int64_t rope, int64_t nope) {
  return lora == kLora && rope == kRope && nope > 0 && nope % 8 == 0;
}

MlaDecodeConfig plan_mla_decode(int64_t tokens, int64_t heads, int64_t max_keys, int sm_count) {
  sm_count = resolve_sm_count(sm_count);
  max_keys = max_keys < 1 ? 1 : max_keys;
  const int64_t per_split = (tokens < 1 ? 1 : tokens) * ((heads + heads_per_cta(heads) - 1) / heads_per_cta(heads));
  // At ~96 KB one CTA is resident per SM120 SM and runs a whole split, so the time is
  // waves x (keys per split + a fixed cost per CTA: Q load, first-tile latency, partial
  // write, about kSplitCostKeys keys' worth). Take the cheapest split count (fewest on a
  // tie): it fills the SMs when the batch is small and avoids a mostly empty last wave
  // (256 CTAs on 188 SMs: 2 splits, 3 waves of 2048 keys beat 2 waves of 4096).
  const int64_t longest = (max_keys + kMinKeysPerSplit - 1) / kMinKeysPerSplit;
  const int64_t limit = longest < kPlanMaxSplits ? (longest < 1 ? 1 : longest) : kPlanMaxSplits;
  int64_t splits = 1, best_cost = INT64_MAX;
  for (int64_t candidate = 1; candidate <= limit; ++candidate) {
    const int64_t keys = (max_keys + candidate - 1) / candidate;
    const int64_t waves = (per_split * candidate + sm_count - 1) / sm_count;
    const int64_t cost = waves * (keys + kSplitCostKeys);
    if (cost < best_cost) best_cost = cost, splits = candidate;
  }
  int64_t keys_per_split = (max_keys + splits - 1) / splits;
  keys_per_split = (keys_per_split + kKeysPerTile - 1) / kKeysPerTile * kKeysPerTile;
  MlaDecodeConfig config;
  config.keys_per_split = static_cast<int>(keys_per_split);
  config.splits = static_cast<int>((max_keys + keys_per_split - 1) / keys_per_split);
  return config;
}

int64_t mla_decode_workspace_floats(int64_t tokens, int64_t heads, int64_t lora, const MlaDecodeConfig& config) {
  return config.splits <= 1 ? 0 : tokens * config.splits * heads * (lora + 1);
}

int launch_mla_decode_split_kv(const MlaDecodeParams& p, const MlaDecodeConfig& config, Stream stream) {
  const bool e4m3 = p.cache_type == MlaCacheType::E4M3;
  if (!mla_decode_supported(p.lora, p.rope, p.nope) || p.tokens < 0 || p.heads <= 0 || p.page_size <= 0 ||
      p.sequences <= 0 || p.max_blocks <= 0 || config.splits < 1 || config.splits > kMaxSplits ||
      config.keys_per_split <= 0 || config.keys_per_split % kKeyGranule != 0 || p.page_size > INT32_MAX ||
      (p.cache_type != MlaCacheType::BF16 && !e4m3) || (p.key_positions && p.top_k <= 0))
    return cudaErrorInvalidValue;
  if (p.tokens == 0) return cudaSuccess;
  if (!p.q_latent || !p.q || !p.cache || !p.query_start || !p.block_table || !p.positions || !p.out_latent ||
      !aligned16(p.q_latent) || !aligned16(p.q) || !aligned16(p.cache) || !aligned16(p.out_latent) ||
      (e4m3 && !p.cache_scales) ||
      (config.splits > 1 && (!p.partial_out || !p.partial_lse || !aligned16(p.partial_out))))
    return cudaErrorInvalidValue;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const bool sixteen = heads_per_cta(p.heads) == 16;
  const int status = e4m3 ? (sixteen ? launch_split_kv<1, 2, MlaCacheType::E4M3>(p, config, s)
                                     : launch_split_kv<2, 2, MlaCacheType::E4M3>(p, config, s))
                          : (sixteen ? launch_split_kv<1, 2, MlaCacheType::BF16>(p, config, s)
                                     : launch_split_kv<2, 2, MlaCacheType::BF16>(p, config, s));
  if (status != cudaSuccess || config.splits == 1) return status;
  const int64_t items = p.tokens * p.heads;
  if (items > INT32_MAX) return cudaErrorInvalidConfiguration;
  mla_decode_combine_kernel<<<static_cast<unsigned>(items), kCombineThreads, 0, s>>>(p, config);
  return launch_status();
}

}  // namespace rackserve::kernels
