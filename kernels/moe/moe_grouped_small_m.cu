// CUDA-core path of the grouped MoE experts, for decode-sized experts (a few pairs each):
// memory-bound, so each CTA streams a slice of one expert's weight rows once and applies
// every 16-byte chunk to a tile of up to 8 of the expert's tokens. Grid: x = row slices (so
// even 8 active experts at batch 1 cover every SM), y = active expert slots.
//   gate_up: a warp owns 2 intermediate rows (its 2 gate + 2 up weight rows stream together);
//   down:    a warp owns 4 hidden rows.
// With 2 chunks unrolled, each lane keeps 8 16-byte weight loads in flight (32 KB per CTA).
// Weights load with L1::no_allocate so the token vectors (re-read by every warp) stay in L1.
// INT4 weights (MoeWeightFormat::INT4, W4A16) run the same kernels: a chunk of 8 weights is
// one 4-byte word of codes and its group's bf16 scale, expanded to (code - 8) * scale in f32,
// so a CTA streams a quarter of the bytes (8 4-byte loads in flight per lane). NVFP4 likewise:
// 4 bytes of e2m1 pairs (the same nibble order), its block's e4m3 scale and the row's f32
// scale, expanded to e2m1 * e4m3 * row scale.
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include "common/device_utils.cuh"
#include "moe/moe_grouped.cuh"

namespace rackserve::kernels {

namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kTileTokens = 8;
constexpr int kUnroll = 2;
constexpr int kGateUpRows = 2;  // intermediate rows per warp
constexpr int kDownRows = 4;    // hidden rows per warp
constexpr int kChunk = 8;       // bf16 values per 16-byte load
static_assert(2 * kGateUpRows * kTileTokens == 32 && kDownRows * kTileTokens == 32,
              "one accumulator per lane after the reduce-scatter");

__device__ __forceinline__ uint4 load_streaming(const __nv_bfloat16* address) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];\n"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(address));
  return v;
}

__device__ __forceinline__ void unpack_bf16x8(const uint4& raw, float (&out)[8]) {
  const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    out[2 * i] = __uint_as_float(words[i] << 16);
    out[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
  }
}

__device__ __forceinline__ void load_cached_bf16x8(const __nv_bfloat16* address, float (&out)[8]) {
  unpack_bf16x8(__ldg(reinterpret_cast<const uint4*>(address)), out);
}

__device__ __forceinline__ uint32_t load_streaming_word(const uint32_t* address) {
  uint32_t v;
  asm("ld.global.nc.L1::no_allocate.u32 %0, [%1];\n" : "=r"(v) : "l"(address));
  return v;
}

// One weight row of an expert, read kChunk = 8 consecutive inputs at a time: load(k) fetches
// the chunk at input k (a multiple of 8) for a later unpack into f32 weights.
template <MoeWeightFormat kFormat>
struct WeightRow;

template <>
struct WeightRow<MoeWeightFormat::BF16> {
  using Chunk = uint4;
  const __nv_bfloat16* values;
  // Row `row` of the [experts * rows_per_expert, cols] matrix `base` (scales unused).
  __device__ static WeightRow at(const void* base, const void* /*scales*/, const float* /*row_scales*/, int64_t row,
                                 int64_t cols, int64_t /*group*/) {
    return {static_cast<const __nv_bfloat16*>(base) + row * cols};
  }
  __device__ Chunk load(int64_t k) const { return load_streaming(values + k); }
  __device__ static void unpack(const Chunk& chunk, float (&w)[8]) { unpack_bf16x8(chunk, w); }
};

template <>
struct WeightRow<MoeWeightFormat::INT4> {
  struct Chunk {
    uint32_t codes;
    float scale;
  };
  const uint32_t* codes;
  const __nv_bfloat16* scales;
  int group;
  __device__ static WeightRow at(const void* base, const void* scales, const float* /*row_scales*/, int64_t row,
                                 int64_t cols, int64_t group) {
    return {static_cast<const uint32_t*>(base) + row * (cols / 8),
            static_cast<const __nv_bfloat16*>(scales) + row * (cols / group), static_cast<int>(group)};
  }
  __device__ Chunk load(int64_t k) const {
    return {load_streaming_word(codes + k / 8), __bfloat162float(scales[k / group])};
  }
  __device__ static void unpack(const Chunk& chunk, float (&w)[8]) {
#pragma unroll
    for (int i = 0; i < 8; ++i)
      w[i] = static_cast<float>(static_cast<int>((chunk.codes >> (4 * i)) & 0xfu) - 8) * chunk.scale;
  }
};

// e2m1 (bit 3 the sign; magnitudes 0, 0.5, 1, 1.5, 2, 3, 4, 6) as f32, without a table:
// codes 2..7 are normal (2^(e - 1) x (1 + m / 2)), 1 is the subnormal 0.5.
__device__ __forceinline__ float e2m1_to_float(uint32_t code) {
  const uint32_t magnitude = code & 0x7u;
  const float value = magnitude < 2u ? 0.5f * static_cast<float>(magnitude)
                                     : __uint_as_float(((magnitude >> 1) + 126u) << 23 | (magnitude & 1u) << 22);
  return (code & 0x8u) ? -value : value;
}

template <>
struct WeightRow<MoeWeightFormat::NVFP4> {
  static constexpr int kGroup = 16;
  struct Chunk {
    uint32_t codes;  // 8 e2m1 codes, column 8w + i in bits [4i, 4i + 4)
    float scale;     // e4m3 block scale x row scale
  };
  const uint32_t* codes;
  const uint8_t* block_scales;
  float row_scale;
  __device__ static WeightRow at(const void* base, const void* scales, const float* row_scales, int64_t row,
                                 int64_t cols, int64_t /*group*/) {
    return {static_cast<const uint32_t*>(base) + row * (cols / 8),
            static_cast<const uint8_t*>(scales) + row * (cols / kGroup), row_scales[row]};
  }
  __device__ Chunk load(int64_t k) const {
    return {load_streaming_word(codes + k / 8),
            __half2float(__half(__nv_cvt_fp8_to_halfraw(block_scales[k / kGroup], __NV_E4M3))) * row_scale};
  }
  __device__ static void unpack(const Chunk& chunk, float (&w)[8]) {
#pragma unroll
    for (int i = 0; i < 8; ++i) w[i] = e2m1_to_float(chunk.codes >> (4 * i)) * chunk.scale;
  }
};

// One halving step: lanes whose `Width` bit is clear keep v[0..Width), the others
// v[Width..2 Width) moved down to v[0..Width), each plus the partner lane's copy.
template <int Width>
__device__ __forceinline__ void reduce_scatter_step(float (&v)[32], bool upper) {
#pragma unroll
  for (int i = 0; i < Width; ++i) {
    const float send = upper ? v[i] : v[i + Width];
    const float keep = upper ? v[i + Width] : v[i];
    v[i] = keep + __shfl_xor_sync(0xffffffffu, send, Width);
  }
}

// On lane l: the sum over the warp of v[l] (31 shuffles instead of 32 full reductions).
__device__ __forceinline__ float warp_reduce_scatter32(float (&v)[32]) {
  const int lane = threadIdx.x % 32;
  reduce_scatter_step<16>(v, (lane & 16) != 0);
  reduce_scatter_step<8>(v, (lane & 8) != 0);
  reduce_scatter_step<4>(v, (lane & 4) != 0);
  reduce_scatter_step<2>(v, (lane & 2) != 0);
  reduce_scatter_step<1>(v, (lane & 1) != 0);
  return v[0];
}

struct ExpertWork {
  int expert, offset, count;
};

// The active expert of this CTA (blockIdx.y), or false when the slot is empty or the expert
// belongs to the tiled path.
__device__ __forceinline__ bool small_m_expert(const MoeGroupedExpertsParams& p, int64_t tiled_min_tokens,
                                               ExpertWork& work) {
  work.expert = p.active_experts[blockIdx.y];
  if (work.expert < 0) return false;
  work.count = p.active_counts[blockIdx.y];
  work.offset = p.active_offsets[blockIdx.y];
  return work.count < tiled_min_tokens;
}

template <MoeWeightFormat kFormat>
__global__ void __launch_bounds__(kThreads) moe_gate_up_small_m_kernel(MoeGroupedExpertsParams p,
                                                                       int64_t tiled_min_tokens) {
  using Row = WeightRow<kFormat>;
  wait_for_prior_kernel();
  ExpertWork work;
  if (!small_m_expert(p, tiled_min_tokens, work)) return;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t row_begin = (static_cast<int64_t>(blockIdx.x) * kWarps + warp) * kGateUpRows;
  if (row_begin >= p.inter) return;
  const int64_t expert_row = static_cast<int64_t>(work.expert) * 2 * p.inter;
  // rows[q]: q < kGateUpRows the gate rows, then the matching up rows (clamped in range).
  Row rows[2 * kGateUpRows];
#pragma unroll
  for (int r = 0; r < kGateUpRows; ++r) {
    const int64_t row = min(row_begin + r, p.inter - 1);
    rows[r] = Row::at(p.gate_up, p.gate_up_scales, p.gate_up_row_scales, expert_row + row, p.hidden, p.group);
    rows[kGateUpRows + r] =
        Row::at(p.gate_up, p.gate_up_scales, p.gate_up_row_scales, expert_row + p.inter + row, p.hidden, p.group);
  }
  const __nv_bfloat16* x = static_cast<const __nv_bfloat16*>(p.x);

  for (int tile = 0; tile < work.count; tile += kTileTokens) {
    const int tokens = min(kTileTokens, work.count - tile);
    const __nv_bfloat16* x_rows[kTileTokens];
#pragma unroll
    for (int t = 0; t < kTileTokens; ++t) {
      const int pair = p.sorted_pairs[work.offset + tile + min(t, tokens - 1)];
      x_rows[t] = x + (pair / p.top_k) * p.hidden;
    }
    float accumulator[32] = {};  // [q][t]: q = gate rows, then up rows
    for (int64_t k_begin = lane * kChunk; k_begin < p.hidden; k_begin += 32 * kChunk * kUnroll) {
      typename Row::Chunk raw[kUnroll][2 * kGateUpRows];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int64_t k = k_begin + u * 32 * kChunk;
#pragma unroll
        for (int q = 0; q < 2 * kGateUpRows; ++q) raw[u][q] = k < p.hidden ? rows[q].load(k) : typename Row::Chunk{};
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int64_t k = k_begin + u * 32 * kChunk;
        if (k >= p.hidden) continue;
        float w[2 * kGateUpRows][kChunk];
#pragma unroll
        for (int q = 0; q < 2 * kGateUpRows; ++q) Row::unpack(raw[u][q], w[q]);
#pragma unroll
        for (int t = 0; t < kTileTokens; ++t) {
          if (t >= tokens) continue;
          float xv[kChunk];
          load_cached_bf16x8(x_rows[t] + k, xv);
#pragma unroll
          for (int q = 0; q < 2 * kGateUpRows; ++q)
#pragma unroll
            for (int i = 0; i < kChunk; ++i) accumulator[q * kTileTokens + t] = fmaf(w[q][i], xv[i], accumulator[q * kTileTokens + t]);
        }
      }
    }
    const float sum = warp_reduce_scatter32(accumulator);  // lane l: item l = (q, t)
    const float up = __shfl_down_sync(0xffffffffu, sum, 16);
    const int r = lane / kTileTokens, t = lane % kTileTokens;
    const int64_t row = row_begin + r;
    if (lane < kGateUpRows * kTileTokens && t < tokens && row < p.inter) {
      const int64_t pair = p.sorted_pairs[work.offset + tile + t];
      __nv_bfloat16 high, low;
      split_bf16(silu_times(sum, up), high, low);
      static_cast<__nv_bfloat16*>(p.activated_high)[pair * p.inter + row] = high;
      static_cast<__nv_bfloat16*>(p.activated_low)[pair * p.inter + row] = low;
    }
  }
}

// 4-bit weights: two CTAs per SM (without the bound the INT4 down kernel takes 144 registers on
// sm_90a, one CTA per SM; with it 128, no spills). BF16 keeps its code as it was.
template <MoeWeightFormat kFormat>
__global__ void __launch_bounds__(kThreads, kFormat == MoeWeightFormat::BF16 ? 1 : 2)
    moe_down_small_m_kernel(MoeGroupedExpertsParams p, int64_t tiled_min_tokens) {
  using Row = WeightRow<kFormat>;
  wait_for_prior_kernel();
  ExpertWork work;
  if (!small_m_expert(p, tiled_min_tokens, work)) return;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t row_begin = (static_cast<int64_t>(blockIdx.x) * kWarps + warp) * kDownRows;
  if (row_begin >= p.hidden) return;
  Row rows[kDownRows];
#pragma unroll
  for (int q = 0; q < kDownRows; ++q)
    rows[q] = Row::at(p.down, p.down_scales, p.down_row_scales,
                      static_cast<int64_t>(work.expert) * p.hidden + min(row_begin + q, p.hidden - 1), p.inter, p.group);
  const __nv_bfloat16* high = static_cast<const __nv_bfloat16*>(p.activated_high);
  const __nv_bfloat16* low = static_cast<const __nv_bfloat16*>(p.activated_low);

  for (int tile = 0; tile < work.count; tile += kTileTokens) {
    const int tokens = min(kTileTokens, work.count - tile);
    int64_t activated_rows[kTileTokens];  // element offset of each token's activation row
#pragma unroll
    for (int t = 0; t < kTileTokens; ++t)
      activated_rows[t] = static_cast<int64_t>(p.sorted_pairs[work.offset + tile + min(t, tokens - 1)]) * p.inter;
    float accumulator[32] = {};  // [q][t]
    for (int64_t k_begin = lane * kChunk; k_begin < p.inter; k_begin += 32 * kChunk * kUnroll) {
      typename Row::Chunk raw[kUnroll][kDownRows];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int64_t k = k_begin + u * 32 * kChunk;
#pragma unroll
        for (int q = 0; q < kDownRows; ++q) raw[u][q] = k < p.inter ? rows[q].load(k) : typename Row::Chunk{};
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int64_t k = k_begin + u * 32 * kChunk;
        if (k >= p.inter) continue;
        float w[kDownRows][kChunk];
#pragma unroll
        for (int q = 0; q < kDownRows; ++q) Row::unpack(raw[u][q], w[q]);
#pragma unroll
        for (int t = 0; t < kTileTokens; ++t) {
          if (t >= tokens) continue;
          float a[kChunk], a_low[kChunk];
          load_cached_bf16x8(high + activated_rows[t] + k, a);
          load_cached_bf16x8(low + activated_rows[t] + k, a_low);
#pragma unroll
          for (int i = 0; i < kChunk; ++i) a[i] += a_low[i];
#pragma unroll
          for (int q = 0; q < kDownRows; ++q)
#pragma unroll
            for (int i = 0; i < kChunk; ++i) accumulator[q * kTileTokens + t] = fmaf(w[q][i], a[i], accumulator[q * kTileTokens + t]);
        }
      }
    }
    const float sum = warp_reduce_scatter32(accumulator);  // lane l: item l = (q, t)
    const int q = lane / kTileTokens, t = lane % kTileTokens;
    const int64_t row = row_begin + q;
    if (t < tokens && row < p.hidden) {
      const int64_t pair = p.sorted_pairs[work.offset + tile + t];
      p.contributions[pair * p.hidden + row] = p.weights[pair] * sum;
    }
  }
}

}  // namespace

int launch_moe_gate_up_small_m(const MoeGroupedExpertsParams& p, int64_t tiled_min_tokens, cudaStream_t stream) {
  const int64_t rows_per_block = kWarps * kGateUpRows;
  dim3 grid(static_cast<unsigned>((p.inter + rows_per_block - 1) / rows_per_block), static_cast<unsigned>(p.max_active));
  if (p.weight_format == MoeWeightFormat::INT4)
    moe_gate_up_small_m_kernel<MoeWeightFormat::INT4><<<grid, kThreads, 0, stream>>>(p, tiled_min_tokens);
  else if (p.weight_format == MoeWeightFormat::NVFP4)
    moe_gate_up_small_m_kernel<MoeWeightFormat::NVFP4><<<grid, kThreads, 0, stream>>>(p, tiled_min_tokens);
  else
    moe_gate_up_small_m_kernel<MoeWeightFormat::BF16><<<grid, kThreads, 0, stream>>>(p, tiled_min_tokens);
  return launch_status();
}

int launch_moe_down_small_m(const MoeGroupedExpertsParams& p, int64_t tiled_min_tokens, cudaStream_t stream) {
  const int64_t rows_per_block = kWarps * kDownRows;
  dim3 grid(static_cast<unsigned>((p.hidden + rows_per_block - 1) / rows_per_block), static_cast<unsigned>(p.max_active));
  if (p.weight_format == MoeWeightFormat::INT4)
    moe_down_small_m_kernel<MoeWeightFormat::INT4><<<grid, kThreads, 0, stream>>>(p, tiled_min_tokens);
  else if (p.weight_format == MoeWeightFormat::NVFP4)
    moe_down_small_m_kernel<MoeWeightFormat::NVFP4><<<grid, kThreads, 0, stream>>>(p, tiled_min_tokens);
  else
    moe_down_small_m_kernel<MoeWeightFormat::BF16><<<grid, kThreads, 0, stream>>>(p, tiled_min_tokens);
  return launch_status();
}

}  // namespace rackserve::kernels
