// Absorbed MLA attention over the paged latent cache, in three launches:
//   1. q_latent[t, h] = W_UK[h]^T q_nope[t, h]                  (f32 workspace)
//   2. out_latent[t, h] = softmax(q_latent . latent_j + q_rope . rope_j) . latent_j
//      over the cache positions j <= position[t] of the token's sequence, with an online
//      softmax per warp and a merge of the warps' partial states;
//   3. output[t, h] = W_UV[h] out_latent[t, h]                   (bf16)
// Steps 1 and 3 live in mla_absorb.cu (each head's weights read once per step). Step 2
// here runs one block per (token, head): the straightforward version that defines the
// numerics; the split-KV decode kernel (mla_decode_split_kv.cu) replaces it for decode.
// An E4M3 cache is dequantized on read to f32 (e4m3 * the entry's scale, as the CPU oracle).
#include "attention/mla_cache_e4m3.cuh"
#include "attention/mla_sparse_keys.cuh"
#include "common/device_utils.cuh"
#include "rackserve/kernels/mla_params.h"

namespace rackserve::kernels {

namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxLatentPerLane = 16;  // kv_lora_rank <= 512
constexpr int kMaxRope = 128;

__device__ int find_sequence(const int32_t* query_start, int64_t sequences, int64_t token) {
  int low = 0, high = static_cast<int>(sequences) - 1;
  while (low < high) {  // last s with query_start[s] <= token
    int middle = (low + high + 1) / 2;
    if (query_start[middle] <= token) low = middle; else high = middle - 1;
  }
  return low;
}

// Element `index` of the cache as f32; `scale` is the entry's (E4M3 only).
template <MlaCacheType kCache>
__device__ __forceinline__ float cache_value(const void* cache, int64_t index, float scale) {
  if constexpr (kCache == MlaCacheType::BF16) {
    return __bfloat162float(static_cast<const __nv_bfloat16*>(cache)[index]);
  } else {
    return decode_e4m3(static_cast<const uint8_t*>(cache)[index]) * scale;
  }
}

template <MlaCacheType kCache>
__global__ void attention_kernel(MlaAttentionParams p) {
  wait_for_prior_kernel();
  __shared__ float q_rope[kMaxRope];
  __shared__ float warp_max_score[kWarps], warp_sum_exp[kWarps];
  __shared__ float merged[kWarps][kMaxLatentPerLane * 32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t item = blockIdx.x, t = item / p.heads;
  const int per_lane = static_cast<int>(p.lora / 32);
  const float* q_latent = p.q_latent + item * p.lora;
  const __nv_bfloat16* q = static_cast<const __nv_bfloat16*>(p.q) + item * (p.nope + p.rope);
  for (int64_t i = threadIdx.x; i < p.rope; i += blockDim.x) q_rope[i] = __bfloat162float(q[p.nope + i]);
  float my_q[kMaxLatentPerLane];
#pragma unroll
  for (int r = 0; r < kMaxLatentPerLane; ++r) my_q[r] = r < per_lane ? q_latent[lane + 32 * r] : 0.0f;
  __syncthreads();

  const int sequence = find_sequence(p.query_start, p.sequences, t);
  const int32_t* pages = p.block_table + static_cast<int64_t>(sequence) * p.max_blocks;
  const MlaQueryKeys keys = mla_query_keys(p.positions, p.key_positions, p.top_k, t);
  const int64_t width = p.lora + p.rope;

  float running_max = -INFINITY, running_sum = 0.0f, accumulator[kMaxLatentPerLane] = {};
  for (int i = warp; i < keys.count; i += kWarps) {
    const int j = keys.position(i);
    const int64_t slot = static_cast<int64_t>(pages[j / p.page_size]) * p.page_size + j % p.page_size;
    const int64_t entry = slot * width;
    const float scale = kCache == MlaCacheType::E4M3 ? p.cache_scales[slot] : 1.0f;
    float latent[kMaxLatentPerLane];
    float partial = 0.0f;
#pragma unroll
    for (int r = 0; r < kMaxLatentPerLane; ++r) {
      latent[r] = r < per_lane ? cache_value<kCache>(p.cache, entry + lane + 32 * r, scale) : 0.0f;
      partial = fmaf(my_q[r], latent[r], partial);
    }
    for (int64_t c = lane; c < p.rope; c += 32)
      partial = fmaf(q_rope[c], cache_value<kCache>(p.cache, entry + p.lora + c, scale), partial);
    const float score = warp_sum(partial) * p.softmax_scale;
    const float new_max = fmaxf(running_max, score);
    const float rescale = expf(running_max - new_max), weight = expf(score - new_max);
    running_sum = running_sum * rescale + weight;
#pragma unroll
    for (int r = 0; r < kMaxLatentPerLane; ++r) accumulator[r] = accumulator[r] * rescale + weight * latent[r];
    running_max = new_max;
  }
  // Merge the warps' (max, sum, accumulator) states.
  if (lane == 0) {
    warp_max_score[warp] = running_max;
    warp_sum_exp[warp] = running_sum;
  }
  __syncthreads();
  float global_max = -INFINITY;
  for (int w = 0; w < kWarps; ++w) global_max = fmaxf(global_max, warp_max_score[w]);
  const float my_scale = running_max == -INFINITY ? 0.0f : expf(running_max - global_max);
#pragma unroll
  for (int r = 0; r < kMaxLatentPerLane; ++r)
    if (r < per_lane) merged[warp][lane + 32 * r] = accumulator[r] * my_scale;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < kWarps; ++w)
    total += warp_max_score[w] == -INFINITY ? 0.0f : warp_sum_exp[w] * expf(warp_max_score[w] - global_max);
  for (int64_t c = threadIdx.x; c < p.lora; c += blockDim.x) {
    float sum = 0.0f;
    for (int w = 0; w < kWarps; ++w) sum += merged[w][c];
    p.out_latent[item * p.lora + c] = sum / total;
  }
}

bool valid(const MlaAttentionParams& p) {
  const bool e4m3 = p.cache_type == MlaCacheType::E4M3;
  return p.tokens >= 0 && p.heads > 0 && p.lora > 0 && p.lora % 32 == 0 && p.lora <= 32 * kMaxLatentPerLane &&
         p.rope >= 0 && p.rope <= kMaxRope && p.nope > 0 && p.v > 0 && p.page_size > 0 && p.sequences > 0 &&
         (p.cache_type == MlaCacheType::BF16 || e4m3) && (p.key_positions == nullptr || p.top_k > 0) &&
         (p.tokens == 0 || (p.q && p.kv_b && p.cache && p.query_start && p.block_table && p.positions && p.q_latent &&
                            p.out_latent && p.output && (!e4m3 || p.cache_scales)));
}

}  // namespace

int launch_mla_attention(const MlaAttentionParams& p, Stream stream) {
  if (!valid(p)) return cudaErrorInvalidValue;
  if (p.tokens == 0) return cudaSuccess;
  const unsigned items = static_cast<unsigned>(p.tokens * p.heads);
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (int status = launch_mla_q_latent(p, stream)) return status;
  if (p.cache_type == MlaCacheType::E4M3)
    attention_kernel<MlaCacheType::E4M3><<<items, kThreads, 0, s>>>(p);
  else
    attention_kernel<MlaCacheType::BF16><<<items, kThreads, 0, s>>>(p);
  if (int status = launch_status()) return status;
  return launch_mla_output(p, stream);
}

}  // namespace rackserve::kernels
