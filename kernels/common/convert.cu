// Element-type conversions on the device: the first kernel of the tree, kept because
// weight upload and tests need it.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "rackserve/kernels/convert_params.h"

namespace rackserve::kernels {

namespace {
__global__ void bf16_to_f32_kernel(Bf16ToF32Params params) {
  int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < params.count; i += stride)
    params.output[i] = __uint_as_float(static_cast<uint32_t>(params.input[i]) << 16);
}
}  // namespace

int launch_bf16_to_f32(const Bf16ToF32Params& params, void* stream) {
  if (params.count < 0 || (params.count > 0 && (!params.input || !params.output))) return cudaErrorInvalidValue;
  if (params.count == 0) return cudaSuccess;
  constexpr int kThreads = 256;
  int64_t blocks = (params.count + kThreads - 1) / kThreads;
  int grid = static_cast<int>(blocks < 4096 ? blocks : 4096);
  bf16_to_f32_kernel<<<grid, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(params);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace rackserve::kernels
