#include "parallel/rank_group.h"

#include <algorithm>
#include <cstdlib>
#include <thread>

#include <fmt/format.h>

#include "core/error.h"
#include "parallel/in_process_communicator.h"
#include "parallel/nccl_communicator.h"

namespace rackserve {

std::vector<Backend*> RankGroup::backend_pointers() const {
  std::vector<Backend*> pointers;
  for (const auto& backend : backends) pointers.push_back(backend.get());
  return pointers;
}

std::vector<Communicator*> RankGroup::communicator_pointers() const {
  std::vector<Communicator*> pointers;
  for (const auto& communicator : communicators) pointers.push_back(communicator.get());
  return pointers;
}

RankGroup make_rank_group(const RankGroupOptions& options) {
  RS_CHECK(options.world >= 1, "--tp must be >= 1, got {}", options.world);
  RankGroup group;
  if (options.device == DeviceKind::Host) {
    unsigned threads = options.cpu_threads;
    if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency() / static_cast<unsigned>(options.world));
    for (int r = 0; r < options.world; ++r) group.backends.push_back(make_cpu_backend(threads));
    if (options.world > 1) group.communicators = make_in_process_communicators(options.world);
    return group;
  }
  const int visible = visible_cuda_devices();
  if (options.world > 1 && options.world > visible) {
    const char* mask = std::getenv("CUDA_VISIBLE_DEVICES");
    RS_FAIL("--tp {} needs {} GPUs but {} {} visible{}", options.world, options.world, visible,
            visible == 1 ? "is" : "are", mask ? fmt::format(" (CUDA_VISIBLE_DEVICES={})", mask) : std::string());
  }
  for (int r = 0; r < options.world; ++r) group.backends.push_back(make_cuda_backend(r));
  group.bind_thread = [](size_t rank) { set_current_cuda_device(static_cast<int>(rank)); };
  if (options.world > 1) {
    RS_CHECK(nccl_available(),
             "--tp {} on CUDA needs NCCL, which this build does not have (rebuild with CUDA and NCCL)", options.world);
    NcclOptions nccl;
    nccl.custom_all_reduce_max_bytes = options.custom_all_reduce_max_bytes;
    group.communicators = make_nccl_communicators(group.backend_pointers(), nccl);
  }
  set_current_cuda_device(0);  // the caller's thread (the engine's sampling) runs rank 0's ops
  return group;
}

}  // namespace rackserve
