// Split-K bookkeeping of the FP8 GEMMs: the workspace size and the reduction of the per-split
// f32 partials into y. Each split has already applied its scales (the Block layout per K
// block, the Channel layout to its partial dot), so the reduction is a plain sum, in split
// order (the result does not depend on which CTA finished first).
#include "common/device_utils.cuh"
#include "gemm/linear_fp8.cuh"

namespace rackserve::kernels {

namespace {

constexpr int kThreads = 256;

template <typename Output>
__global__ void __launch_bounds__(kThreads) linear_fp8_split_reduce_kernel(const float* __restrict__ workspace,
                                                                           Output* __restrict__ y, int64_t count,
                                                                           int splits) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * kThreads) {
    float sum = 0.0f;
    for (int s = 0; s < splits; ++s) sum += workspace[s * count + i];
    store_y(y, i, sum);
  }
}

}  // namespace

int64_t linear_fp8_workspace_floats(int64_t m, int64_t n, const LinearFp8Config& config) {
  return config.splits <= 1 ? 0 : int64_t{config.splits} * m * n;
}

int launch_linear_fp8_split_reduce(const LinearFp8Params& p, int splits, cudaStream_t stream) {
  const int64_t count = p.m * p.n;
  if (count == 0) return cudaSuccess;
  const unsigned blocks = grid_blocks(count, kThreads, int64_t{1} << 20);
  if (p.y_type == ElementType::F32)
    linear_fp8_split_reduce_kernel<<<blocks, kThreads, 0, stream>>>(p.workspace, static_cast<float*>(p.y), count,
                                                                    splits);
  else
    linear_fp8_split_reduce_kernel<<<blocks, kThreads, 0, stream>>>(p.workspace, static_cast<__nv_bfloat16*>(p.y),
                                                                    count, splits);
  return launch_status();
}

}  // namespace rackserve::kernels
