// SiLU-and-mul fused with the e4m3 quantization of its output (fp8_activation_params.h): each
// element rounded to bf16 as the plain kernel rounds it (silu_mul.cuh), then quantized by
// fp8_row_quantize.cuh; the bf16 row never goes to memory. One CTA per row.
#include <cuda_bf16.h>

#include "common/device_utils.cuh"
#include "common/fp8_row_quantize.cuh"
#include "common/shared_memory_budget.cuh"
#include "common/silu_mul.cuh"
#include "rackserve/kernels/fp8_activation_params.h"

namespace rackserve::kernels {

namespace {

// Wide for the same reason as RMSNorm's CTA: few rows at decode, one SM each.
constexpr int kThreads = 1024;

template <bool kBlockScaling>
__global__ void __launch_bounds__(kThreads) silu_mul_fp8_kernel(SiluMulFp8Params p) {
  extern __shared__ __align__(16) unsigned char shared[];
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const __nv_bfloat16* gate = static_cast<const __nv_bfloat16*>(p.gate_up) + row * 2 * p.width;
  const __nv_bfloat16* up = gate + p.width;
  produce_fp8_row<kBlockScaling>(p.fp8, row, p.width, shared, scratch,
                                 [&](int64_t c) { return silu_mul_value(gate[c], up[c]); });
}

}  // namespace

int launch_silu_mul_fp8(const SiluMulFp8Params& p, Stream stream) {
  if (p.rows < 0 || p.rows > INT32_MAX || !fp8_rows_output_valid(p.fp8, p.rows, p.width)) return cudaErrorInvalidValue;
  if (p.rows > 0 && !p.gate_up) return cudaErrorInvalidValue;
  if (p.rows == 0) return cudaSuccess;
  const bool block = p.fp8.layout == Fp8ScaleLayout::Block;
  auto kernel = block ? silu_mul_fp8_kernel<true> : silu_mul_fp8_kernel<false>;
  const int bytes = static_cast<int>(fp8_row_shared_bytes(p.width, block, p.fp8.group));
  if (int status = opt_in_dynamic_shared_memory(reinterpret_cast<const void*>(kernel), bytes, "silu_mul_fp8"))
    return status;
  kernel<<<static_cast<unsigned>(p.rows), kThreads, bytes, static_cast<cudaStream_t>(stream)>>>(p);
  return launch_status();
}

}  // namespace rackserve::kernels
