// RMSNorm's row reduction and output rounding, shared by the plain kernel (elementwise.cu) and
// the one fused with e4m3 quantization (rms_norm_fp8.cu), so the two give the same bits: one
// CTA of kRmsNormThreads per row, thread i owns columns i, i + blockDim.x, ... in both passes,
// squares summed in that order, then block_sum over the CTA.
#pragma once

#include <cuda_bf16.h>

#include "common/device_utils.cuh"
#include "rackserve/kernels/elementwise_params.h"

namespace rackserve::kernels {

// One block per row: at decode batch sizes the rows are few, so the block is wide to keep
// enough loads in flight on its one SM (a 7168-wide row is 7 elements per thread). The
// reduction order depends on it: both kernels must launch with this width.
constexpr int kRmsNormThreads = 1024;

// 1 / sqrt(mean(x^2) + eps) of `row` (of the given mean with p.mean_squares); with p.residual, first residual += x for the row's columns
// this thread owns (rms_norm_value rereads them). `scratch` holds >= 32 floats; every thread
// of the CTA must call it.
__device__ __forceinline__ float rms_norm_inverse_rms(const RmsNormParams& p, int64_t row, float* scratch) {
  if (p.mean_squares) return rsqrtf(p.mean_squares[row] + p.eps);
  float sum_squares = 0.0f;
  for (int64_t c = threadIdx.x; c < p.width; c += blockDim.x) {
    float value = load_element(p.x, p.x_type, row * p.width + c);
    if (p.residual) {
      value += p.residual[row * p.width + c];
      p.residual[row * p.width + c] = value;
    }
    sum_squares += value * value;
  }
  return rsqrtf(block_sum(sum_squares, scratch) / static_cast<float>(p.width) + p.eps);
}

// The normalised bf16 value of column c, called by the thread that owns c (it rereads only the
// residual it wrote itself, so no barrier is needed).
__device__ __forceinline__ __nv_bfloat16 rms_norm_value(const RmsNormParams& p, int64_t row, int64_t c,
                                                        float inverse_rms) {
  const __nv_bfloat16* weight = static_cast<const __nv_bfloat16*>(p.weight);
  const float value = p.residual ? p.residual[row * p.width + c] : load_element(p.x, p.x_type, row * p.width + c);
  return __float2bfloat16(__bfloat162float(weight[c]) * (value * inverse_rms));
}

}  // namespace rackserve::kernels
