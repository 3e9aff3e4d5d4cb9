// SiLU-and-mul of one element, rounded to bf16: shared by the plain kernel (elementwise.cu) and
// the one fused with e4m3 quantization (silu_mul_fp8.cu), so the two give the same bits.
#pragma once

#include <cuda_bf16.h>

namespace rackserve::kernels {

__device__ __forceinline__ __nv_bfloat16 silu_mul_value(__nv_bfloat16 gate_bf16, __nv_bfloat16 up_bf16) {
  const float gate = __bfloat162float(gate_bf16), up = __bfloat162float(up_bf16);
  return __float2bfloat16(gate / (1.0f + expf(-gate)) * up);
}

}  // namespace rackserve::kernels
