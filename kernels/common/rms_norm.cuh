// RMSNorm's row reduction and output rounding, shared by the plain kernel (elementwise.cu) and
// the one fused with e4m3 quantization (rms_norm_fp8.cu), so the two give the same bits: one
// CTA of kRmsNormThreads per row, each thread's squares summed in column order, then
// block_sum over the CTA.
//
// Two ways to walk a row: rows up to kRmsNormVectorColumns x kRmsNormThreads wide, a multiple
// of kRmsNormVectorColumns, with 16-byte aligned operands (every target model's hidden size)
// take the vector path (RmsNormRow: thread t holds columns 8t..8t+7 in registers, 16-byte loads
// and stores, every load issued before the first store, one memory round trip); other rows
// loop over their columns twice (rms_norm_inverse_rms, rms_norm_value; thread i owns columns
// i, i + blockDim.x, ...), each iteration's loads waiting for the previous iteration's residual
// store, which might alias them (10-14 us per 7168-wide row on the H200 at batch 1,
// 2026-12-05). Both kernels choose the path by the same rule (rms_norm_vector_path).
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "common/device_utils.cuh"
#include "rackserve/kernels/elementwise_params.h"

namespace rackserve::kernels {

// One block per row: at decode batch sizes the rows are few, so the block is wide to keep
// enough loads in flight on its one SM (a 7168-wide row is 7 elements per thread). The
// reduction order depends on it: both kernels must launch with this width.
constexpr int kRmsNormThreads = 1024;
constexpr int kRmsNormVectorColumns = 8;

// Whether rows of `p` take the vector path (RmsNormRow); `output` is the bf16 output.
inline bool rms_norm_vector_path(const RmsNormParams& p) {
  auto aligned = [](const void* pointer) { return reinterpret_cast<uintptr_t>(pointer) % 16 == 0; };
  return p.width % kRmsNormVectorColumns == 0 && p.width <= int64_t{kRmsNormVectorColumns} * kRmsNormThreads &&
         aligned(p.x) && aligned(p.residual) && aligned(p.weight) && aligned(p.output);
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
  return __float2bfloat16(__bfloat162float(weight[c]) * (value * inverse_rms));
}

// The vector path's row (rms_norm_vector_path): thread t holds columns 8t..8t+7 (threads past
// the row hold zeros). load() issues every load (x, residual, weight) before it stores the
// residual sums, sums the squares in column order, then over the CTA; value(j) is column 8t + j.
// Every thread of the CTA must call load.
struct RmsNormRow {
  float values[kRmsNormVectorColumns];  // x, or x + residual (what the residual holds after)
  float weights[kRmsNormVectorColumns];
  float inverse_rms;
  bool inside;  // this thread's columns are in the row

  __device__ __forceinline__ void load(const RmsNormParams& p, int64_t row, float* scratch) {
    const int64_t first = static_cast<int64_t>(threadIdx.x) * kRmsNormVectorColumns;
    inside = first < p.width;
    float residual_values[kRmsNormVectorColumns] = {};
    float* residual = p.residual ? p.residual + row * p.width + first : nullptr;
#pragma unroll
    for (int j = 0; j < kRmsNormVectorColumns; ++j) values[j] = weights[j] = 0.0f;
    if (inside) {
      // With mean_squares the residual already holds the sum (rms_norm_value reads it alone).
      if (!(p.mean_squares && residual)) load_row_values(p.x, p.x_type, row * p.width + first, values);
      if (residual) load_f32x8(residual, residual_values);
      load_bf16x8(static_cast<const __nv_bfloat16*>(p.weight) + first, weights);
    }
    float sum_squares = 0.0f;
#pragma unroll
    for (int j = 0; j < kRmsNormVectorColumns; ++j) {
      if (residual) values[j] = p.mean_squares ? residual_values[j] : values[j] + residual_values[j];
      sum_squares += values[j] * values[j];
    }
    if (inside && residual && !p.mean_squares) store_f32x8(residual, values);
    inverse_rms = p.mean_squares ? rsqrtf(p.mean_squares[row] + p.eps)
                                 : rsqrtf(block_sum(sum_squares, scratch) / static_cast<float>(p.width) + p.eps);
  }

  __device__ __forceinline__ __nv_bfloat16 value(int j) const {
    return __float2bfloat16(weights[j] * (values[j] * inverse_rms));
  }

  // The 8 normalised values as bf16, stored at `output` (16-byte aligned) when inside.
  __device__ __forceinline__ void store(__nv_bfloat16* output, __nv_bfloat16 (&normed)[kRmsNormVectorColumns]) const {
#pragma unroll
    for (int j = 0; j < kRmsNormVectorColumns; ++j) normed[j] = value(j);
    uint4 packed;
    __nv_bfloat162* pairs = reinterpret_cast<__nv_bfloat162*>(&packed);
#pragma unroll
    for (int j = 0; j < kRmsNormVectorColumns / 2; ++j) pairs[j] = __halves2bfloat162(normed[2 * j], normed[2 * j + 1]);
    if (inside) *reinterpret_cast<uint4*>(output + threadIdx.x * kRmsNormVectorColumns) = packed;
  }

 private:
  __device__ __forceinline__ static void load_f32x8(const float* source, float (&out)[kRmsNormVectorColumns]) {
    const float4 low = reinterpret_cast<const float4*>(source)[0], high = reinterpret_cast<const float4*>(source)[1];
    out[0] = low.x, out[1] = low.y, out[2] = low.z, out[3] = low.w;
    out[4] = high.x, out[5] = high.y, out[6] = high.z, out[7] = high.w;
  }
  __device__ __forceinline__ static void store_f32x8(float* target, const float (&in)[kRmsNormVectorColumns]) {
    reinterpret_cast<float4*>(target)[0] = make_float4(in[0], in[1], in[2], in[3]);
    reinterpret_cast<float4*>(target)[1] = make_float4(in[4], in[5], in[6], in[7]);
  }
  __device__ __forceinline__ static void load_row_values(const void* x, ElementType type, int64_t index,
                                                         float (&out)[kRmsNormVectorColumns]) {
    if (type == ElementType::F32)
      load_f32x8(static_cast<const float*>(x) + index, out);
    else
      load_bf16x8(static_cast<const __nv_bfloat16*>(x) + index, out);
  }
};

}  // namespace rackserve::kernels
