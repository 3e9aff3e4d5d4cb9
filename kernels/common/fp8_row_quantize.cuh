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

// Produces and quantizes columns [begin, begin + count) of `row` (a row of `width`): produce(c,
// j) returns column c's bf16 value (and may store it elsewhere too), c = begin + threadIdx.x + j
// * blockDim.x. With kPasses > 0 (count <= kPasses x blockDim.x) the passes are unrolled, so j
// is a compile-time index (a producer's registers); with 0 they loop. Channel scaling needs the
// whole row (begin 0, count width); Block scaling takes any span of whole groups. Every thread
// of the CTA must call it; blockDim.x a multiple of 32; shared holds fp8_row_shared_bytes(count).
template <bool kBlockScaling, int kPasses = 0, typename Produce>
__device__ __forceinline__ void produce_fp8_row(const Fp8RowsOutput& out, int64_t row, int64_t width, int64_t begin,
                                                int64_t count, unsigned char* shared, float* scratch,
                                                Produce produce) {
  __nv_bfloat16* values = reinterpret_cast<__nv_bfloat16*>(shared);
  float* slot_amax = reinterpret_cast<float*>(shared + fp8_row_values_bytes(count));  // [count / 32], Block
  float* group_scales = slot_amax + count / 32;                                      // [count / group], Block
  float amax = 0.0f;
  // Block: the span is whole groups of whole warps, so a warp is either all inside or all past
  // it and warp_max sees all 32 lanes. c counts from the span's first column.
  auto take = [&](int64_t c, int j) {
    const __nv_bfloat16 value = produce(begin + c, j);
    values[c] = value;
    const float magnitude = fabsf(__bfloat162float(value));
    if constexpr (kBlockScaling) {
      const float slot_max = warp_max(magnitude);
      if (threadIdx.x % 32 == 0) slot_amax[c / 32] = slot_max;
    } else {
      amax = fmaxf(amax, magnitude);
    }
  };
  if constexpr (kPasses > 0) {
#pragma unroll
    for (int j = 0; j < kPasses; ++j) {
      const int64_t c = threadIdx.x + static_cast<int64_t>(j) * blockDim.x;
      if (c < count) take(c, j);
    }
  } else {
    int j = 0;
    for (int64_t c = threadIdx.x; c < count; c += blockDim.x) take(c, j++);
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
