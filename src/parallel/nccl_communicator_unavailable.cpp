// make_nccl_communicators in builds without CUDA or without NCCL.
#include "core/error.h"
#include "parallel/nccl_communicator.h"

namespace rackserve {

bool nccl_available() { return false; }

std::vector<std::unique_ptr<Communicator>> make_nccl_communicators(const std::vector<Backend*>&, const NcclOptions&) {
  RS_FAIL("tensor parallelism on CUDA needs NCCL, which this build does not have (rebuild with CUDA and NCCL)");
}

}  // namespace rackserve
