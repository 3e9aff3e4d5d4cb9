// The e4m3 math of the FP8 small-M policies (the dense linear's in linear_fp8_small_m.cu, the
// experts' in moe/moe_fp8_small_m.cu): what one K block adds to each token tile's accumulators.
#pragma once

#include "gemm/linear_fp8.cuh"
#include "gemm/small_m_stream.cuh"

namespace rackserve::kernels::small_m {

// Per token tile below `tiles`, the block's 4 MMAs, each on a zero accumulator and added in f32 (linear_fp8.cuh
// says why), give the f32 partial dot of this 128-wide block. Block: it is added times
// x_scale_of(u) (token u's scale for the block; u may pass the last token, the callee clamps)
// times weight_scale[0] (row g) or [1] (row g + 8). Channel: added as is (one dot over all of
// k, scaled in the epilogue).
template <bool kBlockScaling, int T, class XScaleOf>
__device__ __forceinline__ void accumulate_e4m3(float (&accumulator)[T][4], const uint4 (&weights)[2][2],
                                                const uint4 (&x)[T][2], int tiles, const float (&weight_scale)[2],
                                                const XScaleOf& x_scale_of) {
#pragma unroll
  for (int tile = 0; tile < T; ++tile) {
    if (tile >= tiles) break;  // the CTA's tokens end before this tile
    float partial[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      uint32_t a[4], b[2];
      fragments(j, weights, x[tile], a, b);
      mma_e4m3_add(partial, a, b);
    }
    if constexpr (kBlockScaling) {
      // c0,c1: (row g, tokens 2t, 2t + 1); c2,c3: row g + 8.
      const int token = tile * 8 + 2 * static_cast<int>(threadIdx.x % 4);
      const float x_scale[2] = {x_scale_of(token), x_scale_of(token + 1)};
#pragma unroll
      for (int c = 0; c < 4; ++c)
        accumulator[tile][c] = fmaf(partial[c], x_scale[c & 1] * weight_scale[c / 2], accumulator[tile][c]);
    } else {
#pragma unroll
      for (int c = 0; c < 4; ++c) accumulator[tile][c] += partial[c];
    }
  }
}

}  // namespace rackserve::kernels::small_m
