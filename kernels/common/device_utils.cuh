// Small device helpers shared by the kernels: reductions, bf16 vector loads, and the
// launcher status convention.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "rackserve/kernels/common.h"

namespace rackserve::kernels {

__device__ __forceinline__ float warp_sum(float value) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}

__device__ __forceinline__ float warp_max(float value) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) value = fmaxf(value, __shfl_xor_sync(0xffffffffu, value, offset));
  return value;
}

// Sum over the block; every thread gets the result. `scratch` holds >= 32 floats.
__device__ __forceinline__ float block_sum(float value, float* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = (blockDim.x + 31) / 32;
  value = warp_sum(value);
  __syncthreads();
  if (lane == 0) scratch[warp] = value;
  __syncthreads();
  value = lane < warps ? scratch[lane] : 0.0f;
  return warp_sum(value);
}

// Maximum over the block; every thread gets the result. `scratch` holds >= 32 floats.
__device__ __forceinline__ float block_max(float value, float* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = (blockDim.x + 31) / 32;
  value = warp_max(value);
  __syncthreads();
  if (lane == 0) scratch[warp] = value;
  __syncthreads();
  value = lane < warps ? scratch[lane] : -INFINITY;
  return warp_max(value);
}

// Eight consecutive bf16 values (16 bytes, 16-byte aligned) as floats.
__device__ __forceinline__ void load_bf16x8(const __nv_bfloat16* source, float (&out)[8]) {
  uint4 raw = *reinterpret_cast<const uint4*>(source);
  const __nv_bfloat162* pairs = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    float2 value = __bfloat1622float2(pairs[i]);
    out[2 * i] = value.x;
    out[2 * i + 1] = value.y;
  }
}

__device__ __forceinline__ float load_element(const void* data, ElementType type, int64_t index) {
  return type == ElementType::F32 ? static_cast<const float*>(data)[index]
                                  : __bfloat162float(static_cast<const __nv_bfloat16*>(data)[index]);
}

__device__ __forceinline__ void store_element(void* data, ElementType type, int64_t index, float value) {
  if (type == ElementType::F32)
    static_cast<float*>(data)[index] = value;
  else
    static_cast<__nv_bfloat16*>(data)[index] = __float2bfloat16(value);
}

// Programmatic dependent launch (sm_90+): a kernel launched with
// cudaLaunchAttributeProgrammaticStreamSerialization may start while the previous kernel on
// its stream is still running; this waits until that kernel has completed and its writes are
// visible. Everything before it may read only what no earlier kernel writes (weights).
// Then it lets the next such kernel launch: once every CTA of this grid has passed here, the
// next kernel's CTAs may take free SMs and run up to their own wait (e.g. fill weight rings)
// while this grid finishes. Safe because that wait still waits for this grid's completion
// and memory, and triggering only after one's own wait keeps at most two grids in flight.
// Both are no-ops for kernels launched the usual way.
__device__ __forceinline__ void wait_for_prior_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// sm_count when > 0, else the current device's SM count (1 when it cannot be read): what the
// launch planners take when the caller does not know the device.
inline int resolve_sm_count(int sm_count) {
  if (sm_count > 0) return sm_count;
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&sm_count, cudaDevAttrMultiProcessorCount, device) != cudaSuccess || sm_count <= 0)
    return 1;
  return sm_count;
}

inline bool aligned16(const void* pointer) { return (reinterpret_cast<uintptr_t>(pointer) & 15u) == 0; }

inline int launch_status() { return static_cast<int>(cudaGetLastError()); }

inline unsigned grid_blocks(int64_t work, int64_t per_block, int64_t limit = 65535) {
  int64_t blocks = (work + per_block - 1) / per_block;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > limit ? limit : blocks));
}

}  // namespace rackserve::kernels
