// MoE routing: sigmoid/softmax scores, correction bias for selection only, group-limited
// top-k, optional renormalisation and routed scaling. One block per token; the selection
// itself runs on one thread over shared memory (E <= 512, k <= 16: microseconds), with
// the same tie rule as the CPU oracle (the lower expert index wins).
#include "common/device_utils.cuh"
#include "rackserve/kernels/moe_params.h"

namespace rackserve::kernels {

namespace {

constexpr int kMaxExperts = 512;
constexpr int kMaxTopK = 16;
constexpr int kMaxGroups = 64;
constexpr int kThreads = 128;

__global__ void moe_route_kernel(MoeRouteParams p) {
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
  __syncthreads();
  if (threadIdx.x != 0) return;

  if (p.groups > 1) {
    const int64_t per_group = p.experts / p.groups;
    float group_score[kMaxGroups];
    for (int64_t g = 0; g < p.groups; ++g) {
      float best = -INFINITY, second = -INFINITY;
      for (int64_t e = g * per_group; e < (g + 1) * per_group; ++e) {
        if (choice[e] > best) { second = best; best = choice[e]; }
        else if (choice[e] > second) second = choice[e];
      }
      group_score[g] = best + second;
    }
    bool keep[kMaxGroups] = {};
    for (int64_t chosen = 0; chosen < p.top_k_groups; ++chosen) {
      int64_t best = -1;
      for (int64_t g = 0; g < p.groups; ++g)
        if (!keep[g] && (best < 0 || group_score[g] > group_score[best])) best = g;
      keep[best] = true;
    }
    for (int64_t e = 0; e < p.experts; ++e)
      if (!keep[e / per_group]) choice[e] = -INFINITY;
  }
  int32_t chosen_ids[kMaxTopK];
  float sum = 0.0f;
  for (int64_t k = 0; k < p.top_k; ++k) {
    int64_t best = -1;
    for (int64_t e = 0; e < p.experts; ++e) {
      bool taken = false;
      for (int64_t j = 0; j < k; ++j) taken |= chosen_ids[j] == e;
      if (!taken && (best < 0 || choice[e] > choice[best])) best = e;
    }
    chosen_ids[k] = static_cast<int32_t>(best);
    sum += scores[best];
  }
  for (int64_t k = 0; k < p.top_k; ++k) {
    float weight = scores[chosen_ids[k]];
    if (p.normalize) weight /= sum + 1e-20f;
    p.expert_ids[t * p.top_k + k] = chosen_ids[k];
    p.weights[t * p.top_k + k] = weight * p.scaling;
  }
}

}  // namespace

int launch_moe_route(const MoeRouteParams& p, Stream stream) {
  if (p.tokens < 0 || p.experts <= 0 || p.experts > kMaxExperts || p.top_k <= 0 || p.top_k > kMaxTopK ||
      p.top_k > p.experts || p.groups <= 0 || p.groups > kMaxGroups || p.experts % p.groups != 0 ||
      p.top_k_groups <= 0 || p.top_k_groups > p.groups || (p.groups > 1 && p.experts / p.groups < 2) ||
      (p.tokens > 0 && (!p.logits || !p.expert_ids || !p.weights)))
    return cudaErrorInvalidValue;
  if (p.tokens == 0) return cudaSuccess;
  moe_route_kernel<<<static_cast<unsigned>(p.tokens), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(p);
  return launch_status();
}

}  // namespace rackserve::kernels
