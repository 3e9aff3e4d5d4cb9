// The CUDA backend's factory in builds without CUDA: no device, and a clear error.
#include "backend/backend.h"
#include "core/error.h"

namespace rackserve {

bool cuda_device_available() { return false; }

std::unique_ptr<Backend> make_cuda_backend(int) { RS_FAIL("this rackserve was built without CUDA (RACKSERVE_CUDA=OFF or no nvcc)"); }

}  // namespace rackserve
