// The half of a fused FP8 producer (rms_norm_fp8.cu, silu_mul_fp8.cu) that turns the columns it
// produces into e4m3 (Fp8RowsOutput): one CTA per row, or for Block scaling per group-aligned
// span of a row (groups are independent); thread i produces columns begin + i, begin + i +
// blockDim.x, ... and keeps their bf16 values in shared memory while the CTA finds each group's
// amax, then quantizes them with the contract's math (e4m3_quantize.cuh). Block groups are
// whole warps' column slots (a warp's 32 columns of one pass lie in one group when the group
// is a multiple of 32), so a group's amax is the max of its warps' maxima.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "common/device_utils.cuh"
#include "common/e4m3_quantize.cuh"
#include "common/shared_memory_budget.cuh"
#include "rackserve/kernels/fp8_activation_params.h"

namespace rackserve::kernels {

// Dynamic shared memory of a span of `width` columns: their bf16 values (padded to 16 bytes),
// then for Block the maxima of each warp's 32-column slot and the scale of each group.
constexpr int64_t fp8_row_values_bytes(int64_t width) { return (width * 2 + 15) / 16 * 16; }
constexpr int64_t fp8_row_shared_bytes(int64_t width, bool block, int64_t group) {
  return fp8_row_values_bytes(width) + (block ? (width / 32 + width / group) * 4 : 0);
}
static_assert(fp8_row_shared_bytes(kFp8FusedMaxWidth, true, 32) <= kSharedMemoryBudgetBytes,
              "the widest fused FP8 row must fit SM120's shared memory");

// Whether `out` can take rows of `width` (launchers' validation).
inline bool fp8_rows_output_valid(const Fp8RowsOutput& out, int64_t rows, int64_t width) {
  const bool block = out.layout == Fp8ScaleLayout::Block;
  if (!block && out.layout != Fp8ScaleLayout::Channel) return false;
  if (width <= 0 || width > kFp8FusedMaxWidth) return false;
  if (block && (out.group <= 0 || out.group % 32 != 0 || width % out.group != 0)) return false;
  return rows == 0 || (out.q && out.scales);
}

// Whether the vector path (quantize_fp8_vector) takes `out` for rows of `width`: a Block group
// is a power of two of at most 256 columns (32 lanes of 8), and 8-byte code stores are aligned.
inline bool fp8_vector_path_fits(const Fp8RowsOutput& out, int64_t width) {
  const bool group_fits = out.layout != Fp8ScaleLayout::Block || (out.group <= 256 && (out.group & (out.group - 1)) == 0);
  return group_fits && width % 8 == 0 && reinterpret_cast<uintptr_t>(out.q) % 8 == 0;
}

// The vector path of a fused producer (rms_norm.cuh's RmsNormRow): thread t holds the bf16
// values of columns 8t..8t+7 of `row` (`inside`: they are in the row; threads past it hold
// zeros), and quantizes them with the contract's math: a Block group is group / 8 consecutive
// lanes whose amax is a shuffle reduction, Channel takes the CTA's amax. One 8-byte store of
// codes per thread. The maxima are exact, so this gives produce_fp8_row's bits. Every thread of
// the CTA must call it (whole warps); fp8_vector_path_fits(out, width).
template <bool kBlockScaling>
__device__ __forceinline__ void quantize_fp8_vector(const Fp8RowsOutput& out, int64_t row, int64_t width, bool inside,
                                                    const __nv_bfloat16 (&values)[8], float* scratch) {
  float value[8], amax = 0.0f;
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    value[j] = __bfloat162float(values[j]);
    amax = fmaxf(amax, fabsf(value[j]));
  }
  const int lanes = kBlockScaling ? static_cast<int>(out.group / 8) : 0;
  float scale;
  if constexpr (kBlockScaling) {
    for (int offset = 1; offset < lanes; offset <<= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, offset));
    scale = e4m3::scale_of(amax, e4m3::kBlockMinScale);
  } else {
    scale = e4m3::scale_of(block_max(amax, scratch), e4m3::kTokenMinScale);
  }
  if (!inside) return;
  const int64_t first = static_cast<int64_t>(threadIdx.x) * 8;
  *reinterpret_cast<uint2*>(static_cast<uint8_t*>(out.q) + row * width + first) =
      make_uint2(e4m3::encode4(value, scale), e4m3::encode4(value + 4, scale));
  if constexpr (kBlockScaling) {
    if (threadIdx.x % lanes == 0) out.scales[row * (width / out.group) + first / out.group] = scale;
  } else {
    if (threadIdx.x == 0) out.scales[row] = scale;
  }
}

// Produces and quantizes columns [begin, begin + count) of `row` (a row of `width`): produce(c)
// returns column c's bf16 value (and may store it elsewhere too). Channel scaling needs the
// whole row (begin 0, count width); Block scaling takes any span of whole groups. Every thread
// of the CTA must call it; blockDim.x a multiple of 32; shared holds fp8_row_shared_bytes(count).
template <bool kBlockScaling, typename Produce>
__device__ __forceinline__ void produce_fp8_row(const Fp8RowsOutput& out, int64_t row, int64_t width, int64_t begin,
                                                int64_t count, unsigned char* shared, float* scratch,
                                                Produce produce) {
  __nv_bfloat16* values = reinterpret_cast<__nv_bfloat16*>(shared);
  float* slot_amax = reinterpret_cast<float*>(shared + fp8_row_values_bytes(count));  // [count / 32], Block
  float* group_scales = slot_amax + count / 32;                                      // [count / group], Block
  float amax = 0.0f;
  // Block: the span is whole groups of whole warps, so a warp is either all inside or all past
  // it and warp_max sees all 32 lanes. c counts from the span's first column.
  for (int64_t c = threadIdx.x; c < count; c += blockDim.x) {
    const __nv_bfloat16 value = produce(begin + c);
    values[c] = value;
    const float magnitude = fabsf(__bfloat162float(value));
    if constexpr (kBlockScaling) {
      const float slot_max = warp_max(magnitude);
      if (threadIdx.x % 32 == 0) slot_amax[c / 32] = slot_max;
    } else {
      amax = fmaxf(amax, magnitude);
    }
  }
  uint8_t* q = static_cast<uint8_t*>(out.q) + row * width + begin;
  if constexpr (kBlockScaling) {
    __syncthreads();
    const int64_t groups = count / out.group, slots = out.group / 32;
    float* scales = out.scales + row * (width / out.group) + begin / out.group;
    for (int64_t g = threadIdx.x; g < groups; g += blockDim.x) {
      float group_amax = 0.0f;
      for (int64_t s = 0; s < slots; ++s) group_amax = fmaxf(group_amax, slot_amax[g * slots + s]);
      const float scale = e4m3::scale_of(group_amax, e4m3::kBlockMinScale);
      group_scales[g] = scale;
      scales[g] = scale;
    }
    __syncthreads();
    // Each thread quantizes the columns it produced itself.
    for (int64_t c = threadIdx.x; c < count; c += blockDim.x)
      q[c] = e4m3::encode(__bfloat162float(values[c]), group_scales[c / out.group]);
  } else {
    const float scale = e4m3::scale_of(block_max(amax, scratch), e4m3::kTokenMinScale);
    for (int64_t c = threadIdx.x; c < count; c += blockDim.x) q[c] = e4m3::encode(__bfloat162float(values[c]), scale);
    if (threadIdx.x == 0) out.scales[row] = scale;
  }
}

}  // namespace rackserve::kernels
