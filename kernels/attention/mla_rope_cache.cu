// RoPE on the rope columns of queries, and the MLA cache write (latent RMSNorm + rope of
// the shared key + paged store, as bf16 or as e4m3 with a per-entry scale). Both read a
// head's whole rope slice before writing it, because the interleaved input layout and the
// half-split output layout overlap in place.
#include "attention/mla_cache_e4m3.cuh"
#include "common/device_utils.cuh"
#include "rackserve/kernels/mla_params.h"

namespace rackserve::kernels {

namespace {

constexpr int kThreads = 128;
constexpr int kMaxRopeDim = 256;
constexpr int kMaxE4m3EntryWidth = 8192;  // the f32 entry staged in shared memory: 32 KB, within the default 48 KB

__device__ __forceinline__ void store_value(__nv_bfloat16* output, int64_t i, float value) {
  output[i] = __float2bfloat16(value);
}
__device__ __forceinline__ void store_value(float* output, int64_t i, float value) { output[i] = value; }

// Rotates `slice` (dim floats in shared memory, input layout) into `output` at stride 1.
template <typename Output>
__device__ void rotate_slice(const float* slice, int64_t dim, bool interleaved, const float* inv_freq, int32_t position,
                             float scale, Output* output) {
  const int64_t half = dim / 2;
  for (int64_t i = threadIdx.x; i < half; i += blockDim.x) {
    float first = interleaved ? slice[2 * i] : slice[i];
    float second = interleaved ? slice[2 * i + 1] : slice[i + half];
    float angle = static_cast<float>(position) * inv_freq[i];
    float cos_value = cosf(angle) * scale, sin_value = sinf(angle) * scale;
    store_value(output, i, first * cos_value - second * sin_value);
    store_value(output, i + half, second * cos_value + first * sin_value);
  }
}

// One warp per (token, head): every lane reads its pairs into registers, the warp syncs,
// then writes (the input and output layouts overlap in place).
constexpr int kRopeWarpsPerBlock = 8;
constexpr int kMaxPairsPerLane = kMaxRopeDim / 2 / 32;

__global__ void __launch_bounds__(kRopeWarpsPerBlock * 32) rope_kernel(RopeParams p) {
  wait_for_prior_kernel();
  const int lane = threadIdx.x % 32;
  const int64_t item = static_cast<int64_t>(blockIdx.x) * kRopeWarpsPerBlock + threadIdx.x / 32;
  if (item >= p.tokens * p.heads) return;
  const int64_t t = item / p.heads, half = p.dim / 2;
  __nv_bfloat16* part = static_cast<__nv_bfloat16*>(p.x) + item * p.width + p.offset;
  const float position = static_cast<float>(p.positions[t]);
  float first[kMaxPairsPerLane], second[kMaxPairsPerLane];
#pragma unroll
  for (int j = 0; j < kMaxPairsPerLane; ++j) {
    const int64_t i = lane + 32 * j;
    if (i < half) {
      first[j] = __bfloat162float(p.interleaved ? part[2 * i] : part[i]);
      second[j] = __bfloat162float(p.interleaved ? part[2 * i + 1] : part[i + half]);
    }
  }
  __syncwarp();
#pragma unroll
  for (int j = 0; j < kMaxPairsPerLane; ++j) {
    const int64_t i = lane + 32 * j;
    if (i < half) {
      float sin_value, cos_value;
      sincosf(position * p.inv_freq[i], &sin_value, &cos_value);
      cos_value *= p.scale;
      sin_value *= p.scale;
      part[i] = __float2bfloat16(first[j] * cos_value - second[j] * sin_value);
      part[i + half] = __float2bfloat16(second[j] * cos_value + first[j] * sin_value);
    }
  }
}

// One block per token. BF16 stores the normalised latent and the rotated rope key as they
// are computed; E4M3 stages the same f32 values in shared memory, reduces their amax over
// the block, then stores e4m3(x / scale) and the entry's scale.
template <MlaCacheType kCache>
__global__ void mla_cache_write_kernel(MlaCacheWriteParams p) {
  wait_for_prior_kernel();
  extern __shared__ float staged[];  // E4M3: [lora + dim] f32, the entry before quantization
  __shared__ float scratch[32];
  __shared__ float slice[kMaxRopeDim];
  const int64_t t = blockIdx.x;
  const int64_t width = p.lora + p.dim;
  const int32_t slot = p.slots[t];
  if (slot < 0 || slot >= p.capacity) return;  // -1 is padding, the rest validated on the host; block-uniform
  const __nv_bfloat16* kv = static_cast<const __nv_bfloat16*>(p.kv) + t * width;
  const __nv_bfloat16* weight = static_cast<const __nv_bfloat16*>(p.norm_weight);
  float sum_squares = 0.0f;
  for (int64_t c = threadIdx.x; c < p.lora; c += blockDim.x) {
    float value = __bfloat162float(kv[c]);
    sum_squares += value * value;
  }
  const float inverse_rms = rsqrtf(block_sum(sum_squares, scratch) / static_cast<float>(p.lora) + p.eps);
  if constexpr (kCache == MlaCacheType::BF16) {
    __nv_bfloat16* entry = static_cast<__nv_bfloat16*>(p.cache) + static_cast<int64_t>(slot) * width;
    for (int64_t c = threadIdx.x; c < p.lora; c += blockDim.x)
      entry[c] = __float2bfloat16(__bfloat162float(weight[c]) * (__bfloat162float(kv[c]) * inverse_rms));
    for (int64_t i = threadIdx.x; i < p.dim; i += blockDim.x) slice[i] = __bfloat162float(kv[p.lora + i]);
    __syncthreads();
    rotate_slice(slice, p.dim, p.interleaved, p.inv_freq, p.positions[t], p.rope_scale, entry + p.lora);
  } else {
    for (int64_t c = threadIdx.x; c < p.lora; c += blockDim.x)
      staged[c] = __bfloat162float(weight[c]) * (__bfloat162float(kv[c]) * inverse_rms);
    for (int64_t i = threadIdx.x; i < p.dim; i += blockDim.x) slice[i] = __bfloat162float(kv[p.lora + i]);
    __syncthreads();
    rotate_slice(slice, p.dim, p.interleaved, p.inv_freq, p.positions[t], p.rope_scale, staged + p.lora);
    __syncthreads();  // the rope values were written by other threads than the ones reading them below
    float amax = 0.0f;
    for (int64_t c = threadIdx.x; c < width; c += blockDim.x) amax = fmaxf(amax, fabsf(staged[c]));
    const float scale = e4m3_entry_scale(block_max(amax, scratch));
    uint8_t* entry = static_cast<uint8_t*>(p.cache) + static_cast<int64_t>(slot) * width;
    for (int64_t c = threadIdx.x; c < width; c += blockDim.x) entry[c] = encode_e4m3(staged[c], scale);
    if (threadIdx.x == 0) p.cache_scales[slot] = scale;
  }
}

}  // namespace

int launch_rope(const RopeParams& p, Stream stream) {
  if (p.tokens < 0 || p.heads <= 0 || p.dim <= 0 || p.dim % 2 != 0 || p.dim > kMaxRopeDim || p.offset < 0 ||
      p.offset + p.dim > p.width || (p.tokens > 0 && (!p.x || !p.positions || !p.inv_freq)))
    return cudaErrorInvalidValue;
  if (p.tokens == 0) return cudaSuccess;
  const int64_t blocks = (p.tokens * p.heads + kRopeWarpsPerBlock - 1) / kRopeWarpsPerBlock;
  if (blocks > 2147483647) return cudaErrorInvalidValue;
  rope_kernel<<<static_cast<unsigned>(blocks), kRopeWarpsPerBlock * 32, 0, static_cast<cudaStream_t>(stream)>>>(p);
  return launch_status();
}

int launch_mla_cache_write(const MlaCacheWriteParams& p, Stream stream) {
  const bool e4m3 = p.cache_type == MlaCacheType::E4M3;
  if (p.tokens < 0 || p.lora <= 0 || p.dim <= 0 || p.dim % 2 != 0 || p.dim > kMaxRopeDim ||
      (p.cache_type != MlaCacheType::BF16 && !e4m3) || (e4m3 && p.lora + p.dim > kMaxE4m3EntryWidth) ||
      (p.tokens > 0 && (!p.kv || !p.norm_weight || !p.positions || !p.slots || !p.inv_freq || !p.cache ||
                        (e4m3 && !p.cache_scales))))
    return cudaErrorInvalidValue;
  if (p.tokens == 0) return cudaSuccess;
  const unsigned blocks = static_cast<unsigned>(p.tokens);
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (e4m3) {
    const size_t staged_bytes = static_cast<size_t>(p.lora + p.dim) * sizeof(float);
    mla_cache_write_kernel<MlaCacheType::E4M3><<<blocks, kThreads, staged_bytes, s>>>(p);
  } else {
    mla_cache_write_kernel<MlaCacheType::BF16><<<blocks, kThreads, 0, s>>>(p);
  }
  return launch_status();
}

}  // namespace rackserve::kernels
