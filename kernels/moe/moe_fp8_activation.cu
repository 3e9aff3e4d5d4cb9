// Between the two expert GEMMs of the FP8 routed experts: a[pair] = silu(gate) * up in f32
// (the gate_up partials summed in split order), then quantized to e4m3 exactly as the CPU
// oracle quantizes the activation it feeds its FP8 down projection (backend/cpu/moe_ops.cpp
// computes a in f32 and fp8_matvec quantizes it: fp8_linear.h):
//   Block:   a group is 128 consecutive columns of a pair, min_scale = 1e-10 / 448
//   Channel: a group is the pair's whole row,           min_scale = 1 / (448 * 512)
//   scale = max(amax / 448, min_scale), q = e4m3(a / scale), IEEE divisions, round to nearest
//   even, saturating to ±448.
// One CTA per pair: the row of a goes to shared memory (inter floats), then each warp takes
// 128-column groups (Block) or the CTA reduces the row's amax (Channel).
#include <cuda_fp8.h>

#include "common/device_utils.cuh"
#include "common/e4m3_quantize.cuh"
#include "common/shared_memory_budget.cuh"
#include "gemm/linear_fp8.cuh"
#include "moe/moe_fp8.cuh"

namespace rackserve::kernels {

namespace {

constexpr int kThreads = 256;

template <bool kBlockScaling>
__global__ void __launch_bounds__(kThreads) moe_fp8_activation_kernel(MoeFp8ActivationArgs p) {
  wait_for_prior_kernel();
  extern __shared__ float activation[];  // [inter]
  __shared__ float scratch[32];
  const int64_t pair = blockIdx.x;
  const int64_t width = 2 * p.inter, split_stride = p.pairs * width;
  const float* gate_up = p.gate_up_partials + pair * width;
  // 4 columns per thread (16-byte loads); the splits' loads are independent, so unrolling lets
  // a thread have several in flight while the sums keep split order.
  for (int64_t c = threadIdx.x * 4; c < p.inter; c += kThreads * 4) {
    float4 gate = *reinterpret_cast<const float4*>(gate_up + c);
    float4 up = *reinterpret_cast<const float4*>(gate_up + p.inter + c);
#pragma unroll 4
    for (int s = 1; s < p.splits; ++s) {
      const float4 more_gate = *reinterpret_cast<const float4*>(gate_up + s * split_stride + c);
      const float4 more_up = *reinterpret_cast<const float4*>(gate_up + s * split_stride + p.inter + c);
      gate.x += more_gate.x, gate.y += more_gate.y, gate.z += more_gate.z, gate.w += more_gate.w;
      up.x += more_up.x, up.y += more_up.y, up.z += more_up.z, up.w += more_up.w;
    }
    const float gates[4] = {gate.x, gate.y, gate.z, gate.w}, ups[4] = {up.x, up.y, up.z, up.w};
#pragma unroll
    for (int j = 0; j < 4; ++j) activation[c + j] = gates[j] / (1.0f + expf(-gates[j])) * ups[j];  // the oracle's expression
  }
  __syncthreads();
  uint8_t* q = p.q + pair * p.inter;
  if constexpr (kBlockScaling) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int64_t groups = p.inter / kFp8BlockK;
    for (int64_t group = warp; group < groups; group += kThreads / 32) {
      const float* values = activation + group * kFp8BlockK + lane * 4;
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
    for (int64_t c = threadIdx.x; c < p.inter; c += kThreads) amax = fmaxf(amax, fabsf(activation[c]));
    amax = block_max(amax, scratch);
    const float scale = e4m3::scale_of(amax, e4m3::kTokenMinScale);
    for (int64_t c = threadIdx.x * 4; c < p.inter; c += kThreads * 4)
      *reinterpret_cast<uint32_t*>(q + c) = e4m3::encode4(activation + c, scale);
    if (threadIdx.x == 0) p.scales[pair] = scale;
  }
}

}  // namespace

int launch_moe_fp8_activation(const MoeFp8ActivationArgs& p, cudaStream_t stream) {
  const bool block = p.layout == Fp8ScaleLayout::Block;
  if (p.pairs < 0 || p.pairs > INT32_MAX || p.inter <= 0 || p.inter % (block ? kFp8BlockK : 4) != 0 || p.splits < 1 ||
      !aligned16(p.gate_up_partials))
    return cudaErrorInvalidValue;
  if (p.pairs == 0) return cudaSuccess;
  const int64_t bytes = p.inter * 4;
  auto kernel = block ? moe_fp8_activation_kernel<true> : moe_fp8_activation_kernel<false>;
  if (bytes > kSharedMemoryBudgetBytes - 1024) return cudaErrorInvalidValue;
  if (int status = opt_in_dynamic_shared_memory(reinterpret_cast<const void*>(kernel), static_cast<int>(bytes),
                                                "moe_fp8_activation"))
    return status;
  kernel<<<static_cast<unsigned>(p.pairs), kThreads, static_cast<size_t>(bytes), stream>>>(p);
  return launch_status();
}

}  // namespace rackserve::kernels
