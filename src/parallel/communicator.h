// Communicator: the collectives one tensor-parallel rank of a model uses, and nothing else.
// Models see only this interface (header-only library rackserve_communicator), never NCCL:
// the in-process group (in_process_communicator.h, CPU backend, N threads of one process)
// and the NCCL one (nccl_communicator.h, CUDA) implement it in rackserve_parallel.
//
// Contract for every collective: all ranks of the group call it in the same order with
// tensors of the same shape and dtype, on the device of the rank's backend. A collective
// returns once its result is ordered before the rank's next backend op (the in-process
// group: the data is there; NCCL: enqueued on the backend's stream, so it can be captured
// into a CUDA graph). After abort(), every pending and later collective of every rank
// throws instead of waiting, so one failed rank never leaves the others hanging.
#pragma once

#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace rackserve {

// How a rank's all_reduce_sum calls were carried out, counted as issued (a call captured into
// a CUDA graph counts once, not at each replay).
struct AllReduceCounts {
  int64_t calls = 0;
  int64_t custom = 0;  // of them, by the custom peer-memory kernel (custom_all_reduce.h)
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;

  // tensor (F32 or BF16, any shape) = the sum of every rank's tensor, in place. All ranks
  // get bit-identical results.
  virtual void all_reduce_sum(const Tensor& tensor) = 0;
  // in [rows, n] on every rank -> out [rows, world_size * n] on every rank, rank r's `in` in
  // columns [r * n, (r + 1) * n) (vocab-parallel logits). F32 or BF16; `out` must not alias `in`.
  virtual void all_gather_last_dim(const Tensor& in, const Tensor& out) = 0;
  // Returns once every rank has called it (host-side; device work is not waited for).
  virtual void barrier() = 0;
  // Marks the whole group failed with `reason`; callable from any thread, more than once.
  virtual void abort(const std::string& reason) = 0;

  // Returns once this rank's collectives and the backend ops ordered before them have
  // finished on the device (NCCL: its stream, polled so that abort() releases the wait and
  // throws). Nothing to do where collectives finish before they return (in-process).
  virtual void synchronize() {}
  // An error the transport found on its own, outside any call (NCCL's
  // ncclCommGetAsyncError: a peer vanished, a network error); empty while healthy. Callable
  // from any thread: a watchdog polls it.
  virtual std::string async_error() const { return {}; }
  // This rank's counts; all zero for a transport that does not count them (in-process).
  virtual AllReduceCounts all_reduce_counts() const { return {}; }
  // Runs every collective path a step may take once, then synchronize(): a transport that
  // connects its peers lazily (NCCL, at the first collective of each algorithm and protocol)
  // does so here, at start-up, instead of inside the first CUDA graph capture of a decode
  // step (where setting up connections and buffers is not allowed) or in a user's first
  // request. All ranks call it together, outside any capture; the results are unused.
  virtual void warm_up() {}
};

}  // namespace rackserve
