// Dense GEMM y = x W^T for BF16 weights (kernels/gemm/).
#pragma once

#include "rackserve/kernels/common.h"

namespace rackserve::kernels {

struct LinearBf16Params {
  const void* x;        // [m, k] bf16, row-major
  const void* weight;   // [n, k] bf16, row-major (one output feature per row)
  void* y;              // [m, n] y_type
  ElementType y_type;
  int64_t m, n, k;      // k a multiple of 8
};
// Memory-bound design for small m (decode): every weight row is read once per group of
// 8 tokens with 16-byte loads; float32 accumulation. `split` warps share one output
// feature's K range (1, 2, 4 or 8; 0: plan_linear_small_m_split). Benchmarks force it.
int launch_linear_bf16_small_m(const LinearBf16Params& params, Stream stream, int split = 0);
// Split-K for n output features of width k: 1 unless n alone cannot fill the GPU.
int plan_linear_small_m_split(int64_t n, int64_t k);
// Tiled tensor-core design for large m (prefill): 128x128 tiles of y, a 4-stage cp.async
// pipeline within the SM120 99 KB shared-memory budget, mma.sync BF16, float32 accumulation.
// Any m, n; x and weight 16-byte aligned. Returns cudaErrorInvalidConfiguration (and says
// why on stderr) on a device whose shared memory per block is smaller than the tile needs.
int launch_linear_bf16_tiled(const LinearBf16Params& params, Stream stream);

}  // namespace rackserve::kernels
