// Grouped-query attention over the paged key/value cache: the cache write and causal
// attention (contracts in rackserve/kernels/gqa_params.h).
#include <cuda_bf16.h>

#include "common/device_utils.cuh"
#include "rackserve/kernels/gqa_params.h"

namespace rackserve::kernels {

namespace {

constexpr int kWarps = 4;
constexpr int kMaxPerLane = static_cast<int>(kGqaMaxHeadDim / 32);

__global__ void gqa_cache_write_kernel(GqaCacheWriteParams p) {
  wait_for_prior_kernel();
  const int64_t t = blockIdx.x;
  const int32_t slot = p.slots[t];
  if (slot < 0 || slot >= p.capacity) return;  // padding (-1); the host validates the rest
  const int64_t half = p.kv_heads * p.head_dim;
  const __nv_bfloat16* k = static_cast<const __nv_bfloat16*>(p.k) + t * half;
  const __nv_bfloat16* v = static_cast<const __nv_bfloat16*>(p.v) + t * half;
  __nv_bfloat16* entry = static_cast<__nv_bfloat16*>(p.cache) + static_cast<int64_t>(slot) * 2 * half;
  for (int64_t i = threadIdx.x; i < half; i += blockDim.x) {
    entry[i] = k[i];
    entry[half + i] = v[i];
  }
}

// The sequence whose rows hold token t: the last s with query_start[s] <= t.
__device__ int64_t sequence_of(const int32_t* query_start, int64_t sequences, int64_t t) {
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

template <int kPerLane>
__global__ void __launch_bounds__(kWarps * 32) gqa_attention_kernel(GqaAttentionParams p) {
  wait_for_prior_kernel();
  const int64_t t = blockIdx.x, h = blockIdx.y;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t kv_head = h / (p.heads / p.kv_heads);
  const int64_t s = sequence_of(p.query_start, p.sequences, t);
  const int64_t keys = static_cast<int64_t>(p.positions[t]) + 1;
  const int64_t width = 2 * p.kv_heads * p.head_dim;
  const __nv_bfloat16* cache = static_cast<const __nv_bfloat16*>(p.cache);
  const __nv_bfloat16* q = static_cast<const __nv_bfloat16*>(p.q) + (t * p.heads + h) * p.head_dim;

  // Lane owns elements lane, lane + 32, ... of the head.
  float q_lane[kPerLane], acc[kPerLane];
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    q_lane[i] = __bfloat162float(q[lane + 32 * i]) * p.softmax_scale;
    acc[i] = 0.0f;
  }
  float running_max = -INFINITY, running_sum = 0.0f;
  for (int64_t j = warp; j < keys; j += kWarps) {
    const int64_t page = p.block_table[s * p.max_blocks + j / p.page_size];
    const __nv_bfloat16* entry = cache + (page * p.page_size + j % p.page_size) * width;
    const __nv_bfloat16* key = entry + kv_head * p.head_dim;
    const __nv_bfloat16* value = entry + (p.kv_heads + kv_head) * p.head_dim;
    float partial = 0.0f;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) partial += q_lane[i] * __bfloat162float(key[lane + 32 * i]);
    const float score = warp_sum(partial);
    const float new_max = fmaxf(running_max, score);
    const float rescale = expf(running_max - new_max), weight = expf(score - new_max);
    running_sum = running_sum * rescale + weight;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) acc[i] = acc[i] * rescale + weight * __bfloat162float(value[lane + 32 * i]);
    running_max = new_max;
  }

  // Merge the warps' partial softmaxes.
  __shared__ float warp_max_of[kWarps], warp_sum_of[kWarps];
  __shared__ float warp_acc[kWarps][kGqaMaxHeadDim];
  if (lane == 0) {
    warp_max_of[warp] = running_max;
    warp_sum_of[warp] = running_sum;
  }
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) warp_acc[warp][lane + 32 * i] = acc[i];
  __syncthreads();
  float total_max = -INFINITY;
  for (int w = 0; w < kWarps; ++w) total_max = fmaxf(total_max, warp_max_of[w]);
  float total = 0.0f;
  for (int w = 0; w < kWarps; ++w)
    if (warp_sum_of[w] > 0.0f) total += warp_sum_of[w] * expf(warp_max_of[w] - total_max);
  __nv_bfloat16* out = static_cast<__nv_bfloat16*>(p.output) + (t * p.heads + h) * p.head_dim;
  for (int64_t c = threadIdx.x; c < p.head_dim; c += blockDim.x) {
    float sum = 0.0f;
    for (int w = 0; w < kWarps; ++w)
      if (warp_sum_of[w] > 0.0f) sum += warp_acc[w][c] * expf(warp_max_of[w] - total_max);
    out[c] = __float2bfloat16(sum / total);
  }
}

template <int kPerLane>
int launch_attention(const GqaAttentionParams& p, cudaStream_t stream) {
  gqa_attention_kernel<kPerLane>
      <<<dim3(static_cast<unsigned>(p.tokens), static_cast<unsigned>(p.heads)), kWarps * 32, 0, stream>>>(p);
  return launch_status();
}

}  // namespace

int launch_gqa_cache_write(const GqaCacheWriteParams& p, Stream stream) {
  if (p.tokens < 0 || p.kv_heads <= 0 || p.head_dim <= 0 || p.capacity < 0 ||
      (p.tokens > 0 && (!p.k || !p.v || !p.slots || !p.cache)))
    return cudaErrorInvalidValue;
  if (p.tokens == 0) return cudaSuccess;
  gqa_cache_write_kernel<<<static_cast<unsigned>(p.tokens), 256, 0, static_cast<cudaStream_t>(stream)>>>(p);
  return launch_status();
}

int launch_gqa_attention(const GqaAttentionParams& p, Stream stream) {
  if (p.tokens < 0 || p.sequences < 1 || p.heads <= 0 || p.kv_heads <= 0 || p.heads % p.kv_heads != 0 ||
      p.head_dim <= 0 || p.head_dim % 32 != 0 || p.head_dim > kGqaMaxHeadDim || p.page_size <= 0 ||
      p.tokens > INT32_MAX || p.heads > 65535 ||
      (p.tokens > 0 && (!p.q || !p.cache || !p.query_start || !p.block_table || !p.positions || !p.output)))
    return cudaErrorInvalidValue;
  if (p.tokens == 0) return cudaSuccess;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  switch (p.head_dim / 32) {
    case 1: return launch_attention<1>(p, s);
    case 2: return launch_attention<2>(p, s);
    case 3: return launch_attention<3>(p, s);
    case 4: return launch_attention<4>(p, s);
    case 5: return launch_attention<5>(p, s);
    case 6: return launch_attention<6>(p, s);
    case 7: return launch_attention<7>(p, s);
    default: return launch_attention<8>(p, s);
  }
}

}  // namespace rackserve::kernels
