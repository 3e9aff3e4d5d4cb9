// RankGroup: the backends and communicators of one tensor-parallel group inside this
// process, built from what the user asked (--device, --tp, --threads): on the CPU N CPU
// backends and the in-process communicator group; on CUDA one GPU per rank (rank r on
// visible device r) and NCCL communicators (with the custom all-reduce where peer access
// allows). bind_thread is what TensorParallelOptions needs: it makes a worker thread's
// current CUDA device its rank's.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "parallel/communicator.h"
#include "parallel/custom_all_reduce.h"

namespace rackserve {

struct RankGroup {
  std::vector<std::unique_ptr<Backend>> backends;
  std::vector<std::unique_ptr<Communicator>> communicators;  // empty for one rank
  std::function<void(size_t rank)> bind_thread;

  std::vector<Backend*> backend_pointers() const;
  std::vector<Communicator*> communicator_pointers() const;
};

struct RankGroupOptions {
  DeviceKind device = DeviceKind::Host;
  int world = 1;
  unsigned cpu_threads = 0;  // CPU threads per rank's backend; 0: the machine's threads / world
  // CUDA: all-reduces up to this size take the one-shot peer kernel (NcclOptions); 0: NCCL only.
  int64_t custom_all_reduce_max_bytes = kCustomAllReduceCrossoverBytes;
};

// Throws one line when the group cannot be built: --tp larger than the visible GPUs (with
// CUDA_VISIBLE_DEVICES in the message when set), a build without NCCL, NCCL init failing
// or timing out.
RankGroup make_rank_group(const RankGroupOptions& options);

// CUDA devices this process sees (0 in builds without CUDA or when the runtime fails).
int visible_cuda_devices();
// Makes `device` the calling thread's current CUDA device (throws on failure).
void set_current_cuda_device(int device);

}  // namespace rackserve
