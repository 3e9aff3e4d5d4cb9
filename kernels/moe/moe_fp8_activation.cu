// Between the two expert GEMMs of the FP8 routed experts: a[pair] = silu(gate) * up in f32
// (the gate_up partials summed in split order), then quantized to e4m3 exactly as the CPU
// oracle quantizes the activation it feeds its FP8 down projection (backend/cpu/moe_ops.cpp
// computes a in f32 and fp8_matvec quantizes it: fp8_linear.h):
//   Block:   a group is 128 consecutive columns of a pair, min_scale = 1e-10 / 448
//   Channel: a group is the pair's whole row,           min_scale = 1 / (448 * 512)
//   scale = max(amax / 448, min_scale), q = e4m3(a / scale), IEEE divisions, round to nearest
//   even, saturating to ±448.
// One CTA per pair (moe_fp8_finish.cuh: the GEMM's last CTA runs the same at decode): the row
// of a goes to shared memory (inter floats), then each warp takes 128-column groups (Block)
// or the CTA reduces the row's amax (Channel).
#include "common/device_utils.cuh"
#include "common/shared_memory_budget.cuh"
#include "moe/moe_fp8.cuh"
#include "moe/moe_fp8_finish.cuh"

namespace rackserve::kernels {

namespace {

constexpr int kThreads = 256;

template <bool kBlockScaling>
__global__ void __launch_bounds__(kThreads) moe_fp8_activation_kernel(MoeFp8ActivationArgs p) {
  wait_for_prior_kernel();
  extern __shared__ float activation[];  // [inter]
  __shared__ float scratch[32];
  moe_fp8_activate_pair<kBlockScaling>(p, blockIdx.x, activation, scratch);
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
