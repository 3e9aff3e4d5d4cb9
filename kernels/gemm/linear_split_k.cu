// Split-K bookkeeping of the GEMMs (linear_split_k.cuh): the plan arithmetic, the workspace
// sizes, and the reduction of the per-split f32 partials into y. Each split has already
// applied its scales (FP8: the Block layout per K block, the Channel layout to its partial
// dot), so the reduction is a plain sum, in split order.
#include <algorithm>

#include "common/device_utils.cuh"
#include "gemm/linear_split_k.cuh"
#include "rackserve/kernels/fp8_gemm_params.h"
#include "rackserve/kernels/gemm_params.h"

namespace rackserve::kernels {

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ void store_sum(float* y, int64_t index, float value) { y[index] = value; }
__device__ __forceinline__ void store_sum(__nv_bfloat16* y, int64_t index, float value) {
  y[index] = __float2bfloat16(value);
}

template <typename Output>
__global__ void __launch_bounds__(kThreads) linear_split_reduce_kernel(const float* __restrict__ workspace,
                                                                       Output* __restrict__ y, int64_t count,
                                                                       int splits) {
  wait_for_prior_kernel();
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * kThreads) {
    float sum = 0.0f;
    for (int s = 0; s < splits; ++s) sum += workspace[s * count + i];
    store_sum(y, i, sum);
  }
}

}  // namespace

SplitK split_k_evenly(int64_t k_blocks, int64_t splits) {
  k_blocks = std::max<int64_t>(1, k_blocks);
  splits = std::clamp<int64_t>(splits, 1, std::min<int64_t>(k_blocks, 65535));
  SplitK cut;
  cut.k_blocks_per_split = static_cast<int>((k_blocks + splits - 1) / splits);
  cut.splits = static_cast<int>((k_blocks + cut.k_blocks_per_split - 1) / cut.k_blocks_per_split);
  return cut;
}

SplitK plan_small_m_split_k(int64_t row_ctas, int64_t resident_ctas, int64_t k_blocks, int k_warps,
                            int64_t max_splits) {
  row_ctas = std::max<int64_t>(1, row_ctas);
  resident_ctas = std::max<int64_t>(1, resident_ctas);
  k_warps = std::max(1, k_warps);
  auto cost = [&](const SplitK& cut) {
    const int64_t waves = (row_ctas * cut.splits + resident_ctas - 1) / resident_ctas;
    return waves * ((cut.k_blocks_per_split + k_warps - 1) / k_warps + 2);
  };
  SplitK best = split_k_evenly(k_blocks, 1);
  for (int64_t splits = 2; splits <= std::min<int64_t>(max_splits, 65535); ++splits) {
    const SplitK cut = split_k_evenly(k_blocks, splits);
    if (cost(cut) < cost(best)) best = cut;
  }
  return best;
}

int launch_linear_split_reduce(const float* workspace, void* y, ElementType y_type, int64_t count, int splits,
                               cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  const unsigned blocks = grid_blocks(count, kThreads, int64_t{1} << 20);
  if (y_type == ElementType::F32)
    linear_split_reduce_kernel<<<blocks, kThreads, 0, stream>>>(workspace, static_cast<float*>(y), count, splits);
  else
    linear_split_reduce_kernel<<<blocks, kThreads, 0, stream>>>(workspace, static_cast<__nv_bfloat16*>(y), count,
                                                                splits);
  return launch_status();
}

int64_t linear_fp8_workspace_floats(int64_t m, int64_t n, const LinearFp8Config& config) {
  return config.splits <= 1 ? 0 : int64_t{config.splits} * m * n;
}

int64_t linear_bf16_workspace_floats(int64_t m, int64_t n, const LinearBf16SmallMConfig& config) {
  return config.splits <= 1 ? 0 : int64_t{config.splits} * m * n;
}

}  // namespace rackserve::kernels
