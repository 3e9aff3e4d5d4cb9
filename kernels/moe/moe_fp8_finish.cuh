// The two steps of the FP8 routed experts that follow a GEMM, as device functions of one CTA,
// so that the standalone kernels (moe_fp8_activation.cu, the slot sum in moe_experts_fp8.cu)
// and the GEMM's last CTA at decode (moe_fp8_gemm.cuh, MoeFp8Finish) compute the same bytes:
//   - the activation of one pair: a = silu(gate) * up from the gate_up partials summed in
//     split order, quantized to e4m3 with the CPU oracle's rounding (moe_fp8_activation.cu
//     states the rules);
//   - the slot sum at one token and four columns: sum over slots k in order of weight[t, k] x
//     (the down partials summed in split order).
// Partials are read with ld.global.cg: in the fused case other CTAs of the same grid wrote
// them, and L1 is not coherent.
#pragma once

#include "common/device_utils.cuh"
#include "common/e4m3_quantize.cuh"
#include "gemm/linear_fp8.cuh"
#include "moe/moe_fp8.cuh"

namespace rackserve::kernels {

// Every thread of the CTA calls it (it holds CTA barriers). `row`: p.inter floats of shared
// memory; `scratch`: 32 floats of shared memory (Channel's row amax).
template <bool kBlockScaling>
__device__ __forceinline__ void moe_fp8_activate_pair(const MoeFp8ActivationArgs& p, int64_t pair, float* row,
                                                      float* scratch) {
  const int64_t width = 2 * p.inter, split_stride = p.pairs * width;
  const float* gate_up = p.gate_up_partials + pair * width;
  // 4 columns per thread (16-byte loads); the splits' loads are independent, so unrolling lets
  // a thread have several in flight while the sums keep split order.
  for (int64_t c = threadIdx.x * 4; c < p.inter; c += blockDim.x * 4) {
    float4 gate = __ldcg(reinterpret_cast<const float4*>(gate_up + c));
    float4 up = __ldcg(reinterpret_cast<const float4*>(gate_up + p.inter + c));
#pragma unroll 4
    for (int s = 1; s < p.splits; ++s) {
      const float4 more_gate = __ldcg(reinterpret_cast<const float4*>(gate_up + s * split_stride + c));
      const float4 more_up = __ldcg(reinterpret_cast<const float4*>(gate_up + s * split_stride + p.inter + c));
      gate.x += more_gate.x, gate.y += more_gate.y, gate.z += more_gate.z, gate.w += more_gate.w;
      up.x += more_up.x, up.y += more_up.y, up.z += more_up.z, up.w += more_up.w;
    }
    const float gates[4] = {gate.x, gate.y, gate.z, gate.w}, ups[4] = {up.x, up.y, up.z, up.w};
#pragma unroll
    for (int j = 0; j < 4; ++j) row[c + j] = gates[j] / (1.0f + expf(-gates[j])) * ups[j];  // the oracle's expression
  }
  __syncthreads();
  uint8_t* q = p.q + pair * p.inter;
  if constexpr (kBlockScaling) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    const int64_t groups = p.inter / kFp8BlockK;
    for (int64_t group = warp; group < groups; group += warps) {
      const float* values = row + group * kFp8BlockK + lane * 4;
      float amax = 0.0f;
#pragma unroll
      for (int j = 0; j < 4; ++j) amax = fmaxf(amax, fabsf(values[j]));
      amax = warp_max(amax);
      const float scale = e4m3::scale_of(amax, e4m3::kBlockMinScale);
      *reinterpret_cast<uint32_t*>(q + group * kFp8BlockK + lane * 4) = e4m3::encode4(values, scale);
      if (lane == 0) p.scales[pair * groups + group] = scale;
    }
  } else {
    float amax = 0.0f;
    for (int64_t c = threadIdx.x; c < p.inter; c += blockDim.x) amax = fmaxf(amax, fabsf(row[c]));
    amax = block_max(amax, scratch);
    const float scale = e4m3::scale_of(amax, e4m3::kTokenMinScale);
    for (int64_t c = threadIdx.x * 4; c < p.inter; c += blockDim.x * 4)
      *reinterpret_cast<uint32_t*>(q + c) = e4m3::encode4(row + c, scale);
    if (threadIdx.x == 0) p.scales[pair] = scale;
  }
  __syncthreads();  // `row` and `scratch` are free again
}

// output[t, h..h + 3] from the down partials [splits, tokens * top_k, hidden] and the routing
// weights [tokens * top_k] (h a multiple of 4).
__device__ __forceinline__ float4 moe_fp8_sum_slots4(const float* partials, int splits, int64_t tokens, int64_t top_k,
                                                     int64_t hidden, const float* weights, int64_t t, int64_t h) {
  const int64_t pairs = tokens * top_k;
  float4 sum = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  for (int64_t k = 0; k < top_k; ++k) {
    const int64_t pair = t * top_k + k;
    float4 value = __ldcg(reinterpret_cast<const float4*>(partials + pair * hidden + h));
#pragma unroll 4  // independent loads in flight; the sums keep split order
    for (int s = 1; s < splits; ++s) {
      const float4 more = __ldcg(reinterpret_cast<const float4*>(partials + (s * pairs + pair) * hidden + h));
      value.x += more.x, value.y += more.y, value.z += more.z, value.w += more.w;
    }
    const float weight = weights[pair];
    if (k == 0) {
      sum = make_float4(value.x * weight, value.y * weight, value.z * weight, value.w * weight);
    } else {
      sum.x += value.x * weight, sum.y += value.y * weight, sum.z += value.z * weight, sum.w += value.w * weight;
    }
  }
  return sum;
}

}  // namespace rackserve::kernels
