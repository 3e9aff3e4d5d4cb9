// Dynamic activation quantization for the W8A8 FP8 linear: bf16 [m, k] -> e4m3 [m, k] plus
// one f32 scale per group, with exactly the CPU oracle's rounding (fp8_linear.h, in device code
// common/e4m3_quantize.cuh), so both backends feed identical e4m3 bytes and scales to their products.
// A team of threads owns one group: a warp per 128-column block (Block), the whole CTA per
// token row (Channel). Two passes over the group (amax, then quantize); the second pass
// re-reads the group from L1. Memory-bound and small next to the GEMM (2 bytes in, 1 out).
#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include "common/device_utils.cuh"
#include "common/e4m3_quantize.cuh"
#include "rackserve/kernels/fp8_gemm_params.h"

namespace rackserve::kernels {

namespace {

constexpr int kThreads = 256;
constexpr int kElementsPerLoad = 4;  // 8 bytes of bf16 in, 4 bytes of e4m3 out

__device__ __forceinline__ void load_bf16x4(const __nv_bfloat16* source, float (&out)[4]) {
  const uint2 raw = *reinterpret_cast<const uint2*>(source);
  const float2 low = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.x));
  const float2 high = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.y));
  out[0] = low.x, out[1] = low.y, out[2] = high.x, out[3] = high.y;
}

// Grid: one team of kTeam threads per group; groups are numbered row-major over [m, k / group],
// so group i starts at element i * group.
template <int kTeam>
__global__ void __launch_bounds__(kThreads) fp8_quantize_kernel(Fp8QuantizeParams p, int64_t group,
                                                                int64_t group_count, float min_scale) {
  wait_for_prior_kernel();
  static_assert(kTeam == 32 || kTeam == kThreads, "a team is one warp or the whole CTA");
  __shared__ float scratch[32];
  const int member = threadIdx.x % kTeam;
  const int64_t index = static_cast<int64_t>(blockIdx.x) * (kThreads / kTeam) + threadIdx.x / kTeam;
  if (kTeam == 32 && index >= group_count) return;  // whole warps only: warp_max below needs all 32 lanes
  const __nv_bfloat16* x = static_cast<const __nv_bfloat16*>(p.x) + index * group;
  uint8_t* q = static_cast<uint8_t*>(p.q) + index * group;

  float amax = 0.0f;
  for (int64_t i = member * kElementsPerLoad; i < group; i += kTeam * kElementsPerLoad) {
    float v[4];
    load_bf16x4(x + i, v);
#pragma unroll
    for (int j = 0; j < 4; ++j) amax = fmaxf(amax, fabsf(v[j]));
  }
  amax = kTeam == 32 ? warp_max(amax) : block_max(amax, scratch);
  const float scale = e4m3::scale_of(amax, min_scale);

  for (int64_t i = member * kElementsPerLoad; i < group; i += kTeam * kElementsPerLoad) {
    float v[4];
    load_bf16x4(x + i, v);
    *reinterpret_cast<uint32_t*>(q + i) = e4m3::encode4(v, scale);
  }
  if (member == 0) p.scales[index] = scale;
}

}  // namespace

int launch_fp8_quantize_activations(const Fp8QuantizeParams& p, Stream stream) {
  const bool block = p.layout == Fp8ScaleLayout::Block;
  if (p.m < 0 || p.k <= 0 || p.k % kElementsPerLoad != 0 || (!block && p.layout != Fp8ScaleLayout::Channel))
    return cudaErrorInvalidValue;
  if (block && (p.group <= 0 || p.group % kElementsPerLoad != 0 || p.k % p.group != 0)) return cudaErrorInvalidValue;
  if (p.m > 0 && (!p.x || !p.q || !p.scales || reinterpret_cast<uintptr_t>(p.x) % 8 != 0 ||
                  reinterpret_cast<uintptr_t>(p.q) % 4 != 0))
    return cudaErrorInvalidValue;
  if (p.m == 0) return cudaSuccess;
  auto s = static_cast<cudaStream_t>(stream);
  if (block) {
    const int64_t groups = p.m * (p.k / p.group);
    constexpr int kGroupsPerBlock = kThreads / 32;
    const int64_t blocks = (groups + kGroupsPerBlock - 1) / kGroupsPerBlock;
    if (blocks > INT32_MAX) return cudaErrorInvalidValue;
    fp8_quantize_kernel<32>
        <<<static_cast<unsigned>(blocks), kThreads, 0, s>>>(p, p.group, groups, e4m3::kBlockMinScale);
  } else {
    if (p.m > INT32_MAX) return cudaErrorInvalidValue;
    fp8_quantize_kernel<kThreads><<<static_cast<unsigned>(p.m), kThreads, 0, s>>>(p, p.k, p.m, e4m3::kTokenMinScale);
  }
  return launch_status();
}

}  // namespace rackserve::kernels
