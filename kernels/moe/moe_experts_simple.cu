// Routed experts evaluated per (token, slot) pair, in two launches:
//   1. activated[t, k] = silu(gate_e x_t) * (up_e x_t)      one warp per intermediate row
//   2. output[t] = sum_k weight[t, k] * down_e activated[t, k]  one warp per hidden row,
//      the sum over k in slot order (deterministic, no atomics)
// Expert weights are read once per (token, slot) pair: right for decode batches where
// pairs rarely share experts, wasteful for prefill. The grouped GEMM (tokens sorted per
// expert, weights read once per expert) replaces it.
#include "common/device_utils.cuh"
#include "rackserve/kernels/moe_params.h"

namespace rackserve::kernels {

namespace {

constexpr int kWarps = 8;

__global__ void __launch_bounds__(kWarps * 32) gate_up_kernel(MoeExpertsParams p) {
  const int lane = threadIdx.x % 32;
  const int64_t pair = blockIdx.x, row = static_cast<int64_t>(blockIdx.y) * kWarps + threadIdx.x / 32;
  if (row >= p.inter) return;
  const int64_t t = pair / p.top_k;
  const int32_t expert = p.expert_ids[pair];
  const __nv_bfloat16* x = static_cast<const __nv_bfloat16*>(p.x) + t * p.hidden;
  const __nv_bfloat16* gate_up = static_cast<const __nv_bfloat16*>(p.gate_up) + expert * 2 * p.inter * p.hidden;
  const __nv_bfloat16* gate_row = gate_up + row * p.hidden;
  const __nv_bfloat16* up_row = gate_up + (p.inter + row) * p.hidden;
  float gate = 0.0f, up = 0.0f;
  for (int64_t k = lane * 8; k < p.hidden; k += 32 * 8) {
    float xv[8], gv[8], uv[8];
    load_bf16x8(x + k, xv);
    load_bf16x8(gate_row + k, gv);
    load_bf16x8(up_row + k, uv);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      gate = fmaf(gv[i], xv[i], gate);
      up = fmaf(uv[i], xv[i], up);
    }
  }
  gate = warp_sum(gate);
  up = warp_sum(up);
  if (lane == 0) p.activated[pair * p.inter + row] = gate / (1.0f + expf(-gate)) * up;
}

__global__ void __launch_bounds__(kWarps * 32) down_kernel(MoeExpertsParams p) {
  const int lane = threadIdx.x % 32;
  const int64_t t = blockIdx.x, row = static_cast<int64_t>(blockIdx.y) * kWarps + threadIdx.x / 32;
  if (row >= p.hidden) return;
  float total = 0.0f;
  for (int64_t k = 0; k < p.top_k; ++k) {
    const int64_t pair = t * p.top_k + k;
    const int32_t expert = p.expert_ids[pair];
    const __nv_bfloat16* down_row = static_cast<const __nv_bfloat16*>(p.down) + (expert * p.hidden + row) * p.inter;
    const float* activated = p.activated + pair * p.inter;
    float partial = 0.0f;
    for (int64_t c = lane * 8; c < p.inter; c += 32 * 8) {
      float w[8];
      load_bf16x8(down_row + c, w);
#pragma unroll
      for (int i = 0; i < 8; ++i) partial = fmaf(w[i], activated[c + i], partial);
    }
    total += p.weights[pair] * warp_sum(partial);
  }
  if (lane == 0) p.output[t * p.hidden + row] = total;
}

}  // namespace

int launch_moe_experts(const MoeExpertsParams& p, Stream stream) {
  if (p.tokens < 0 || p.top_k <= 0 || p.experts <= 0 || p.hidden <= 0 || p.inter <= 0 || p.hidden % 8 != 0 ||
      p.inter % 8 != 0 || (p.tokens > 0 && (!p.x || !p.expert_ids || !p.weights || !p.gate_up || !p.down ||
                                            !p.activated || !p.output)) ||
      !aligned16(p.x) || !aligned16(p.gate_up) || !aligned16(p.down))
    return cudaErrorInvalidValue;
  if (p.tokens == 0) return cudaSuccess;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int64_t pairs = p.tokens * p.top_k;
  if (pairs > 2147483647 || (p.inter + kWarps - 1) / kWarps > 65535 || (p.hidden + kWarps - 1) / kWarps > 65535)
    return cudaErrorInvalidValue;
  gate_up_kernel<<<dim3(static_cast<unsigned>(pairs), static_cast<unsigned>((p.inter + kWarps - 1) / kWarps)),
                   kWarps * 32, 0, s>>>(p);
  down_kernel<<<dim3(static_cast<unsigned>(p.tokens), static_cast<unsigned>((p.hidden + kWarps - 1) / kWarps)),
                kWarps * 32, 0, s>>>(p);
  return launch_status();
}

}  // namespace rackserve::kernels
