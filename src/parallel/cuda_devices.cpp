// visible_cuda_devices / set_current_cuda_device with the CUDA runtime.
#include <cuda_runtime.h>

#include "core/error.h"
#include "parallel/rank_group.h"

namespace rackserve {

int visible_cuda_devices() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return count;
}

void set_current_cuda_device(int device) {
  const cudaError_t status = cudaSetDevice(device);
  RS_CHECK(status == cudaSuccess, "cudaSetDevice({}): {}", device, cudaGetErrorString(status));
}

}  // namespace rackserve
