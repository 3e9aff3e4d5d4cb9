// NCCL communicators for the ranks of one process, one GPU (one CUDA backend) per rank.
// Collectives are enqueued on the rank's backend stream (Backend::native_stream), so they
// order with its ops and are captured into its CUDA graphs. Built only when the build has
// CUDA and NCCL (nccl_available() says which); elsewhere make_nccl_communicators throws.
#pragma once

#include <chrono>
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "parallel/communicator.h"
#include "parallel/custom_all_reduce.h"

namespace rackserve {

bool nccl_available();

struct NcclOptions {
  // ncclCommInitRankConfig of every rank must finish within this (a wrong NCCL_* setting or
  // a broken peer link otherwise hangs start-up).
  std::chrono::milliseconds init_timeout{120'000};
  // Small all-reduces through the one-shot peer-memory kernel (custom_all_reduce.h) where
  // every pair of GPUs has peer access; NCCL otherwise and above custom_all_reduce_max_bytes
  // (0: NCCL for every size).
  bool custom_all_reduce = true;
  int64_t custom_all_reduce_max_bytes = kCustomAllReduceCrossoverBytes;
};

// One communicator per backend (rank r = backends[r], each on its own device), created
// with one ncclGetUniqueId and ncclCommInitRank per rank inside one NCCL group (the way
// NCCL documents for one thread setting up several GPUs). The backends must outlive the
// communicators. abort() on any of them aborts every rank's NCCL communicator, which
// releases ranks blocked in a collective.
std::vector<std::unique_ptr<Communicator>> make_nccl_communicators(const std::vector<Backend*>& backends,
                                                                  const NcclOptions& options = {});

}  // namespace rackserve
