// The activation quantization of the W8A8 contract (src/backend/cpu/fp8_linear.h) in device
// code, shared by every kernel that writes e4m3 activations (gemm/fp8_quantize.cu, the fused
// producers common/rms_norm_fp8.cu and common/silu_mul_fp8.cu, moe/moe_fp8_activation.cu), so
// they all give the CPU oracle's bytes:
//   scale = max(amax / 448, min_scale),  code = e4m3(x / scale)
// with true IEEE divisions (never a reciprocal multiply), round to nearest even, saturating to ±448.
#pragma once

#include <cuda_fp8.h>

#include <cstdint>

namespace rackserve::kernels::e4m3 {

constexpr float kMax = 448.0f;
// The contract's floors (fp8_linear.h: kBlockMinScale, kTokenMinScale).
constexpr float kBlockMinScale = 1e-10f / kMax;          // per-group (Block) scales
constexpr float kTokenMinScale = 1.0f / (kMax * 512.0f);  // per-token (Channel) scales

__device__ __forceinline__ float scale_of(float amax, float min_scale) {
  return fmaxf(__fdiv_rn(amax, kMax), min_scale);
}

__device__ __forceinline__ uint8_t encode(float value, float scale) {
  return static_cast<uint8_t>(__nv_cvt_float_to_fp8(__fdiv_rn(value, scale), __NV_SATFINITE, __NV_E4M3));
}

// Four values as four codes packed little-endian (the first value in the low byte).
__device__ __forceinline__ uint32_t encode4(const float* values, float scale) {
  uint32_t packed = 0;
#pragma unroll
  for (int j = 0; j < 4; ++j) packed |= static_cast<uint32_t>(encode(values[j], scale)) << (8 * j);
  return packed;
}

}  // namespace rackserve::kernels::e4m3
