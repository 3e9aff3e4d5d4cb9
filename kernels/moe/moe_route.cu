// MoE routing: sigmoid/softmax scores, correction bias for selection only, group-limited
// top-k, optional renormalisation and routed scaling. One block per token; group scores
// per thread, the top-k as k rounds of a block-wide argmax, with the same tie rule as the
// CPU oracle (the lower expert index wins).
#include "common/device_utils.cuh"
#include "rackserve/kernels/moe_params.h"

namespace rackserve::kernels {

namespace {

constexpr int kMaxExperts = 512;
constexpr int kMaxTopK = 16;
constexpr int kMaxGroups = 64;
constexpr int kThreads = 128;

__global__ void moe_route_kernel(MoeRouteParams p) {
  wait_for_prior_kernel();
  __shared__ float scores[kMaxExperts], choice[kMaxExperts];
  __shared__ float scratch[32];
  const int64_t t = blockIdx.x;
  const float* logits = p.logits + t * p.experts;
  float local_max = -INFINITY;
  for (int64_t e = threadIdx.x; e < p.experts; e += blockDim.x) local_max = fmaxf(local_max, logits[e]);
  const float row_max = block_max(local_max, scratch);
  float local_sum = 0.0f;
  for (int64_t e = threadIdx.x; e < p.experts; e += blockDim.x) {
    float score = p.sigmoid ? 1.0f / (1.0f + expf(-logits[e])) : expf(logits[e] - row_max);
    scores[e] = score;
    local_sum += score;
  }
  const float total = block_sum(local_sum, scratch);
  for (int64_t e = threadIdx.x; e < p.experts; e += blockDim.x) {
    if (!p.sigmoid) scores[e] /= total;
    choice[e] = scores[e] + (p.bias ? p.bias[e] : 0.0f);
  }
  __shared__ bool taken[kMaxExperts];
  __shared__ float group_score[kMaxGroups];
  __shared__ int32_t chosen_ids[kMaxTopK];
  for (int64_t e = threadIdx.x; e < p.experts; e += blockDim.x) taken[e] = false;
  __syncthreads();

  if (p.groups > 1) {
    // A group's score is the sum of its two best choice values; thread g scores group g.
    const int64_t per_group = p.experts / p.groups;
    for (int64_t g = threadIdx.x; g < p.groups; g += blockDim.x) {
      float best = -INFINITY, second = -INFINITY;
      for (int64_t e = g * per_group; e < (g + 1) * per_group; ++e) {
        if (choice[e] > best) { second = best; best = choice[e]; }
        else if (choice[e] > second) second = choice[e];
      }
      group_score[g] = best + second;
    }
    __syncthreads();
    if (threadIdx.x == 0) {  // <= 64 groups: the best top_k_groups, lower index first on ties
      bool keep[kMaxGroups] = {};
      for (int64_t chosen = 0; chosen < p.top_k_groups; ++chosen) {
        int64_t best = -1;
        for (int64_t g = 0; g < p.groups; ++g)
          if (!keep[g] && (best < 0 || group_score[g] > group_score[best])) best = g;
        keep[best] = true;
      }
      for (int64_t g = 0; g < p.groups; ++g) group_score[g] = keep[g] ? 0.0f : -INFINITY;  // reused as a mask
    }
    __syncthreads();
    for (int64_t e = threadIdx.x; e < p.experts; e += blockDim.x)
      if (group_score[e / per_group] == -INFINITY) choice[e] = -INFINITY;
    __syncthreads();
  }

  // top_k rounds of a block-wide argmax over the experts not yet taken: larger choice
  // wins, the lower index on ties (the CPU oracle's rule, -inf entries included).
  __shared__ float round_value[kThreads / 32];
  __shared__ int32_t round_index[kThreads / 32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int64_t k = 0; k < p.top_k; ++k) {
    float value = -INFINITY;
    int32_t index = -1;
    for (int64_t e = threadIdx.x; e < p.experts; e += blockDim.x) {
      if (taken[e]) continue;
      if (index < 0 || choice[e] > value) {  // ascending e per thread: ties keep the lower index
        value = choice[e];
        index = static_cast<int32_t>(e);
      }
    }
    for (int offset = 16; offset > 0; offset >>= 1) {
      const float other_value = __shfl_xor_sync(0xffffffffu, value, offset);
      const int32_t other_index = __shfl_xor_sync(0xffffffffu, index, offset);
      if (other_index >= 0 && (index < 0 || other_value > value || (other_value == value && other_index < index))) {
        value = other_value;
        index = other_index;
      }
    }
    if (lane == 0) {
      round_value[warp] = value;
      round_index[warp] = index;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      int32_t best = -1;
      float best_value = -INFINITY;
      for (int w = 0; w < kThreads / 32; ++w) {
        const int32_t candidate = round_index[w];
        if (candidate >= 0 && (best < 0 || round_value[w] > best_value || (round_value[w] == best_value && candidate < best))) {
          best = candidate;
          best_value = round_value[w];
        }
      }
      chosen_ids[k] = best;
      taken[best] = true;
    }
    __syncthreads();
  }

  if (threadIdx.x == 0) {
    const int64_t slots = p.top_k + p.shared_slots;
    float sum = 0.0f;
    for (int64_t k = 0; k < p.top_k; ++k) sum += scores[chosen_ids[k]];
    for (int64_t k = 0; k < p.top_k; ++k) {
      float weight = scores[chosen_ids[k]];
      if (p.normalize) weight /= sum + 1e-20f;
      p.expert_ids[t * slots + k] = chosen_ids[k];
      p.weights[t * slots + k] = weight * p.scaling;
    }
    for (int64_t s = 0; s < p.shared_slots; ++s) {
      p.expert_ids[t * slots + p.top_k + s] = static_cast<int32_t>(p.experts + s);
      p.weights[t * slots + p.top_k + s] = 1.0f;
    }
  }
}

}  // namespace

int launch_moe_route(const MoeRouteParams& p, Stream stream) {
  if (p.tokens < 0 || p.experts <= 0 || p.experts > kMaxExperts || p.top_k <= 0 || p.top_k > kMaxTopK ||
      p.shared_slots < 0 || p.shared_slots > kMaxTopK ||
      p.top_k > p.experts || p.groups <= 0 || p.groups > kMaxGroups || p.experts % p.groups != 0 ||
      p.top_k_groups <= 0 || p.top_k_groups > p.groups || (p.groups > 1 && p.experts / p.groups < 2) ||
      (p.tokens > 0 && (!p.logits || !p.expert_ids || !p.weights)))
    return cudaErrorInvalidValue;
  if (p.tokens == 0) return cudaSuccess;
  moe_route_kernel<<<static_cast<unsigned>(p.tokens), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(p);
  return launch_status();
}

}  // namespace rackserve::kernels
