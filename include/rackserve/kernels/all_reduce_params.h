// One-shot all-reduce over peer-accessible buffers (kernels/comm/all_reduce_one_shot.cu),
// for the small messages of tensor-parallel decode where NCCL's latency dominates. The
// ranks are threads of one process, so plain device pointers of the peers (after
// cudaDeviceEnablePeerAccess) are all it needs: no IPC handles. Host side:
// src/parallel/custom_all_reduce.h.
//
// Protocol of call number s (a per-rank counter on the device, so a CUDA graph replays it):
// block b of rank r copies its slice of `inout` into half (s % 2) of its own buffer, then
// writes s into flags[p][r * kAllReduceMaxBlocks + b] of every rank p (its peers' memory);
// it waits until its own flags[r][q * kAllReduceMaxBlocks + b] >= s for every rank q, then
// sums the slice of every rank's buffer in rank order (((x0 + x1) + x2) + ...) in f32 and
// writes it to `inout`. Same grid on every rank (it is a function of count and world) and
// rank order summation: every rank gets bit-identical results. Reusing a half at call s + 2
// is safe: that call runs after this rank's call s + 1, which saw a flag of every peer's
// call s + 1, which starts only after the peer's call s finished reading.
#pragma once

#include "rackserve/kernels/common.h"

namespace rackserve::kernels {

constexpr int kAllReduceMaxRanks = 8;
constexpr int kAllReduceMaxBlocks = 36;
constexpr int kAllReduceThreads = 512;

struct OneShotAllReduceParams {
  void* buffers[kAllReduceMaxRanks];  // rank q: [2, capacity_bytes] bytes on q's device, peer-accessible
  uint64_t* flags[kAllReduceMaxRanks];  // rank q: [world, kAllReduceMaxBlocks] on q's device, zero at start
  uint64_t* call_counter;      // [2] on this rank's device: [0] calls done, [1] blocks finished (zero at start)
  const volatile int* abort;   // host-mapped; non-zero: stop waiting for peers (results then undefined)
  void* inout;                 // [count] type, this rank's input, replaced by the sum; 16-byte aligned
  ElementType type;            // F32 or BF16 (summed in f32, rounded once)
  int64_t count;
  int64_t capacity_bytes;      // bytes of one half of each buffer; count * size(type) must fit
  int rank, world;             // world in [2, kAllReduceMaxRanks]
  int max_blocks;              // grid bound in [1, kAllReduceMaxBlocks]: when ranks share one GPU,
                               // every rank's CTAs must be resident at once (they spin on each
                               // other), so the caller passes SMs / (ranks on that GPU)
};
// Grid: min(max_blocks, ceil(count / (elements per 16 bytes * kAllReduceThreads))) blocks of
// kAllReduceThreads; no shared memory, no host synchronisation (capturable in a CUDA graph).
int launch_one_shot_all_reduce(const OneShotAllReduceParams& params, Stream stream);

}  // namespace rackserve::kernels
