// The two paths of the grouped MoE experts (moe_experts_grouped.cu dispatches them; both
// take the validated MoeGroupedExpertsParams). Each launch covers every active expert and
// its CTAs skip the experts of the other path, so each pair is computed by exactly one.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "rackserve/kernels/moe_params.h"

namespace rackserve::kernels {

// CUDA-core streaming path for experts with fewer than `tiled_min_tokens` pairs.
int launch_moe_gate_up_small_m(const MoeGroupedExpertsParams& params, int64_t tiled_min_tokens, cudaStream_t stream);
int launch_moe_down_small_m(const MoeGroupedExpertsParams& params, int64_t tiled_min_tokens, cudaStream_t stream);

// mma.sync tiled path for experts with at least `tiled_min_tokens` pairs.
int launch_moe_gate_up_tiled(const MoeGroupedExpertsParams& params, int64_t tiled_min_tokens, cudaStream_t stream);
int launch_moe_down_tiled(const MoeGroupedExpertsParams& params, int64_t tiled_min_tokens, cudaStream_t stream);

// Splits a float into bf16 high and low parts (high + low carries ~16 significant bits), the
// form in which the activation crosses from gate_up to down on both paths.
__device__ __forceinline__ void split_bf16(float value, __nv_bfloat16& high, __nv_bfloat16& low) {
  high = __float2bfloat16(value);
  low = __float2bfloat16(value - __bfloat162float(high));
}

__device__ __forceinline__ float silu_times(float gate, float up) { return gate / (1.0f + expf(-gate)) * up; }

}  // namespace rackserve::kernels
