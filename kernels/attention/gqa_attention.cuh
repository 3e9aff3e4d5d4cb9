// What the GQA attention kernels share: the token's sequence, the paged key/value rows, and
// one warp's online softmax over keys (f32), with lane l holding elements l, l + 32, ... of a
// head of kPerLane * 32 values.
#pragma once

#include <cuda_bf16.h>

#include "common/device_utils.cuh"
#include "rackserve/kernels/gqa_params.h"

namespace rackserve::kernels::gqa {

// The sequence whose rows hold token t: the last s with query_start[s] <= t.
__device__ __forceinline__ int64_t sequence_of(const int32_t* query_start, int64_t sequences, int64_t t) {
  int64_t low = 0, high = sequences - 1;
  while (low < high) {
    const int64_t mid = (low + high + 1) / 2;
    if (query_start[mid] <= t)
      low = mid;
    else
      high = mid - 1;
  }
  return low;
}

// The cache row (key then value of every KV head) of position j of sequence s.
__device__ __forceinline__ const __nv_bfloat16* cache_row(const GqaAttentionParams& p, int64_t s, int64_t j) {
  const int64_t page = p.block_table[s * p.max_blocks + j / p.page_size];
  return static_cast<const __nv_bfloat16*>(p.cache) + (page * p.page_size + j % p.page_size) * 2 * p.kv_heads * p.head_dim;
}

template <int kPerLane>
struct WarpSoftmax {
  float q[kPerLane];  // the query, times the softmax scale
  float acc[kPerLane] = {};
  float running_max = -INFINITY, running_sum = 0.0f;

  __device__ void load_query(const __nv_bfloat16* query, float scale, int lane) {
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) q[i] = __bfloat162float(query[lane + 32 * i]) * scale;
  }

  // Adds key `key` with value `value` (rows of this warp's KV head); every lane calls it.
  __device__ void add(const __nv_bfloat16* key, const __nv_bfloat16* value, int lane) {
    float k[kPerLane], v[kPerLane];
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      k[i] = __bfloat162float(key[lane + 32 * i]);
      v[i] = __bfloat162float(value[lane + 32 * i]);
    }
    float partial = 0.0f;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) partial += q[i] * k[i];
    const float score = warp_sum(partial);
    const float new_max = fmaxf(running_max, score);
    const float rescale = expf(running_max - new_max), weight = expf(score - new_max);
    running_sum = running_sum * rescale + weight;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) acc[i] = acc[i] * rescale + weight * v[i];
    running_max = new_max;
  }
};

// Calls fn.template operator()<kPerLane>() for head_dim = 32 * kPerLane (1..8).
template <typename Fn>
int dispatch_head_dim(int64_t head_dim, Fn&& fn) {
  switch (head_dim / 32) {
    case 1: return fn.template operator()<1>();
    case 2: return fn.template operator()<2>();
    case 3: return fn.template operator()<3>();
    case 4: return fn.template operator()<4>();
    case 5: return fn.template operator()<5>();
    case 6: return fn.template operator()<6>();
    case 7: return fn.template operator()<7>();
    default: return fn.template operator()<8>();
  }
}

}  // namespace rackserve::kernels::gqa
