// Grouped routed experts (moe_params.h): validation, the path plan, and the launches in
// order: gate_up (CUDA-core path, then the tiled path when the plan allows it), down (same),
// then the per-token sum of the pairs' contributions in slot order, so the result does not
// depend on which path or CTA produced each contribution.
#include "common/device_utils.cuh"
#include "moe/moe_grouped.cuh"

namespace rackserve::kernels {

namespace {

constexpr int64_t kDecodeMaxTokens = 64;
constexpr int64_t kTiledMinPairs = 16;
constexpr int kReduceThreads = 256;

// output[t, h] = sum over k = 0..top_k-1, in order, of contributions[t * top_k + k, h].
__global__ void __launch_bounds__(kReduceThreads) moe_sum_slots_kernel(MoeGroupedExpertsParams p) {
  wait_for_prior_kernel();
  const int64_t quads_per_token = p.hidden / 4, total = p.tokens * quads_per_token;
  for (int64_t index = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; index < total;
       index += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = index / quads_per_token, h = (index % quads_per_token) * 4;
    const float* source = p.contributions + t * p.top_k * p.hidden + h;
    float4 sum = *reinterpret_cast<const float4*>(source);
    for (int64_t k = 1; k < p.top_k; ++k) {
      const float4 value = *reinterpret_cast<const float4*>(source + k * p.hidden);
      sum.x += value.x;
      sum.y += value.y;
      sum.z += value.z;
      sum.w += value.w;
    }
    *reinterpret_cast<float4*>(p.output + t * p.hidden + h) = sum;
  }
}

}  // namespace

MoeGroupedConfig plan_moe_grouped(int64_t tokens, int64_t /*top_k*/, int64_t /*experts*/) {
  return {tokens <= kDecodeMaxTokens ? INT32_MAX : kTiledMinPairs};
}

int launch_moe_experts_grouped(const MoeGroupedExpertsParams& p, const MoeGroupedConfig& config, Stream stream) {
  const MoeAlignLayout layout = moe_align_layout(p.tokens, p.top_k, p.experts);
  // 4-bit weights: INT4 (any group, a multiple of 8) or NVFP4 (blocks of 16, row scales).
  const bool nvfp4 = p.weight_format == MoeWeightFormat::NVFP4;
  const bool int4 = p.weight_format == MoeWeightFormat::INT4 || nvfp4;
  if (int4 && (p.group <= 0 || p.group % 8 != 0 || (nvfp4 && p.group != 16) || p.hidden % p.group != 0 ||
               p.inter % p.group != 0 || (p.tokens > 0 && (!p.gate_up_scales || !p.down_scales)) ||
               (nvfp4 && p.tokens > 0 && (!p.gate_up_row_scales || !p.down_row_scales))))
    return cudaErrorInvalidValue;
  if (!int4 && p.weight_format != MoeWeightFormat::BF16) return cudaErrorInvalidValue;
  if (p.tokens < 0 || p.top_k <= 0 || p.experts <= 0 || p.hidden <= 0 || p.inter <= 0 || p.hidden % 8 != 0 ||
      p.inter % 8 != 0 || p.max_active < layout.max_active || p.max_blocks < layout.max_blocks ||
      p.max_active > 65535 || layout.pairs > INT32_MAX / 2 || config.tiled_min_tokens < 1 ||
      (p.tokens > 0 && (!p.x || !p.weights || !p.gate_up || !p.down || !p.sorted_pairs || !p.active_experts ||
                        !p.active_offsets || !p.active_counts || !p.block_slots || !p.activated_high ||
                        !p.activated_low || !p.contributions || !p.output)) ||
      !aligned16(p.x) || (!int4 && (!aligned16(p.gate_up) || !aligned16(p.down))) ||
      (int4 && (reinterpret_cast<uintptr_t>(p.gate_up) % 4 != 0 || reinterpret_cast<uintptr_t>(p.down) % 4 != 0)) ||
      !aligned16(p.activated_high) ||
      !aligned16(p.activated_low) || !aligned16(p.contributions) || !aligned16(p.output))
    return cudaErrorInvalidValue;
  if (p.tokens == 0) return cudaSuccess;
  auto s = static_cast<cudaStream_t>(stream);
  // Tiled launches only when some expert can reach the threshold (its CTAs exit otherwise);
  // 4-bit weights stream at every size (the tiled path reads bf16 tiles).
  const int64_t tiled_min_tokens = int4 ? INT32_MAX : config.tiled_min_tokens;
  const bool tiled = layout.pairs >= tiled_min_tokens;
  if (int status = launch_moe_gate_up_small_m(p, tiled_min_tokens, s)) return status;
  if (tiled)
    if (int status = launch_moe_gate_up_tiled(p, tiled_min_tokens, s)) return status;
  if (int status = launch_moe_down_small_m(p, tiled_min_tokens, s)) return status;
  if (tiled)
    if (int status = launch_moe_down_tiled(p, tiled_min_tokens, s)) return status;
  moe_sum_slots_kernel<<<grid_blocks(p.tokens * p.hidden / 4, kReduceThreads, 4096), kReduceThreads, 0, s>>>(p);
  return launch_status();
}

}  // namespace rackserve::kernels
