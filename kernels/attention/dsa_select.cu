// DeepSeek sparse attention's choice of key positions (launch_dsa_select, dsa_params.h): one
// block per query token. A query with at most top_k keys takes them all (0..position). Otherwise
// a radix select over the scores' order-preserving 32-bit keys finds the top_k-th largest
// score in four 8-bit passes (a 256-bin shared histogram each, lanes of a warp that hit one bin
// adding once; the bin found by a warp suffix scan), and an ordered compaction
// writes every position scoring above it plus, in position order, as many scoring exactly it
// as top_k still needs: the CPU oracle's rule (a tie goes to the lower position), and the
// output comes out ascending without a sort. Each pass reads the token's scores once (n
// floats); 5 reads in all, ~4 MB for a 200k-key context.
#include <cuda_runtime.h>

#include <cstdint>

#include "common/device_utils.cuh"
#include "rackserve/kernels/dsa_params.h"

namespace rackserve::kernels {

namespace {

constexpr int kThreads = 512, kWarps = kThreads / 32;
constexpr int kBins = 256;

// Larger float, larger key (IEEE order); -0 counts as +0 so equal scores are equal keys, and
// every NaN is key 0, below -inf (the CPU oracle's rule: a NaN score is never preferred).
__device__ __forceinline__ uint32_t order_key(float score) {
  if (isnan(score)) return 0u;
  if (score == 0.0f) score = 0.0f;
  const uint32_t bits = __float_as_uint(score);
  return (bits & 0x80000000u) ? ~bits : bits | 0x80000000u;
}

// Adds one to histogram[bin] for every lane with bin != kNoBin; lanes of a warp sharing a bin
// add once (the top bits of the keys crowd a row's scores into a few bins, and same-address
// shared atomics serialize). Every lane of the warp must call it.
constexpr uint32_t kNoBin = 0xffffffffu;
__device__ __forceinline__ void count_bin(unsigned* histogram, uint32_t bin) {
  const unsigned peers = __match_any_sync(0xffffffffu, bin);
  if (bin != kNoBin && static_cast<int>(threadIdx.x % 32) == __ffs(peers) - 1) atomicAdd(&histogram[bin], __popc(peers));
}

// Exclusive prefix count of `flag` over the block in thread order; `total` gets the block's
// count. `warp_counts` holds kWarps ints; every thread must call it.
__device__ __forceinline__ int block_exclusive_count(bool flag, int* warp_counts, int& total) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const unsigned ballot = __ballot_sync(0xffffffffu, flag);
  __syncthreads();  // the previous call's readers are done with warp_counts
  if (lane == 0) warp_counts[warp] = __popc(ballot);
  __syncthreads();
  int before = __popc(ballot & ((1u << lane) - 1u));
  total = 0;
  for (int w = 0; w < kWarps; ++w) {
    if (w < warp) before += warp_counts[w];
    total += warp_counts[w];
  }
  return before;
}

__global__ void __launch_bounds__(kThreads)
    dsa_select_kernel(DsaQueryParams p, int64_t token_begin, const float* scores, int64_t score_stride,
                      int32_t* key_positions) {
  wait_for_prior_kernel();
  __shared__ unsigned histogram[kBins];
  __shared__ uint32_t chosen_prefix;
  __shared__ int chosen_remaining;
  __shared__ int warp_counts[kWarps];
  const int64_t row = blockIdx.x, t = token_begin + row;
  const int keys = p.positions[t] + 1;
  const int top_k = static_cast<int>(p.top_k);
  int32_t* out = key_positions + t * p.top_k;
  if (keys <= top_k) {
    for (int i = threadIdx.x; i < top_k; i += blockDim.x) out[i] = i < keys ? i : -1;
    return;
  }
  const float* score = scores + row * score_stride;
  // Radix select: after the pass at `shift`, `prefix` holds the top bits of the top_k-th largest
  // key and `remaining` how many of the keys sharing those bits still belong to the top_k.
  uint32_t prefix = 0, mask = 0;
  int remaining = top_k;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int b = threadIdx.x; b < kBins; b += blockDim.x) histogram[b] = 0;
    __syncthreads();
    for (int base = 0; base < keys; base += blockDim.x) {  // whole warps in every iteration
      const int i = base + static_cast<int>(threadIdx.x);
      const uint32_t key = i < keys ? order_key(score[i]) : 0u;
      count_bin(histogram, i < keys && (key & mask) == prefix ? (key >> shift) & 0xffu : kNoBin);
    }
    __syncthreads();
    if (threadIdx.x < 32) {  // the bin holding the remaining-th largest: lane l owns bins [8l, 8l + 8)
      const int lane = static_cast<int>(threadIdx.x);
      int mine = 0;
      for (int b = 8 * lane; b < 8 * lane + 8; ++b) mine += static_cast<int>(histogram[b]);
      int from_here = mine;  // keys in bins >= 8 * lane
      for (int offset = 1; offset < 32; offset <<= 1) {
        const int higher = __shfl_down_sync(0xffffffffu, from_here, offset);
        if (lane + offset < 32) from_here += higher;
      }
      int above = from_here - mine;  // keys in the bins of higher lanes
      if (above < remaining && from_here >= remaining) {  // exactly one lane
        for (int b = 8 * lane + 7; b >= 8 * lane; --b) {
          if (above + static_cast<int>(histogram[b]) >= remaining) {
            chosen_prefix = prefix | (static_cast<uint32_t>(b) << shift);
            chosen_remaining = remaining - above;
            break;
          }
          above += static_cast<int>(histogram[b]);
        }
      }
    }
    __syncthreads();
    prefix = chosen_prefix;
    remaining = chosen_remaining;
    mask |= 0xffu << shift;
  }
  // Ordered compaction: every key above the threshold, and the first `remaining` equal to it.
  const uint32_t threshold = prefix;
  int equal_before = 0, written = 0;
  for (int base = 0; base < keys && written < top_k; base += blockDim.x) {  // block-uniform bounds
    const int i = base + static_cast<int>(threadIdx.x);
    const uint32_t key = i < keys ? order_key(score[i]) : 0u;
    const bool above = i < keys && key > threshold, equal = i < keys && key == threshold;
    int equal_total, taken_total;
    const int equal_rank = equal_before + block_exclusive_count(equal, warp_counts, equal_total);
    const bool take = above || (equal && equal_rank < remaining);
    const int rank = written + block_exclusive_count(take, warp_counts, taken_total);
    if (take) out[rank] = i;
    equal_before += equal_total;
    written += taken_total;
  }
}

}  // namespace

int launch_dsa_select(const DsaQueryParams& p, int64_t token_begin, int64_t token_end, const float* scores,
                      int64_t score_stride, int32_t* key_positions, Stream stream) {
  if (!dsa_query_supported(p) || token_begin < 0 || token_end > p.tokens || token_begin > token_end ||
      p.top_k > 2147483647 || (token_end > token_begin && !key_positions))
    return cudaErrorInvalidValue;
  if (token_end == token_begin) return cudaSuccess;
  if (token_end - token_begin > 2147483647) return cudaErrorInvalidConfiguration;
  // scores may be nullptr (and score_stride anything) when no token of the range has more
  // than top_k keys; the kernel reads them only for such tokens.
  dsa_select_kernel<<<static_cast<unsigned>(token_end - token_begin), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      p, token_begin, scores, score_stride, key_positions);
  return launch_status();
}

}  // namespace rackserve::kernels
