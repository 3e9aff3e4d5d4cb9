// DeepSeek sparse attention's indexer, the two kernels before the choice (dsa_select.cu):
//   dsa_key_write_kernel  one block per token: LayerNorm of wk's output (weight, bias), RoPE on
//                         its first `dim` values, stored bf16 or e4m3 + scale (the MLA cache's
//                         rule, mla_cache_e4m3.cuh) at the token's slot;
//   dsa_scores_kernel     score(t, j) = sum_h w[t, h] * head_scale * relu(softmax_scale * q[t, h] . key[j])
//                         in f32, one block per (token, 256 keys); shared memory 4 x (heads x
//                         (width + 1) + heads + 8 x width) bytes, <= 99 KB (dsa_query_supported). The token's q (all heads, f32,
//                         rows padded to width + 1 floats so 32 lanes reading 32 heads hit 32
//                         banks) and head weights sit in shared memory; each warp stages one key
//                         at a time and its lanes take one head each (lane, lane + 32, ...), so a
//                         key costs one warp reduction whatever the head count.
// SIMT f32 (no tensor cores): per key heads x width FMAs. GLM-5 (32 heads x 128) at 100k keys
// and 32 decode queries is ~13 GFMA per layer, a few ms on an H200: DeepSeek's and vLLM's
// indexers run this product as an FP8 MMA, the next step for long contexts (docs/kernels.md).
#include <cuda_runtime.h>

#include <cstdint>

#include "attention/mla_cache_e4m3.cuh"
#include "common/device_utils.cuh"
#include "rackserve/kernels/dsa_params.h"

namespace rackserve::kernels {

namespace {

constexpr int kWriteThreads = 128;
constexpr int kMaxKeyWidth = 1024;
constexpr int kScoreThreads = 256, kScoreWarps = kScoreThreads / 32;
constexpr int kKeysPerScoreBlock = 256;
constexpr int kMaxHeads = 128, kMaxScoreWidth = 256;
constexpr int64_t kMaxScoreSmem = 99 * 1024;  // SM120's opt-in shared memory per block

template <MlaCacheType kCache>
__global__ void __launch_bounds__(kWriteThreads) dsa_key_write_kernel(DsaKeyWriteParams p) {
  wait_for_prior_kernel();
  __shared__ float staged[kMaxKeyWidth];
  __shared__ float scratch[32];
  const int64_t t = blockIdx.x;
  const int32_t slot = p.slots[t];
  // -1 is padding; a slot outside the cache is skipped too (the CPU oracle throws). Block-uniform.
  if (slot < 0 || slot >= p.capacity) return;
  const __nv_bfloat16* k = static_cast<const __nv_bfloat16*>(p.k) + t * p.width;
  const __nv_bfloat16* weight = static_cast<const __nv_bfloat16*>(p.norm_weight);
  const __nv_bfloat16* bias = static_cast<const __nv_bfloat16*>(p.norm_bias);
  const float width = static_cast<float>(p.width);
  float sum = 0.0f;
  for (int64_t c = threadIdx.x; c < p.width; c += blockDim.x) {
    staged[c] = __bfloat162float(k[c]);
    sum += staged[c];
  }
  const float mean = block_sum(sum, scratch) / width;
  float squares = 0.0f;
  for (int64_t c = threadIdx.x; c < p.width; c += blockDim.x) squares += (staged[c] - mean) * (staged[c] - mean);
  const float inverse = rsqrtf(block_sum(squares, scratch) / width + p.eps);
  for (int64_t c = threadIdx.x; c < p.width; c += blockDim.x)
    staged[c] = (staged[c] - mean) * inverse * __bfloat162float(weight[c]) + __bfloat162float(bias[c]);
  __syncthreads();
  // RoPE on [0, dim): each thread reads its pair before any thread writes (the interleaved
  // input and the half-split output overlap). dim <= 2 * kWriteThreads, checked on the host.
  const int64_t half = p.dim / 2, i = threadIdx.x;
  float first = 0.0f, second = 0.0f;
  if (i < half) {
    first = p.interleaved ? staged[2 * i] : staged[i];
    second = p.interleaved ? staged[2 * i + 1] : staged[i + half];
  }
  __syncthreads();
  if (i < half) {
    float sin_value, cos_value;
    sincosf(static_cast<float>(p.positions[t]) * p.inv_freq[i], &sin_value, &cos_value);
    cos_value *= p.rope_scale;
    sin_value *= p.rope_scale;
    staged[i] = first * cos_value - second * sin_value;
    staged[i + half] = second * cos_value + first * sin_value;
  }
  __syncthreads();
  if constexpr (kCache == MlaCacheType::BF16) {
    __nv_bfloat16* entry = static_cast<__nv_bfloat16*>(p.cache) + static_cast<int64_t>(slot) * p.width;
    for (int64_t c = threadIdx.x; c < p.width; c += blockDim.x) entry[c] = __float2bfloat16(staged[c]);
  } else {
    float amax = 0.0f;
    for (int64_t c = threadIdx.x; c < p.width; c += blockDim.x) amax = fmaxf(amax, fabsf(staged[c]));
    const float scale = e4m3_entry_scale(block_max(amax, scratch));
    uint8_t* entry = static_cast<uint8_t*>(p.cache) + static_cast<int64_t>(slot) * p.width;
    for (int64_t c = threadIdx.x; c < p.width; c += blockDim.x) entry[c] = encode_e4m3(staged[c], scale);
    if (threadIdx.x == 0) p.cache_scales[slot] = scale;
  }
}

__device__ int sequence_of_token(const int32_t* query_start, int64_t sequences, int64_t token) {
  int low = 0, high = static_cast<int>(sequences) - 1;
  while (low < high) {  // last s with query_start[s] <= token
    const int middle = (low + high + 1) / 2;
    if (query_start[middle] <= token) low = middle; else high = middle - 1;
  }
  return low;
}

template <MlaCacheType kCache>
__global__ void __launch_bounds__(kScoreThreads)
    dsa_scores_kernel(DsaQueryParams p, int64_t token_begin, float* scores, int64_t score_stride) {
  wait_for_prior_kernel();
  extern __shared__ float smem[];
  const int64_t row = blockIdx.y, t = token_begin + row;
  const int keys = p.positions[t] + 1;
  const int first_key = blockIdx.x * kKeysPerScoreBlock;
  if (keys <= p.top_k || first_key >= keys) return;  // every key chosen, or past this query's keys
  const int width = static_cast<int>(p.width), heads = static_cast<int>(p.heads), q_stride = width + 1;
  float* q = smem;                                 // [heads][width + 1]
  float* weights = q + heads * q_stride;           // [heads], head_scale folded in
  float* key = weights + heads;                    // [warps][width]
  const __nv_bfloat16* q_source = static_cast<const __nv_bfloat16*>(p.q) + t * p.heads * p.width;
  for (int index = threadIdx.x; index < heads * width; index += blockDim.x)
    q[(index / width) * q_stride + index % width] = __bfloat162float(q_source[index]);
  for (int h = threadIdx.x; h < heads; h += blockDim.x) weights[h] = p.head_weights[t * p.heads + h] * p.head_scale;
  __syncthreads();

  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  float* my_key = key + warp * width;
  const int32_t* pages = p.block_table + static_cast<int64_t>(sequence_of_token(p.query_start, p.sequences, t)) * p.max_blocks;
  const int last_key = min(keys, first_key + kKeysPerScoreBlock);
  const int page_size = static_cast<int>(p.page_size);  // <= INT32_MAX, checked at launch
  for (int j = first_key + warp; j < last_key; j += kScoreWarps) {
    const int64_t slot = static_cast<int64_t>(pages[j / page_size]) * page_size + j % page_size;
    if constexpr (kCache == MlaCacheType::BF16) {
      const __nv_bfloat16* entry = static_cast<const __nv_bfloat16*>(p.cache) + slot * p.width;
      for (int c = lane; c < width; c += 32) my_key[c] = __bfloat162float(entry[c]);
    } else {
      const uint8_t* entry = static_cast<const uint8_t*>(p.cache) + slot * p.width;
      const float scale = p.cache_scales[slot];
      for (int c = lane; c < width; c += 32) my_key[c] = decode_e4m3(entry[c]) * scale;
    }
    __syncwarp();
    float partial = 0.0f;
    for (int h = lane; h < heads; h += 32) {
      const float* q_row = q + h * q_stride;
      float dot = 0.0f;
      for (int c = 0; c < width; ++c) dot = fmaf(q_row[c], my_key[c], dot);
      partial += weights[h] * fmaxf(dot * p.softmax_scale, 0.0f);
    }
    const float score = warp_sum(partial);
    if (lane == 0) scores[row * score_stride + j] = score;
    __syncwarp();  // every lane is done with my_key before the next key overwrites it
  }
}

int64_t score_smem_bytes(const DsaQueryParams& p) {
  return static_cast<int64_t>(sizeof(float)) * (p.heads * (p.width + 1) + p.heads + kScoreWarps * p.width);
}

}  // namespace

int launch_dsa_write_keys(const DsaKeyWriteParams& p, Stream stream) {
  const bool e4m3 = p.cache_type == MlaCacheType::E4M3;
  if (p.tokens < 0 || p.width <= 0 || p.width > kMaxKeyWidth || p.dim < 0 || p.dim % 2 != 0 || p.dim > p.width ||
      p.dim > 2 * kWriteThreads || (p.cache_type != MlaCacheType::BF16 && !e4m3) ||
      (p.tokens > 0 && (!p.k || !p.norm_weight || !p.norm_bias || !p.positions || !p.slots || !p.inv_freq ||
                        !p.cache || (e4m3 && !p.cache_scales))))
    return cudaErrorInvalidValue;
  if (p.tokens == 0) return cudaSuccess;
  if (p.tokens > 2147483647) return cudaErrorInvalidConfiguration;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (e4m3)
    dsa_key_write_kernel<MlaCacheType::E4M3><<<static_cast<unsigned>(p.tokens), kWriteThreads, 0, s>>>(p);
  else
    dsa_key_write_kernel<MlaCacheType::BF16><<<static_cast<unsigned>(p.tokens), kWriteThreads, 0, s>>>(p);
  return launch_status();
}

bool dsa_query_supported(const DsaQueryParams& p) {
  const bool e4m3 = p.cache_type == MlaCacheType::E4M3;
  return p.tokens >= 0 && p.sequences > 0 && p.heads > 0 && p.heads <= kMaxHeads && p.width > 0 &&
         p.width <= kMaxScoreWidth && p.width % 32 == 0 && p.page_size > 0 && p.page_size <= 2147483647 &&
         p.max_blocks > 0 && p.top_k > 0 && score_smem_bytes(p) <= kMaxScoreSmem &&
         (p.cache_type == MlaCacheType::BF16 || e4m3) &&
         (p.tokens == 0 || (p.q && p.head_weights && p.cache && p.query_start && p.block_table && p.positions &&
                            (!e4m3 || p.cache_scales)));
}

int launch_dsa_scores(const DsaQueryParams& p, int64_t token_begin, int64_t token_end, float* scores,
                      int64_t score_stride, Stream stream) {
  if (!dsa_query_supported(p) || token_begin < 0 || token_end > p.tokens || token_begin > token_end ||
      score_stride <= 0 || (token_end > token_begin && !scores))
    return cudaErrorInvalidValue;
  if (token_end == token_begin) return cudaSuccess;
  const int64_t key_blocks = (score_stride + kKeysPerScoreBlock - 1) / kKeysPerScoreBlock;
  if (key_blocks > 2147483647 || token_end - token_begin > 65535) return cudaErrorInvalidConfiguration;
  const int64_t smem = score_smem_bytes(p);
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const dim3 grid(static_cast<unsigned>(key_blocks), static_cast<unsigned>(token_end - token_begin));
  auto launch = [&](auto kernel) {
    if (smem > 48 * 1024)
      if (const cudaError_t status =
              cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
          status != cudaSuccess)
        return static_cast<int>(status);
    kernel<<<grid, kScoreThreads, static_cast<size_t>(smem), s>>>(p, token_begin, scores, score_stride);
    return launch_status();
  };
  return p.cache_type == MlaCacheType::E4M3 ? launch(dsa_scores_kernel<MlaCacheType::E4M3>)
                                             : launch(dsa_scores_kernel<MlaCacheType::BF16>);
}

}  // namespace rackserve::kernels
