// CustomAllReduce: the one-shot all-reduce of kernels/comm (protocol in
// include/rackserve/kernels/all_reduce_params.h) for the tensor-parallel ranks of this
// process. Each rank's buffers are allocated and registered once, here; since the ranks
// are threads of one process, peers reach them through plain device pointers once
// cudaDeviceEnablePeerAccess is on (no CUDA IPC handles). Ranks may share a GPU (two
// streams on one device): the tests and the bench run the protocol on one GPU that way.
// The NCCL communicator sends all-reduces of at most crossover_bytes here, larger ones and
// every all-reduce of a group without peer access to NCCL.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace rackserve {

// Below this size the one-shot kernel (one launch, one flag exchange, every rank reads
// every peer's whole message) beats NCCL's latency; above it NCCL's ring/tree bandwidth
// wins. 512 KiB is a placeholder, NOT a measurement: it must be measured on each kind of
// box (`bench/all_reduce` prints both latencies per size); `--custom-all-reduce-max-kib`
// (serve: custom_all_reduce_max_kib) sets it per box without a rebuild, 0 turns the kernel off.
constexpr int64_t kCustomAllReduceCrossoverBytes = int64_t{512} << 10;

struct CustomAllReduceOptions {
  int64_t capacity_bytes = int64_t{8} << 20;  // largest message the buffers hold (one half of each)
  int64_t crossover_bytes = kCustomAllReduceCrossoverBytes;  // all_reduce() takes at most this
};

class CustomAllReduce {
 public:
  // devices[r]: rank r's CUDA device (repeats allowed). Throws when two distinct devices of
  // the group lack peer access (check peer_access_between first) or CUDA fails.
  CustomAllReduce(std::vector<int> devices, CustomAllReduceOptions options = {});
  ~CustomAllReduce();
  CustomAllReduce(const CustomAllReduce&) = delete;
  CustomAllReduce& operator=(const CustomAllReduce&) = delete;

  // Empty when every pair of distinct devices has peer access, else why not.
  static std::string peer_access_between(const std::vector<int>& devices);

  int world_size() const { return static_cast<int>(devices_.size()); }
  // The grid bound every rank uses: min over the devices of SMs / ranks on that device, so
  // all ranks' blocks are resident together even when they share a GPU.
  int max_blocks() const { return max_blocks_; }

  // Whether all_reduce takes `tensor`: F32 or BF16, 16-byte aligned, at most crossover_bytes.
  bool takes(const Tensor& tensor) const;
  // Sums `tensor` over the ranks in place on `stream` (a cudaStream_t of rank's device; the
  // calling thread's current device must be rank's) and returns true, or returns false
  // without doing anything when !takes(tensor). All ranks decide alike (same sizes).
  bool all_reduce(int rank, const Tensor& tensor, void* stream);
  // The kernel for any message up to capacity_bytes (tests, bench); throws on bad arguments.
  void launch(int rank, void* data, int64_t count, DType dtype, void* stream);
  // Running and later kernels stop waiting for peers (their results are undefined); for a
  // failed group whose ranks must not hang. Callable from any thread.
  void abort();
  // Each rank's calls done, its blocks finished in the current call, and the call number
  // each rank has signalled to it per flag slot (block) in run lengths, e.g. "rank 0: done
  // 41, finished 0, from rank 0 42x20 41x13, from rank 1 41x33; rank 1: ...", read on a
  // private stream within `wait_ms` ("?" for a rank whose copy did not land in time). For
  // a hang's report: safe while the ranks' kernels spin.
  std::string progress_report(int wait_ms = 2000) const;

 private:
  struct Rank {
    void* buffer = nullptr;        // [2, capacity_bytes]
    uint64_t* flags = nullptr;     // [world, kAllReduceMaxBlocks]
    uint64_t* call_counter = nullptr;  // [2]
    // progress_report's staging, made up front: allocating pinned memory or a stream while
    // the ranks' kernels spin may wait for them.
    uint64_t* report = nullptr;        // pinned host [2 + world * kAllReduceMaxBlocks]
    void* report_stream = nullptr;     // cudaStream_t, non-blocking
  };
  std::vector<int> devices_;
  CustomAllReduceOptions options_;
  std::vector<Rank> ranks_;
  int* abort_flag_ = nullptr;  // host-mapped, pinned
  int max_blocks_ = 1;
};

// A CustomAllReduce over `devices`, or nullptr (with the reason in *why_not) when peer
// access is missing between two of them.
std::unique_ptr<CustomAllReduce> make_custom_all_reduce(const std::vector<int>& devices,
                                                        std::string* why_not = nullptr,
                                                        CustomAllReduceOptions options = {});

}  // namespace rackserve
