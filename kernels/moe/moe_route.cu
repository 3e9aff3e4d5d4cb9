// MoE routing: sigmoid/softmax scores, correction bias for selection only, group-limited
// top-k, optional renormalisation and routed scaling, then the always-on shared slots. One CTA
// per token and one thread per expert: every choice is a rank, the number of entries ahead of
// an entry in (value descending, index ascending) order, counted over shared memory. A token's
// latency is then a few hundred independent shared loads per thread instead of top_k chains of
// dependent warp shuffles (the one-warp-per-token kernel this replaces took 23 us per call on
// the H200 at batch 1, 2026-12-05), and the work per token is about the same (8 warps x ~1k
// instructions for 256 experts). Ties and order follow the CPU oracle (top_k_indices): the
// larger value first, the lower index on ties; NaN ranks as -inf, so ranks stay a permutation.
#include "common/device_utils.cuh"
#include "rackserve/kernels/moe_params.h"

namespace rackserve::kernels {

namespace {

constexpr int kMaxExperts = 512;
constexpr int kMaxTopK = 16;
constexpr int kMaxGroups = 64;

// The ranking key of a value: itself, or -inf for NaN.
__device__ __forceinline__ float rank_key(float value) { return isnan(value) ? -INFINITY : value; }

// How many of keys[begin, end) rank ahead of (key, index): larger, or equal with a lower index.
__device__ __forceinline__ int rank_among(const float* keys, int begin, int end, float key, int index) {
  int rank = 0;
#pragma unroll 8
  for (int j = begin; j < end; ++j) {
    const float other = keys[j];
    rank += other > key || (other == key && j < index);
  }
  return rank;
}

// Block: one thread per expert (blockDim.x = experts rounded up to 32, <= kMaxExperts).
__global__ void __launch_bounds__(kMaxExperts) moe_route_kernel(MoeRouteParams p) {
  wait_for_prior_kernel();
  __shared__ float keys[kMaxExperts];
  __shared__ float group_best[2][kMaxGroups];  // each group's best and second-best choice
  __shared__ float group_keys[kMaxGroups];
  __shared__ bool kept_groups[kMaxGroups];
  __shared__ float chosen_scores[kMaxTopK];
  __shared__ float scratch[32];
  const int64_t t = blockIdx.x;
  const int e = threadIdx.x, experts = static_cast<int>(p.experts);
  const bool real = e < experts;
  const float logit = real ? p.logits[t * p.experts + e] : -INFINITY;

  // Scores (the weights come from these) and choices (scores + the selection bias).
  float score;
  if (p.sigmoid) {
    score = 1.0f / (1.0f + expf(-logit));
  } else {
    const float row_max = block_max(logit, scratch);
    const float exponential = real ? expf(logit - row_max) : 0.0f;
    score = exponential / block_sum(exponential, scratch);
  }
  float key = real ? rank_key(score + (p.bias ? p.bias[e] : 0.0f)) : -INFINITY;
  keys[e] = key;
  __syncthreads();

  if (p.groups > 1) {
    // A group's score is the sum of its two best choices; only the best top_k_groups groups
    // stay eligible (per_group >= 2, so every group has ranks 0 and 1).
    const int per_group = experts / static_cast<int>(p.groups), group = e / per_group;
    if (real) {
      const int rank = rank_among(keys, group * per_group, (group + 1) * per_group, key, e);
      if (rank < 2) group_best[rank][group] = key;
    }
    __syncthreads();
    if (e < p.groups) group_keys[e] = rank_key(group_best[0][e] + group_best[1][e]);
    __syncthreads();
    if (e < p.groups) kept_groups[e] = rank_among(group_keys, 0, static_cast<int>(p.groups), group_keys[e], e) < p.top_k_groups;
    __syncthreads();
    if (real && !kept_groups[group]) key = -INFINITY;
    keys[e] = key;  // every thread read the group's keys before the barrier above
    __syncthreads();
  }

  // The top_k: slot = rank, so the slots hold the choices in descending order as on the CPU.
  const int rank = real ? rank_among(keys, 0, experts, key, e) : kMaxExperts;
  const bool chosen = rank < p.top_k;
  if (chosen) chosen_scores[rank] = score;
  __syncthreads();
  const int64_t slots = p.top_k + p.shared_slots;
  if (chosen) {
    float weight = score;
    if (p.normalize) {
      float sum = 0.0f;  // in slot order, as the CPU sums
      for (int k = 0; k < p.top_k; ++k) sum += chosen_scores[k];
      weight /= sum + 1e-20f;
    }
    p.expert_ids[t * slots + rank] = e;
    p.weights[t * slots + rank] = weight * p.scaling;
  }
  if (e < p.shared_slots) {
    p.expert_ids[t * slots + p.top_k + e] = static_cast<int32_t>(p.experts + e);
    p.weights[t * slots + p.top_k + e] = 1.0f;
  }
}

}  // namespace

int launch_moe_route(const MoeRouteParams& p, Stream stream) {
  if (p.tokens < 0 || p.tokens > INT32_MAX || p.experts <= 0 || p.experts > kMaxExperts || p.top_k <= 0 ||
      p.top_k > kMaxTopK || p.shared_slots < 0 || p.shared_slots > kMaxTopK || p.top_k > p.experts ||
      p.groups <= 0 || p.groups > kMaxGroups || p.experts % p.groups != 0 || p.top_k_groups <= 0 ||
      p.top_k_groups > p.groups || (p.groups > 1 && p.experts / p.groups < 2) ||
      (p.tokens > 0 && (!p.logits || !p.expert_ids || !p.weights)))
    return cudaErrorInvalidValue;
  if (p.tokens == 0) return cudaSuccess;
  const unsigned threads = static_cast<unsigned>((p.experts + 31) / 32 * 32);
  moe_route_kernel<<<static_cast<unsigned>(p.tokens), threads, 0, static_cast<cudaStream_t>(stream)>>>(p);
  return launch_status();
}

}  // namespace rackserve::kernels
