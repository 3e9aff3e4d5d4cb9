// RMSNorm's row reduction and output rounding, shared by the plain kernel (elementwise.cu) and
// the one fused with e4m3 quantization (rms_norm_fp8.cu), so the two give the same bits: one
// CTA of kRmsNormThreads per row, thread i owns columns i, i + blockDim.x, ... in both passes,
// squares summed in that order, then block_sum over the CTA.
//
// Two ways to walk a row, with the same bits: rows up to kRmsNormCachedColumns x
// kRmsNormThreads wide (every target model's hidden size) keep the thread's columns in
// registers (RmsNormRow: every load of the row is issued before its first store, one memory
// round trip); wider rows loop over their columns twice (rms_norm_inverse_rms, rms_norm_value),
// each iteration's loads waiting for the previous iteration's residual store, which might alias
// them (10-14 us per 7168-wide row on the H200 at batch 1, 2026-12-05).
#pragma once

#include <cuda_bf16.h>

#include "common/device_utils.cuh"
#include "rackserve/kernels/elementwise_params.h"

namespace rackserve::kernels {

// One block per row: at decode batch sizes the rows are few, so the block is wide to keep
// enough loads in flight on its one SM (a 7168-wide row is 7 elements per thread). The
// reduction order depends on it: both kernels must launch with this width.
constexpr int kRmsNormThreads = 1024;
constexpr int kRmsNormCachedColumns = 8;

// Whether a row of `width` takes the register path (RmsNormRow).
constexpr bool rms_norm_row_cached(int64_t width) { return width <= int64_t{kRmsNormCachedColumns} * kRmsNormThreads; }

// The normalised bf16 value of `value` (x, or x + residual) under `weight`.
__device__ __forceinline__ __nv_bfloat16 rms_norm_scaled(float value, __nv_bfloat16 weight, float inverse_rms) {
  return __float2bfloat16(__bfloat162float(weight) * (value * inverse_rms));
}

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
  return rms_norm_scaled(value, weight[c], inverse_rms);
}

// This thread's columns c = threadIdx.x + j * blockDim.x (j < kRmsNormCachedColumns, c <
// p.width) of one row, in registers: load() issues every load (x, residual, weight) before it
// stores the residual sums, and sums the squares in the loop version's order (the columns past
// the row add 0), so value(j) is rms_norm_value's bits. Every thread of the CTA must call load.
struct RmsNormRow {
  float values[kRmsNormCachedColumns];  // x, or x + residual (what the residual holds after)
  __nv_bfloat16 weights[kRmsNormCachedColumns];
  float inverse_rms;

  __device__ __forceinline__ void load(const RmsNormParams& p, int64_t row, float* scratch) {
    const __nv_bfloat16* weight = static_cast<const __nv_bfloat16*>(p.weight);
    float* residual = p.residual ? p.residual + row * p.width : nullptr;
    float residual_values[kRmsNormCachedColumns];
#pragma unroll
    for (int j = 0; j < kRmsNormCachedColumns; ++j) {
      const int64_t c = threadIdx.x + static_cast<int64_t>(j) * blockDim.x;
      const bool inside = c < p.width;
      // With mean_squares the residual already holds the sum (rms_norm_value reads it alone).
      values[j] = inside && !(p.mean_squares && residual) ? load_element(p.x, p.x_type, row * p.width + c) : 0.0f;
      residual_values[j] = inside && residual ? residual[c] : 0.0f;
      weights[j] = inside ? weight[c] : __float2bfloat16(0.0f);
    }
    float sum_squares = 0.0f;
#pragma unroll
    for (int j = 0; j < kRmsNormCachedColumns; ++j) {
      const int64_t c = threadIdx.x + static_cast<int64_t>(j) * blockDim.x;
      if (residual && p.mean_squares) {
        values[j] = residual_values[j];
      } else if (residual) {
        values[j] += residual_values[j];
        if (c < p.width) residual[c] = values[j];
      }
      sum_squares += values[j] * values[j];
    }
    inverse_rms = p.mean_squares ? rsqrtf(p.mean_squares[row] + p.eps)
                                 : rsqrtf(block_sum(sum_squares, scratch) / static_cast<float>(p.width) + p.eps);
  }

  __device__ __forceinline__ __nv_bfloat16 value(int j) const {
    return rms_norm_scaled(values[j], weights[j], inverse_rms);
  }
};

}  // namespace rackserve::kernels
