// y = x W^T for BF16 weights, designed for decode-sized m (memory-bound: every weight byte
// should be read once at full bandwidth). A CTA of 8 warps covers 8 / split output
// features; the `split` warps of a feature each stream a contiguous share of its K range
// in 16-byte chunks and apply them to a tile of up to 8 tokens (x is re-read from L1/L2),
// then meet in shared memory. float32 accumulation.
//
// Budget per warp iteration: 4 weight chunks per lane (2 KB per warp) are issued before
// any is used, so a warp keeps 2 KB of weights in flight; with up to 8 CTAs of 256
// threads per SM that is up to 128 KB per SM, well above bandwidth x latency (~4.8 TB/s x
// ~1 us / 132 SMs = 36 KB on H200, ~10 KB on SM120). Split-K exists for small n: kv_a
// (576 features) alone would launch 576 warps, too few to pull the bandwidth.
// Large-m (prefill) shapes re-read the weights m/8 times; the tiled mma.sync kernel
// (linear_bf16_tiled.cu) serves them.
#include "common/device_utils.cuh"
#include "rackserve/kernels/gemm_params.h"

namespace rackserve::kernels {

namespace {

constexpr int kTokensPerTile = 8;
constexpr int kWarpsPerBlock = 8;
constexpr int kChunk = 8;                      // bf16 per 16-byte load
constexpr int kChunksInFlight = 4;             // per lane, issued before use
constexpr int kWarpStride = 32 * kChunk;       // K elements a warp covers per chunk step

__device__ __forceinline__ uint4 load_streaming(const __nv_bfloat16* source) {
  return __ldcs(reinterpret_cast<const uint4*>(source));  // weights are read once: evict first
}

__device__ __forceinline__ void fma_chunk(const uint4& w_raw, const __nv_bfloat16* x, float& accumulator) {
  float w[8], v[8];
  const __nv_bfloat162* pairs = reinterpret_cast<const __nv_bfloat162*>(&w_raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 value = __bfloat1622float2(pairs[i]);
    w[2 * i] = value.x;
    w[2 * i + 1] = value.y;
  }
  load_bf16x8(x, v);
#pragma unroll
  for (int i = 0; i < 8; ++i) accumulator = fmaf(w[i], v[i], accumulator);
}

template <int kSplit>
__global__ void __launch_bounds__(kWarpsPerBlock * 32) linear_bf16_small_m_kernel(LinearBf16Params p) {
  wait_for_prior_kernel();
  constexpr int kRowsPerBlock = kWarpsPerBlock / kSplit;
  __shared__ float partials[kWarpsPerBlock][kTokensPerTile];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int part = warp % kSplit;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + warp / kSplit;
  const int64_t m_begin = static_cast<int64_t>(blockIdx.y) * kTokensPerTile;
  const int tokens = static_cast<int>(p.m - m_begin < kTokensPerTile ? p.m - m_begin : kTokensPerTile);
  float accumulator[kTokensPerTile] = {};
  if (n < p.n) {
    // This part's K range, in whole warp strides.
    const int64_t strides = (p.k + kWarpStride - 1) / kWarpStride;
    const int64_t per_part = (strides + kSplit - 1) / kSplit;
    const int64_t k_begin = part * per_part * kWarpStride;
    const int64_t k_end = k_begin + per_part * kWarpStride < p.k ? k_begin + per_part * kWarpStride : p.k;
    const __nv_bfloat16* weight_row = static_cast<const __nv_bfloat16*>(p.weight) + n * p.k;
    const __nv_bfloat16* x = static_cast<const __nv_bfloat16*>(p.x) + m_begin * p.k;
    for (int64_t k0 = k_begin + lane * kChunk; k0 < k_end; k0 += kChunksInFlight * kWarpStride) {
      uint4 w[kChunksInFlight];
#pragma unroll
      for (int u = 0; u < kChunksInFlight; ++u) {
        const int64_t k = k0 + u * kWarpStride;
        w[u] = k < k_end ? load_streaming(weight_row + k) : make_uint4(0, 0, 0, 0);
      }
#pragma unroll
      for (int u = 0; u < kChunksInFlight; ++u) {
        const int64_t k = k0 + u * kWarpStride;
        if (k >= k_end) break;
#pragma unroll
        for (int t = 0; t < kTokensPerTile; ++t)
          if (t < tokens) fma_chunk(w[u], x + t * p.k + k, accumulator[t]);
      }
    }
  }
#pragma unroll
  for (int t = 0; t < kTokensPerTile; ++t) accumulator[t] = warp_sum(accumulator[t]);
  if constexpr (kSplit == 1) {
    if (lane == 0 && n < p.n)
      for (int t = 0; t < tokens; ++t) store_element(p.y, p.y_type, (m_begin + t) * p.n + n, accumulator[t]);
  } else {
    if (lane == 0)
      for (int t = 0; t < kTokensPerTile; ++t) partials[warp][t] = accumulator[t];
    __syncthreads();
    if (part == 0 && lane < tokens && n < p.n) {
      float sum = 0.0f;
#pragma unroll
      for (int s = 0; s < kSplit; ++s) sum += partials[warp + s][lane];
      store_element(p.y, p.y_type, (m_begin + lane) * p.n + n, sum);
    }
  }
}

template <int kSplit>
void launch(const LinearBf16Params& p, int64_t tiles, cudaStream_t stream) {
  constexpr int kRowsPerBlock = kWarpsPerBlock / kSplit;
  dim3 grid(static_cast<unsigned>((p.n + kRowsPerBlock - 1) / kRowsPerBlock), static_cast<unsigned>(tiles));
  linear_bf16_small_m_kernel<kSplit><<<grid, kWarpsPerBlock * 32, 0, stream>>>(p);
}

}  // namespace

int plan_linear_small_m_split(int64_t n, int64_t k) {
  const int64_t strides = (k + kWarpStride - 1) / kWarpStride;
  int split = 1;
  // Doubling pays while the launch stays small (<= 4096 warps: kv_a 576 -> 4, q_a 1536 -> 2)
  // or each part keeps >= 7168 of K within 16384 warps (dense gate_up/8 -> 2, o_proj -> 2..4),
  // and every part keeps a full round of chunks in flight. Measured on H200 at m = 1
  // (bench/results/2026-12-02-h200-kernel-roofline.md, the forced-split table); larger n or
  // shorter K lost with splitting (q_b, o/8, down/8).
  for (;;) {
    const int next = split * 2;
    const bool small_launch = n * next <= 4096;
    const bool long_parts = k / split >= 7168 && n * split < 16384;
    if (next > kWarpsPerBlock || !(small_launch || long_parts) || strides / next < kChunksInFlight) break;
    split = next;
  }
  return split;
}

int launch_linear_bf16_small_m(const LinearBf16Params& p, Stream stream, int split) {
  if (p.m < 0 || p.n <= 0 || p.k <= 0 || p.k % 8 != 0 || !p.weight || (p.m > 0 && (!p.x || !p.y)) ||
      !aligned16(p.x) || !aligned16(p.weight) || p.segment_rows != 0)
    return cudaErrorInvalidValue;
  if (split == 0) split = plan_linear_small_m_split(p.n, p.k);
  if (split != 1 && split != 2 && split != 4 && split != 8) return cudaErrorInvalidValue;
  if (p.m == 0) return cudaSuccess;
  const int64_t tiles = (p.m + kTokensPerTile - 1) / kTokensPerTile;
  if (tiles > 65535) return cudaErrorInvalidValue;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  switch (split) {
    case 1: launch<1>(p, tiles, s); break;
    case 2: launch<2>(p, tiles, s); break;
    case 4: launch<4>(p, tiles, s); break;
    default: launch<8>(p, tiles, s); break;
  }
  return launch_status();
}

}  // namespace rackserve::kernels
