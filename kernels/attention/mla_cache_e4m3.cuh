// The FP8 form of the paged MLA latent cache (MlaCacheType::E4M3 in mla_params.h), shared by
// the cache write (mla_rope_cache.cu) and both attention kernels: OCP e4m3fn bytes and one
// f32 scale per entry. Rounding matches the CPU oracle (cpu/fp8_linear.h): IEEE division,
// round to nearest even, saturation to ±448; NaN stays NaN.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>

#include "common/mma_utils.cuh"
#include "rackserve/kernels/mla_params.h"

namespace rackserve::kernels {

constexpr float kE4m3Max = 448.0f;

// The scale of an entry whose largest magnitude is `amax`.
__device__ __forceinline__ float e4m3_entry_scale(float amax) {
  return fmaxf(__fdiv_rn(amax, kE4m3Max), kMlaCacheMinScale);
}

__device__ __forceinline__ uint8_t encode_e4m3(float x, float scale) {
  return static_cast<uint8_t>(__nv_cvt_float_to_fp8(__fdiv_rn(x, scale), __NV_SATFINITE, __NV_E4M3));
}

// One e4m3 byte as f32 (exact: every e4m3 value is an f16 value).
__device__ __forceinline__ float decode_e4m3(uint8_t code) {
  return __half2float(__half(__nv_cvt_fp8_to_halfraw(code, __NV_E4M3)));
}

// Two e4m3 bytes (the low 16 bits of `pair`, the first byte in .x) as f32.
__device__ __forceinline__ float2 decode_e4m3x2(uint32_t pair) {
  const __nv_fp8x2_storage_t codes = static_cast<__nv_fp8x2_storage_t>(pair & 0xffffu);
  return __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2(codes, __NV_E4M3)));
}

// Four e4m3 bytes (the first in the low byte) times `scale`, each product rounded to bf16:
// two bf16x2 registers in column order.
__device__ __forceinline__ uint2 dequantize_e4m3x4_to_bf16(uint32_t codes, float scale) {
  const float2 low = decode_e4m3x2(codes), high = decode_e4m3x2(codes >> 16);
  return make_uint2(pack_bf16x2(low.x * scale, low.y * scale), pack_bf16x2(high.x * scale, high.y * scale));
}

}  // namespace rackserve::kernels
