// Grouped-query attention over the paged key/value cache (bf16, or e4m3 with a scale per
// entry): the cache write and causal attention for any batch (contracts in
// rackserve/kernels/gqa_params.h).
#include "attention/gqa_attention.cuh"

namespace rackserve::kernels {

namespace {

constexpr int kWarps = 4;

__global__ void gqa_cache_write_kernel(GqaCacheWriteParams p) {
  wait_for_prior_kernel();
  __shared__ float scratch[32];
  const int64_t t = blockIdx.x;
  const int32_t slot = p.slots[t];
  // Padding (-1) writes nothing; so does a slot outside the cache (the CPU backend throws on
  // one; the slots live on the device here, so a bad one only leaves its row stale).
  if (slot < 0 || slot >= p.capacity) return;
  const int64_t half = p.kv_heads * p.head_dim;
  const __nv_bfloat16* k = static_cast<const __nv_bfloat16*>(p.k) + t * half;
  const __nv_bfloat16* v = static_cast<const __nv_bfloat16*>(p.v) + t * half;
  if (!p.cache_scales) {
    __nv_bfloat16* entry = static_cast<__nv_bfloat16*>(p.cache) + static_cast<int64_t>(slot) * 2 * half;
    for (int64_t i = threadIdx.x; i < half; i += blockDim.x) {
      entry[i] = k[i];
      entry[half + i] = v[i];
    }
    return;
  }
  // E4M3: one scale over the token's keys and values (the values a bf16 cache would hold).
  float amax = 0.0f;
  for (int64_t i = threadIdx.x; i < half; i += blockDim.x)
    amax = fmaxf(amax, fmaxf(fabsf(__bfloat162float(k[i])), fabsf(__bfloat162float(v[i]))));
  const float scale = e4m3_entry_scale(block_max(amax, scratch));
  uint8_t* entry = static_cast<uint8_t*>(p.cache) + static_cast<int64_t>(slot) * 2 * half;
  for (int64_t i = threadIdx.x; i < half; i += blockDim.x) {
    entry[i] = encode_e4m3(__bfloat162float(k[i]), scale);
    entry[half + i] = encode_e4m3(__bfloat162float(v[i]), scale);
  }
  if (threadIdx.x == 0) p.cache_scales[slot] = scale;
}

// One CTA per (token, query head); its warps take every kWarps-th key, then merge.
template <int kPerLane, typename Element>
__global__ void __launch_bounds__(kWarps * 32) gqa_attention_kernel(GqaAttentionParams p) {
  wait_for_prior_kernel();
  const int64_t t = blockIdx.x, h = blockIdx.y;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t kv_head = h / (p.heads / p.kv_heads);
  const int64_t s = gqa::sequence_of(p.query_start, p.sequences, t);
  const int64_t keys = static_cast<int64_t>(p.positions[t]) + 1;

  gqa::WarpSoftmax<kPerLane> softmax;
  softmax.load_query(static_cast<const __nv_bfloat16*>(p.q) + (t * p.heads + h) * p.head_dim, p.softmax_scale, lane);
  for (int64_t j = warp; j < keys; j += kWarps)
    softmax.add(gqa::cache_row<Element>(p, s, j), kv_head, p.kv_heads, p.head_dim, lane);

  // Merge the warps' partial softmaxes (a warp without keys has running_sum 0).
  __shared__ float warp_max_of[kWarps], warp_sum_of[kWarps];
  __shared__ float warp_acc[kWarps][kGqaMaxHeadDim];
  if (lane == 0) {
    warp_max_of[warp] = softmax.running_max;
    warp_sum_of[warp] = softmax.running_sum;
  }
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) warp_acc[warp][lane + 32 * i] = softmax.acc[i];
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
    out[c] = __float2bfloat16(total > 0.0f ? sum / total : 0.0f);  // no keys (outside the contract): 0
  }
}

struct AttentionLauncher {
  const GqaAttentionParams& p;
  cudaStream_t stream;
  template <int kPerLane, typename Element>
  int run() const {
    const dim3 grid(static_cast<unsigned>(p.tokens), static_cast<unsigned>(p.heads));
    gqa_attention_kernel<kPerLane, Element><<<grid, kWarps * 32, 0, stream>>>(p);
    return launch_status();
  }
};

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
  return gqa::dispatch_cache(p.head_dim, p.cache_scales != nullptr,
                             AttentionLauncher{p, static_cast<cudaStream_t>(stream)});
}

}  // namespace rackserve::kernels
