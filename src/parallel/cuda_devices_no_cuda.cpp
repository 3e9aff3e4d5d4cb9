// visible_cuda_devices / set_current_cuda_device in builds without CUDA.
#include "core/error.h"
#include "parallel/rank_group.h"

namespace rackserve {

int visible_cuda_devices() { return 0; }

void set_current_cuda_device(int device) { RS_FAIL("CUDA device {}: this rackserve was built without CUDA", device); }

}  // namespace rackserve
