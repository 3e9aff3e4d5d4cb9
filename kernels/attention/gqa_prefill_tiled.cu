// Tiled causal GQA attention for prefill and chunked prefill (flash-attention 2 on mma.sync,
// within SM120's shared memory): one CTA per (64 query tokens of one sequence, query head), four
// warps of 16 query rows each. Key/value tiles of 64 rows stream through a two-stage cp.async
// ring straight from the paged bf16 cache; S = Q K^T and O += P V run on m16n8k16 bf16 mma
// with f32 accumulators, the softmax online in f32 (log2 domain), P rounded to bf16 for the
// second product as flash-attention does. Every key tile is read once per 64 queries instead
// of once per query. An e4m3 cache streams its raw bytes through the ring instead and each tile
// is dequantized (code x its row's scale, rounded to bf16) into one bf16 tile before the
// products. Contract in rackserve/kernels/gqa_params.h.
#include "attention/gqa_attention.cuh"  // also the e4m3 decode (mla_cache_e4m3.cuh)
#include "common/mma_utils.cuh"
#include "common/shared_memory_budget.cuh"

namespace rackserve::kernels {

namespace {

constexpr int kQueryRows = 64;  // query tokens per CTA, 16 per warp
constexpr int kKeyRows = 64;    // keys per tile
constexpr int kPrefillThreads = 128;

// Shared memory, in bytes from the start: Q, then the bf16 K and V tiles (two stages for a bf16
// cache, whose ring they are; one for e4m3), then for e4m3 the ring of raw K and V bytes (two
// stages) and the rows' scales (two stages).
template <int kD, bool kE4m3>
struct PrefillLayout {
  static constexpr int kStride = kD + 8;  // bf16 per shared row: 16-byte aligned, rows shifted by 4 banks
  static constexpr int kQueryElements = kQueryRows * kStride;
  static constexpr int kTileElements = kKeyRows * kStride;
  static constexpr int kTileStages = kE4m3 ? 1 : 2;
  static constexpr int kRawTileBytes = kE4m3 ? kKeyRows * kD : 0;  // K or V of one stage, unpadded
  static constexpr int kRawOffset = (kQueryElements + 2 * kTileStages * kTileElements) * 2;
  static constexpr int kScalesOffset = kRawOffset + 2 * 2 * kRawTileBytes;
  static constexpr int kSharedBytes = kScalesOffset + (kE4m3 ? 2 * kKeyRows * 4 : 0);
};
static_assert(PrefillLayout<128, false>::kSharedBytes <= kSharedMemoryBudgetBytes, "prefill tiles exceed the budget");
static_assert(PrefillLayout<128, true>::kSharedBytes <= kSharedMemoryBudgetBytes, "prefill tiles exceed the budget");

struct QueryTile {
  int64_t sequence = -1, row_begin = 0, rows = 0;
};

// The index-th tile of kQueryRows consecutive query rows, counted over the sequences in order
// (a sequence's last tile may be shorter); sequence -1 past the last one.
__device__ QueryTile find_tile(const int32_t* query_start, int64_t sequences, int64_t index) {
  for (int64_t s = 0; s < sequences; ++s) {
    const int64_t length = query_start[s + 1] - query_start[s];
    const int64_t tiles = (length + kQueryRows - 1) / kQueryRows;
    if (index < tiles) {
      const int64_t begin = index * kQueryRows;
      return {s, query_start[s] + begin, length - begin < kQueryRows ? length - begin : kQueryRows};
    }
    index -= tiles;
  }
  return {};
}

__device__ __forceinline__ float quad_max(float value) {
  value = fmaxf(value, __shfl_xor_sync(0xffffffffu, value, 1));
  return fmaxf(value, __shfl_xor_sync(0xffffffffu, value, 2));
}
__device__ __forceinline__ float quad_sum(float value) {
  value += __shfl_xor_sync(0xffffffffu, value, 1);
  return value + __shfl_xor_sync(0xffffffffu, value, 2);
}

// One query row's running softmax state (log2 domain) as the four lanes of a quad share it.
struct RowState {
  float max = -INFINITY, sum = 0.0f;  // sum: this lane's part, summed over the quad at the end
  int64_t position = -1;              // -1: a row past the tile's end (every key masked)

  // Folds in a tile whose masked scores' row maximum (over the quad) is tile_max; returns the
  // factor the accumulators are rescaled by and sets `base`, what scores are exponentiated
  // against (0 while every score so far is masked, so nothing becomes NaN).
  __device__ float advance(float tile_max, float& base) {
    const float new_max = fmaxf(max, tile_max);
    base = new_max == -INFINITY ? 0.0f : new_max;
    const float rescale = exp2f(max - base);  // max == -inf: 0
    max = new_max;
    sum *= rescale;
    return rescale;
  }
};

template <int kD, bool kE4m3>
__global__ void __launch_bounds__(kPrefillThreads) gqa_prefill_kernel(GqaAttentionParams p) {
  using L = PrefillLayout<kD, kE4m3>;
  wait_for_prior_kernel();
  const QueryTile tile = find_tile(p.query_start, p.sequences, blockIdx.x);
  if (tile.sequence < 0) return;
  const int64_t h = blockIdx.y, kv_head = h / (p.heads / p.kv_heads);
  extern __shared__ __align__(16) __nv_bfloat16 shared[];
  __nv_bfloat16* q_tile = shared;
  __nv_bfloat16* k_tiles = shared + L::kQueryElements;  // [kTileStages][kKeyRows][kStride]
  __nv_bfloat16* v_tiles = k_tiles + L::kTileStages * L::kTileElements;
  uint8_t* raw = reinterpret_cast<uint8_t*>(shared) + L::kRawOffset;          // e4m3: [2][K, V][kKeyRows][kD]
  float* row_scales = reinterpret_cast<float*>(reinterpret_cast<uint8_t*>(shared) + L::kScalesOffset);  // [2][kKeyRows]
  constexpr int kChunks = kD / 8;  // 16-byte chunks per row

  const __nv_bfloat16* q = static_cast<const __nv_bfloat16*>(p.q);
  for (int c = threadIdx.x; c < kQueryRows * kChunks; c += kPrefillThreads) {
    const int row = c / kChunks, chunk = c % kChunks;
    const bool valid = row < tile.rows;
    cp_async_16(smem_address(q_tile + row * L::kStride + chunk * 8),
                valid ? q + ((tile.row_begin + row) * p.heads + h) * kD + chunk * 8 : q, valid);
  }
  // Positions of a sequence's step rows are consecutive: its last row sees the most keys.
  const int64_t key_end = static_cast<int64_t>(p.positions[tile.row_begin + tile.rows - 1]) + 1;
  const int64_t key_tiles = (key_end + kKeyRows - 1) / kKeyRows;
  const int64_t width = 2 * p.kv_heads * kD;  // values per cache row
  // The cache slot of key j of this sequence, or -1 past the end (zeros, masked below, nothing read).
  auto slot_of = [&](int64_t j) -> int64_t {
    if (j >= key_end) return -1;
    return static_cast<int64_t>(p.block_table[tile.sequence * p.max_blocks + j / p.page_size]) * p.page_size +
           j % p.page_size;
  };
  // Key tile `index` into ring stage `stage`: bf16 rows straight into the K and V tiles, or the
  // raw e4m3 rows (16 values per 16-byte chunk) and their scales.
  auto load_keys = [&](int64_t index, int stage) {
    if constexpr (!kE4m3) {
      const __nv_bfloat16* cache = static_cast<const __nv_bfloat16*>(p.cache);
      for (int c = threadIdx.x; c < kKeyRows * kChunks; c += kPrefillThreads) {
        const int row = c / kChunks, chunk = c % kChunks;
        const int64_t slot = slot_of(index * kKeyRows + row);
        const __nv_bfloat16* entry = slot < 0 ? cache : cache + slot * width;
        const int offset = stage * L::kTileElements + row * L::kStride + chunk * 8;
        cp_async_16(smem_address(k_tiles + offset), entry + (slot < 0 ? 0 : kv_head * kD + chunk * 8), slot >= 0);
        cp_async_16(smem_address(v_tiles + offset), entry + (slot < 0 ? 0 : (p.kv_heads + kv_head) * kD + chunk * 8),
                    slot >= 0);
      }
    } else {
      const uint8_t* cache = static_cast<const uint8_t*>(p.cache);
      constexpr int kRawChunks = kD / 16;
      for (int c = threadIdx.x; c < kKeyRows * kRawChunks; c += kPrefillThreads) {
        const int row = c / kRawChunks, chunk = c % kRawChunks;
        const int64_t slot = slot_of(index * kKeyRows + row);
        const uint8_t* entry = slot < 0 ? cache : cache + slot * width;
        uint8_t* k_raw = raw + stage * 2 * L::kRawTileBytes;
        cp_async_16(smem_address(k_raw + row * kD + chunk * 16), entry + (slot < 0 ? 0 : kv_head * kD + chunk * 16),
                    slot >= 0);
        cp_async_16(smem_address(k_raw + L::kRawTileBytes + row * kD + chunk * 16),
                    entry + (slot < 0 ? 0 : (p.kv_heads + kv_head) * kD + chunk * 16), slot >= 0);
        if (chunk == 0) row_scales[stage * kKeyRows + row] = slot < 0 ? 0.0f : p.cache_scales[slot];
      }
    }
  };
  // e4m3: raw stage `stage` -> the bf16 K and V tiles (value = code x its row's scale).
  auto dequantize_keys = [&](int stage) {
    const uint8_t* k_raw = raw + stage * 2 * L::kRawTileBytes;
    for (int c = threadIdx.x; c < 2 * kKeyRows * (kD / 4); c += kPrefillThreads) {
      const int tensor = c / (kKeyRows * (kD / 4)), rest = c % (kKeyRows * (kD / 4));
      const int row = rest / (kD / 4), quad = rest % (kD / 4);  // 4 values per step
      const uint32_t codes = *reinterpret_cast<const uint32_t*>(k_raw + tensor * L::kRawTileBytes + row * kD + quad * 4);
      __nv_bfloat16* target = (tensor == 0 ? k_tiles : v_tiles) + row * L::kStride + quad * 4;
      *reinterpret_cast<uint2*>(target) = dequantize_e4m3x4_to_bf16(codes, row_scales[stage * kKeyRows + row]);
    }
  };
  load_keys(0, 0);
  cp_async_commit();  // group 0: Q and key tile 0

  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, t = lane % 4;
  // Rows g and g + 8 of this warp's 16 (fragment rows a and b).
  RowState row[2];
  for (int r = 0; r < 2; ++r) {
    const int index = warp * 16 + g + 8 * r;
    if (index < tile.rows) row[r].position = p.positions[tile.row_begin + index];
  }
  const float scale_log2 = p.softmax_scale * 1.4426950408889634f;
  float o[kD / 8][4] = {};
  uint32_t q_fragment[kD / 16][4];

  for (int64_t kt = 0; kt < key_tiles; ++kt) {
    const int stage = static_cast<int>(kt % 2);
    if (kt + 1 < key_tiles) load_keys(kt + 1, (stage + 1) % 2);
    cp_async_commit();
    cp_async_wait<1>();  // tile kt (and Q) landed for this thread ...
    __syncthreads();     // ... and for every thread
    if constexpr (kE4m3) {
      dequantize_keys(stage);  // into the one bf16 stage, which the last barrier freed
      __syncthreads();
    }
    if (kt == 0)
#pragma unroll
      for (int kk = 0; kk < kD / 16; ++kk)
        ldmatrix_x4(q_fragment[kk],
                    smem_address(q_tile + (warp * 16 + lane % 16) * L::kStride + kk * 16 + (lane / 16) * 8));
    const __nv_bfloat16* k_tile = k_tiles + (kE4m3 ? 0 : stage) * L::kTileElements;
    const __nv_bfloat16* v_tile = v_tiles + (kE4m3 ? 0 : stage) * L::kTileElements;

    // S = Q K^T over the tile's 64 keys (8 n-tiles of 8), two n-tiles per ldmatrix.
    float s[kKeyRows / 8][4] = {};
#pragma unroll
    for (int kk = 0; kk < kD / 16; ++kk)
#pragma unroll
      for (int nt = 0; nt < kKeyRows / 8; nt += 2) {
        uint32_t b[4];
        const int key = nt * 8 + (lane / 16) * 8 + lane % 8, d = kk * 16 + ((lane / 8) % 2) * 8;
        ldmatrix_x4(b, smem_address(k_tile + key * L::kStride + d));
        const uint32_t first[2] = {b[0], b[1]}, second[2] = {b[2], b[3]};
        mma_bf16_16x8x16(s[nt], q_fragment[kk], first);
        mma_bf16_16x8x16(s[nt + 1], q_fragment[kk], second);
      }

    // Causal mask, scale, online softmax (elements 0, 1 are row a's, 2, 3 row b's).
    float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < kKeyRows / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t j = kt * kKeyRows + nt * 8 + 2 * t + (e & 1);
        s[nt][e] = j <= row[e / 2].position ? s[nt][e] * scale_log2 : -INFINITY;
        tile_max[e / 2] = fmaxf(tile_max[e / 2], s[nt][e]);
      }
    float base[2], rescale[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) rescale[r] = row[r].advance(quad_max(tile_max[r]), base[r]);
#pragma unroll
    for (int nt = 0; nt < kKeyRows / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[nt][e] = exp2f(s[nt][e] - base[e / 2]);  // masked: exp2(-inf) = 0
        row[e / 2].sum += s[nt][e];
      }
#pragma unroll
    for (int nt = 0; nt < kD / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) o[nt][e] *= rescale[e / 2];

    // O += P V: P's accumulator pairs are the A fragments of 16-key steps; V^T by ldmatrix.trans.
#pragma unroll
    for (int kk = 0; kk < kKeyRows / 16; ++kk) {
      const uint32_t a[4] = {pack_bf16x2(s[2 * kk][0], s[2 * kk][1]), pack_bf16x2(s[2 * kk][2], s[2 * kk][3]),
                             pack_bf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                             pack_bf16x2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int nt = 0; nt < kD / 8; nt += 2) {
        uint32_t b[4];
        const int key = kk * 16 + lane % 8 + ((lane / 8) % 2) * 8, d = nt * 8 + (lane / 16) * 8;
        ldmatrix_x4_trans(b, smem_address(v_tile + key * L::kStride + d));
        const uint32_t first[2] = {b[0], b[1]}, second[2] = {b[2], b[3]};
        mma_bf16_16x8x16(o[nt], a, first);
        mma_bf16_16x8x16(o[nt + 1], a, second);
      }
    }
    __syncthreads();  // this stage is refilled by the load two tiles on (e4m3: the bf16 tile by the next one)
  }
  cp_async_wait<0>();  // nothing left in flight at exit (key_tiles >= 1 by contract; 0 is no hazard either)

  __nv_bfloat16* out = static_cast<__nv_bfloat16*>(p.output);
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float total = quad_sum(row[r].sum);
    if (row[r].position < 0) continue;  // a row past the tile's end
    const int64_t token = tile.row_begin + warp * 16 + g + 8 * r;
    __nv_bfloat16* target = out + (token * p.heads + h) * kD;
#pragma unroll
    for (int nt = 0; nt < kD / 8; ++nt)
      *reinterpret_cast<uint32_t*>(target + nt * 8 + 2 * t) =
          pack_bf16x2(o[nt][2 * r] / total, o[nt][2 * r + 1] / total);
  }
}

template <int kD, bool kE4m3>
int launch_prefill(const GqaAttentionParams& p, cudaStream_t stream) {
  using L = PrefillLayout<kD, kE4m3>;
  auto kernel = gqa_prefill_kernel<kD, kE4m3>;
  if (int status = opt_in_dynamic_shared_memory(reinterpret_cast<const void*>(kernel), L::kSharedBytes,
                                                "gqa_prefill_kernel"))
    return status;
  // Tiles: at most ceil(tokens / 64) + one partial tile per sequence; CTAs past the last exit.
  const int64_t tiles = (p.tokens + kQueryRows - 1) / kQueryRows + p.sequences;
  kernel<<<dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(p.heads)), kPrefillThreads, L::kSharedBytes,
           stream>>>(p);
  return launch_status();
}

}  // namespace

bool gqa_prefill_supported(int64_t heads, int64_t kv_heads, int64_t head_dim) {
  return kv_heads > 0 && heads % kv_heads == 0 && (head_dim == 64 || head_dim == 128);
}

int launch_gqa_prefill_tiled(const GqaAttentionParams& p, Stream stream) {
  if (p.tokens < 0 || p.sequences < 1 || !gqa_prefill_supported(p.heads, p.kv_heads, p.head_dim) ||
      p.page_size <= 0 || p.tokens > INT32_MAX / 2 || p.heads > 65535 || !aligned16(p.q) || !aligned16(p.cache) ||
      !aligned16(p.output) ||
      (p.tokens > 0 && (!p.q || !p.cache || !p.query_start || !p.block_table || !p.positions || !p.output)))
    return cudaErrorInvalidValue;
  if (p.tokens == 0) return cudaSuccess;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (p.cache_scales) return p.head_dim == 64 ? launch_prefill<64, true>(p, s) : launch_prefill<128, true>(p, s);
  return p.head_dim == 64 ? launch_prefill<64, false>(p, s) : launch_prefill<128, false>(p, s);
}

}  // namespace rackserve::kernels
