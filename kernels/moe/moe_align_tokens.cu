// Token sort/align per expert: from expert_ids [tokens, top_k], the per-expert lists of
// (token, slot) pairs padded to the align block (MoeAlignParams::block) with -1, the list of
// active experts and the block -> expert map that the grouped expert kernels launch over
// (moe_params.h).
// One CTA of 16 warps. Warp w owns a contiguous range of pairs; a per-warp histogram and a
// prefix over warps give every warp its starting position inside each expert's list, and
// __match_any_sync ranks equal experts inside each 32-pair step, so the lists keep pair
// order without any order-dependent atomic (stable, deterministic).
#include "common/device_utils.cuh"
#include "common/shared_memory_budget.cuh"
#include "rackserve/kernels/moe_params.h"

namespace rackserve::kernels {

namespace {

constexpr int kWarps = 16;
constexpr int kThreads = kWarps * 32;

// Dynamic shared memory: histogram [kWarps][experts] (then each warp's running position
// per expert), counts [experts], list_start [experts].
constexpr int shared_bytes(int64_t experts) { return static_cast<int>((kWarps + 2) * experts * 4); }

__global__ void __launch_bounds__(kThreads) moe_align_tokens_kernel(MoeAlignParams p) {
  wait_for_prior_kernel();
  extern __shared__ int32_t shared[];
  const int experts = static_cast<int>(p.experts);
  int32_t* histogram = shared;
  int32_t* counts = shared + kWarps * experts;
  int32_t* list_start = counts + experts;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int pairs = static_cast<int>(p.pairs);
  const int per_warp = (pairs + kWarps - 1) / kWarps;
  const int begin = warp * per_warp, end = min(pairs, begin + per_warp);
  const int block = static_cast<int>(p.block);

  // 0. Defaults for everything the lists below do not overwrite.
  for (int i = threadIdx.x; i < kWarps * experts; i += kThreads) histogram[i] = 0;
  for (int64_t i = threadIdx.x; i < p.max_blocks * block; i += kThreads) p.sorted_pairs[i] = -1;
  for (int64_t i = threadIdx.x; i < p.max_blocks; i += kThreads) p.block_slots[i] = -1;
  for (int64_t i = threadIdx.x; i < p.max_active; i += kThreads) {
    p.active_experts[i] = -1;
    p.active_offsets[i] = 0;
    p.active_counts[i] = 0;
  }
  __syncthreads();

  // 1. Pairs per (warp range, expert); integer atomics, so the result does not depend on order.
  for (int pair = begin + lane; pair < end; pair += 32) {
    const int expert = p.expert_ids[pair];
    if (expert >= 0 && expert < experts) atomicAdd(&histogram[warp * experts + expert], 1);
  }
  __syncthreads();

  // 2. Per expert: exclusive prefix over warps (warp w's first rank inside the list) and the total.
  for (int e = threadIdx.x; e < experts; e += kThreads) {
    int running = 0;
    for (int w = 0; w < kWarps; ++w) {
      const int count = histogram[w * experts + e];
      histogram[w * experts + e] = running;
      running += count;
    }
    counts[e] = running;
  }
  __syncthreads();

  // 3. Warp 0: padded list starts and active slots by a scan over experts in ascending
  //    order (each lane a contiguous run of experts), then the outputs of each active expert.
  if (warp == 0) {
    const int run = (experts + 31) / 32, first = lane * run, last = min(experts, first + run);
    int padded = 0, active = 0;
    for (int e = first; e < last; ++e) {
      padded += (counts[e] + block - 1) / block * block;
      active += counts[e] > 0;
    }
    int padded_before = padded, active_before = active;  // inclusive scans, made exclusive below
#pragma unroll
    for (int offset = 1; offset < 32; offset <<= 1) {
      const int padded_up = __shfl_up_sync(0xffffffffu, padded_before, offset);
      const int active_up = __shfl_up_sync(0xffffffffu, active_before, offset);
      if (lane >= offset) {
        padded_before += padded_up;
        active_before += active_up;
      }
    }
    int position = padded_before - padded, slot = active_before - active;
    for (int e = first; e < last; ++e) {
      list_start[e] = position;
      const int count = counts[e];
      if (count == 0) continue;
      const int blocks = (count + block - 1) / block;
      p.active_experts[slot] = e;
      p.active_offsets[slot] = position;
      p.active_counts[slot] = count;
      for (int b = 0; b < blocks; ++b) p.block_slots[position / block + b] = slot;
      position += blocks * block;
      ++slot;
    }
  }
  __syncthreads();

  // 4. Scatter in pair order: warp ranges in order, 32-pair steps in order, lanes in order.
  for (int step = begin; step < end; step += 32) {
    const int pair = step + lane;
    int expert = pair < end ? p.expert_ids[pair] : -1;
    if (expert >= experts) expert = -1;
    const unsigned peers = __match_any_sync(0xffffffffu, expert);
    const int rank = __popc(peers & ((1u << lane) - 1u));
    if (expert >= 0)
      p.sorted_pairs[list_start[expert] + histogram[warp * experts + expert] + rank] = pair;
    __syncwarp();
    if (expert >= 0 && lane == __ffs(peers) - 1) histogram[warp * experts + expert] += __popc(peers);
    __syncwarp();
  }
}

}  // namespace

int launch_moe_align_tokens(const MoeAlignParams& p, Stream stream) {
  if (p.pairs < 0 || p.experts <= 0 || p.experts > kMoeAlignMaxExperts || p.pairs > INT32_MAX / 2 ||
      p.max_active < 0 || p.max_blocks < 0 || p.block < 1 || p.block > kMoeAlignMaxBlock ||
      (p.pairs > 0 && (!p.expert_ids || !p.sorted_pairs || !p.active_experts || !p.active_offsets ||
                       !p.active_counts || !p.block_slots)))
    return cudaErrorInvalidValue;
  const MoeAlignLayout layout = moe_align_layout(p.pairs, 1, p.experts, p.block);
  if (layout.capacity > INT32_MAX) return cudaErrorInvalidValue;
  if (p.max_active < layout.max_active || p.max_blocks < layout.max_blocks) return cudaErrorInvalidValue;
  if (p.pairs == 0) return cudaSuccess;
  const int bytes = shared_bytes(p.experts);
  static_assert(shared_bytes(kMoeAlignMaxExperts) <= kSharedMemoryBudgetBytes, "histogram exceeds the SM120 budget");
  if (int status = opt_in_dynamic_shared_memory(reinterpret_cast<const void*>(moe_align_tokens_kernel), bytes,
                                                "moe_align_tokens"))
    return status;
  moe_align_tokens_kernel<<<1, kThreads, bytes, static_cast<cudaStream_t>(stream)>>>(p);
  return launch_status();
}

}  // namespace rackserve::kernels
