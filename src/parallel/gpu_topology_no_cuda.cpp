// probe_gpu_topology in a build without CUDA: nothing to probe.
#include "core/error.h"
#include "parallel/gpu_topology.h"

namespace rackserve::parallel {

GpuTopology probe_gpu_topology(const ProbeOptions&) {
  RS_FAIL("this rackserve was built without CUDA (no nvcc at build time): there are no GPUs to probe");
}

}  // namespace rackserve::parallel
