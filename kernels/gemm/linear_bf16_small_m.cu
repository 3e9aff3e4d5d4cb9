// y = x W^T for BF16 weights, designed for decode-sized m: one warp per output feature,
// each lane streaming 16-byte chunks of the weight row and applying them to a tile of up
// to 8 tokens, so every weight byte is read once per 8 tokens. float32 accumulation.
// Large-m (prefill) shapes re-read the weights m/8 times; a tiled mma.sync kernel
// replaces this path for them.
#include "common/device_utils.cuh"
#include "rackserve/kernels/gemm_params.h"

namespace rackserve::kernels {

namespace {

constexpr int kTokensPerTile = 8;
constexpr int kWarpsPerBlock = 8;

__global__ void __launch_bounds__(kWarpsPerBlock * 32) linear_bf16_small_m_kernel(LinearBf16Params p) {
  const int lane = threadIdx.x % 32;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  const int64_t m_begin = static_cast<int64_t>(blockIdx.y) * kTokensPerTile;
  if (n >= p.n) return;
  const int tokens = static_cast<int>(p.m - m_begin < kTokensPerTile ? p.m - m_begin : kTokensPerTile);
  const __nv_bfloat16* weight_row = static_cast<const __nv_bfloat16*>(p.weight) + n * p.k;
  const __nv_bfloat16* x = static_cast<const __nv_bfloat16*>(p.x) + m_begin * p.k;
  float accumulator[kTokensPerTile] = {};
#pragma unroll 4
  for (int64_t k = lane * 8; k < p.k; k += 32 * 8) {
    float w[8];
    load_bf16x8(weight_row + k, w);
#pragma unroll
    for (int t = 0; t < kTokensPerTile; ++t) {
      if (t < tokens) {
        float v[8];
        load_bf16x8(x + t * p.k + k, v);
#pragma unroll
        for (int i = 0; i < 8; ++i) accumulator[t] = fmaf(w[i], v[i], accumulator[t]);
      }
    }
  }
#pragma unroll
  for (int t = 0; t < kTokensPerTile; ++t) {
    float sum = warp_sum(accumulator[t]);
    if (lane == 0 && t < tokens) store_element(p.y, p.y_type, (m_begin + t) * p.n + n, sum);
  }
}

}  // namespace

int launch_linear_bf16_small_m(const LinearBf16Params& p, Stream stream) {
  if (p.m < 0 || p.n <= 0 || p.k <= 0 || p.k % 8 != 0 || !p.weight || (p.m > 0 && (!p.x || !p.y)) ||
      !aligned16(p.x) || !aligned16(p.weight))
    return cudaErrorInvalidValue;
  if (p.m == 0) return cudaSuccess;
  const int64_t tiles = (p.m + kTokensPerTile - 1) / kTokensPerTile;
  if (tiles > 65535) return cudaErrorInvalidValue;
  dim3 grid(static_cast<unsigned>((p.n + kWarpsPerBlock - 1) / kWarpsPerBlock), static_cast<unsigned>(tiles));
  linear_bf16_small_m_kernel<<<grid, kWarpsPerBlock * 32, 0, static_cast<cudaStream_t>(stream)>>>(p);
  return launch_status();
}

}  // namespace rackserve::kernels
