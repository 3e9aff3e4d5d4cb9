// MoE routing: sigmoid/softmax scores, correction bias for selection only, group-limited
// top-k, optional renormalisation and routed scaling, then the always-on shared slots. One
// warp per token, no block barriers: a decode step routes a handful of tokens, so the latency
// of one token's chain is the cost. Lane l holds experts l, l + 32, ... in registers; group
// scores, the group choice and the top-k are warp reductions, each with the CPU oracle's tie
// rule (the lower index wins, -inf entries included).
#include "common/device_utils.cuh"
#include "rackserve/kernels/moe_params.h"

namespace rackserve::kernels {

namespace {

constexpr int kMaxExperts = 512;
constexpr int kMaxPerLane = kMaxExperts / 32;
constexpr int kMaxTopK = 16;
constexpr int kMaxGroups = 64;
constexpr int kWarps = 4;  // tokens per CTA
constexpr unsigned kAll = 0xffffffffu;

// The better of (value, index) and the other lane's pair at `offset`: the larger value, the
// lower index on ties; index < 0 is "none".
__device__ __forceinline__ void argmax_step(float& value, int& index, int offset) {
  const float other_value = __shfl_xor_sync(kAll, value, offset);
  const int other_index = __shfl_xor_sync(kAll, index, offset);
  if (other_index >= 0 && (index < 0 || other_value > value || (other_value == value && other_index < index))) {
    value = other_value;
    index = other_index;
  }
}
// Every lane gets the warp's best pair.
__device__ __forceinline__ void warp_argmax(float& value, int& index) {
  for (int offset = 16; offset > 0; offset >>= 1) argmax_step(value, index, offset);
}

// The largest two of a lane's (first >= second) pair and the other lane's, across the warp.
__device__ __forceinline__ void warp_top2(float& first, float& second) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float other_first = __shfl_xor_sync(kAll, first, offset);
    const float other_second = __shfl_xor_sync(kAll, second, offset);
    if (other_first > first) {
      second = fmaxf(first, other_second);
      first = other_first;
    } else {
      second = fmaxf(second, other_first);
    }
  }
}

__global__ void __launch_bounds__(kWarps * 32) moe_route_kernel(MoeRouteParams p) {
  wait_for_prior_kernel();
  __shared__ float group_scores[kWarps][kMaxGroups];
  __shared__ bool kept_groups[kWarps][kMaxGroups];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t t = static_cast<int64_t>(blockIdx.x) * kWarps + warp;
  if (t >= p.tokens) return;  // the whole warp
  const int experts = static_cast<int>(p.experts), per_lane = (experts + 31) / 32;
  const float* logits = p.logits + t * p.experts;

  // Scores (the weights come from these) and choices (scores + the selection bias); experts
  // past the end get -inf and are never taken.
  float score[kMaxPerLane], choice[kMaxPerLane];
  uint32_t taken = 0;  // bit r: expert r * 32 + lane is out of the running
  float row_max = -INFINITY;
  if (!p.sigmoid) {
    for (int r = 0; r < per_lane; ++r)
      if (r * 32 + lane < experts) row_max = fmaxf(row_max, logits[r * 32 + lane]);
    row_max = warp_max(row_max);
  }
  float local_sum = 0.0f;
#pragma unroll
  for (int r = 0; r < kMaxPerLane; ++r) {
    const int e = r * 32 + lane;
    if (r >= per_lane || e >= experts) {
      score[r] = 0.0f, choice[r] = -INFINITY;
      taken |= 1u << r;
      continue;
    }
    score[r] = p.sigmoid ? 1.0f / (1.0f + expf(-logits[e])) : expf(logits[e] - row_max);
    local_sum += score[r];
  }
  if (!p.sigmoid) {
    const float total = warp_sum(local_sum);
#pragma unroll
    for (int r = 0; r < kMaxPerLane; ++r) score[r] /= total;
  }
#pragma unroll
  for (int r = 0; r < kMaxPerLane; ++r)
    if (!(taken >> r & 1u)) choice[r] = score[r] + (p.bias ? p.bias[r * 32 + lane] : 0.0f);

  if (p.groups > 1) {
    // A group's score is the sum of its two best choices; only the best top_k_groups groups
    // (lower index on ties) stay eligible.
    const int per_group = experts / static_cast<int>(p.groups);
    for (int g = 0; g < p.groups; ++g) {
      float first = -INFINITY, second = -INFINITY;
#pragma unroll
      for (int r = 0; r < kMaxPerLane; ++r) {
        const int e = r * 32 + lane;
        if ((taken >> r & 1u) || e / per_group != g) continue;
        if (choice[r] > first) {
          second = first;
          first = choice[r];
        } else {
          second = fmaxf(second, choice[r]);
        }
      }
      warp_top2(first, second);
      if (lane == 0) {
        group_scores[warp][g] = first + second;
        kept_groups[warp][g] = false;
      }
    }
    __syncwarp();
    for (int chosen = 0; chosen < p.top_k_groups; ++chosen) {
      float value = -INFINITY;
      int index = -1;
      for (int g = lane; g < p.groups; g += 32)  // ascending groups on this lane
        if (!kept_groups[warp][g] && (index < 0 || group_scores[warp][g] > value))
          value = group_scores[warp][g], index = g;
      warp_argmax(value, index);
      __syncwarp();  // every lane's reads of kept_groups before lane 0 writes (shuffles do not order memory)
      if (lane == 0) kept_groups[warp][index] = true;
      __syncwarp();
    }
#pragma unroll
    for (int r = 0; r < kMaxPerLane; ++r)
      if (!(taken >> r & 1u) && !kept_groups[warp][(r * 32 + lane) / per_group]) choice[r] = -INFINITY;
  }

  // top_k rounds of a warp argmax over the experts not yet taken.
  int chosen_ids[kMaxTopK];
  float chosen_scores[kMaxTopK];
  for (int k = 0; k < p.top_k; ++k) {
    float value = -INFINITY;
    int index = -1;
#pragma unroll
    for (int r = 0; r < kMaxPerLane; ++r)  // ascending experts on this lane: ties keep the lower
      if (!(taken >> r & 1u) && (index < 0 || choice[r] > value)) value = choice[r], index = r * 32 + lane;
    warp_argmax(value, index);
    float winner_score = 0.0f;
#pragma unroll
    for (int r = 0; r < kMaxPerLane; ++r)
      if (r * 32 + lane == index) {
        winner_score = score[r];
        taken |= 1u << r;
      }
    chosen_ids[k] = index;
    chosen_scores[k] = __shfl_sync(kAll, winner_score, index % 32);
  }

  if (lane == 0) {
    const int64_t slots = p.top_k + p.shared_slots;
    float sum = 0.0f;
    for (int k = 0; k < p.top_k; ++k) sum += chosen_scores[k];
    for (int k = 0; k < p.top_k; ++k) {
      float weight = chosen_scores[k];
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
  const unsigned blocks = static_cast<unsigned>((p.tokens + kWarps - 1) / kWarps);
  moe_route_kernel<<<blocks, kWarps * 32, 0, static_cast<cudaStream_t>(stream)>>>(p);
  return launch_status();
}

}  // namespace rackserve::kernels
