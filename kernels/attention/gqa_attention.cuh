// What the GQA attention kernels share: the token's sequence, the paged key/value rows (bf16,
// or e4m3 with one scale per row), and one warp's online softmax over keys (f32), with lane l
// holding elements l, l + 32, ... of a head of kPerLane * 32 values.
#pragma once

#include <cuda_bf16.h>

#include "attention/mla_cache_e4m3.cuh"
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

// A cache row (key then value of every KV head) of Element (__nv_bfloat16, or uint8_t e4m3
// codes) and the scale its values take (1 for bf16).
template <typename Element>
struct CacheRow {
  const Element* values;
  float scale;
};

// The cache row of position j of sequence s.
template <typename Element>
__device__ __forceinline__ CacheRow<Element> cache_row(const GqaAttentionParams& p, int64_t s, int64_t j) {
  const int64_t page = p.block_table[s * p.max_blocks + j / p.page_size];
  const int64_t slot = page * p.page_size + j % p.page_size;
  return {static_cast<const Element*>(p.cache) + slot * 2 * p.kv_heads * p.head_dim,
          p.cache_scales ? p.cache_scales[slot] : 1.0f};
}

__device__ __forceinline__ float cached_value(const __nv_bfloat16* values, int64_t i) {
  return __bfloat162float(values[i]);
}
__device__ __forceinline__ float cached_value(const uint8_t* values, int64_t i) { return decode_e4m3(values[i]); }

template <int kPerLane>
struct WarpSoftmax {
  float q[kPerLane];  // the query, times the softmax scale
  float acc[kPerLane] = {};
  float running_max = -INFINITY, running_sum = 0.0f;

  __device__ void load_query(const __nv_bfloat16* query, float scale, int lane) {
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) q[i] = __bfloat162float(query[lane + 32 * i]) * scale;
  }

  // Adds the key and value of `kv_head` in `row`; every lane calls it.
  template <typename Element>
  __device__ void add(const CacheRow<Element>& row, int64_t kv_head, int64_t kv_heads, int64_t head_dim, int lane) {
    const Element* key = row.values + kv_head * head_dim;
    const Element* value = row.values + (kv_heads + kv_head) * head_dim;
    float k[kPerLane], v[kPerLane];
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      k[i] = cached_value(key, lane + 32 * i) * row.scale;
      v[i] = cached_value(value, lane + 32 * i) * row.scale;
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

// Calls launcher.template run<kPerLane, Element>() for head_dim = 32 * kPerLane (1..8) and
// the cache's element type (uint8_t e4m3 codes when e4m3, else __nv_bfloat16).
template <typename Element, typename Launcher>
int dispatch_head_dim(int64_t head_dim, const Launcher& launcher) {
  switch (head_dim / 32) {
    case 1: return launcher.template run<1, Element>();
    case 2: return launcher.template run<2, Element>();
    case 3: return launcher.template run<3, Element>();
    case 4: return launcher.template run<4, Element>();
    case 5: return launcher.template run<5, Element>();
    case 6: return launcher.template run<6, Element>();
    case 7: return launcher.template run<7, Element>();
    default: return launcher.template run<8, Element>();
  }
}
template <typename Launcher>
int dispatch_cache(int64_t head_dim, bool e4m3, const Launcher& launcher) {
  return e4m3 ? dispatch_head_dim<uint8_t>(head_dim, launcher) : dispatch_head_dim<__nv_bfloat16>(head_dim, launcher);
}

}  // namespace rackserve::kernels::gqa
