// The two per-head projections around absorbed MLA attention, organised so that each
// head's weights are read from memory once per step whatever the token count:
//   q_latent[t, h, :] = W_UK[h]^T q_nope[t, h, :]      W_UK[h] = kv_b rows [h(nope+v), h(nope+v)+nope)
//   output[t, h, :]   = W_UV[h] out_latent[t, h, :]    W_UV[h] = the next v rows of kv_b
// One block per (head, tile of weight columns or rows): the tile goes to shared memory
// once, then the block's warps walk the tokens. float32 accumulation; the per-token
// loops are short dot products over shared memory (CUDA cores): decode batches are
// bound by the weight bytes, which this reads exactly once, with 16-byte loads when the
// tile rows allow (lora a multiple of 64; 512 for the output tile), else element-wise.
#include "common/device_utils.cuh"
#include "rackserve/kernels/mla_params.h"

namespace rackserve::kernels {

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kColumnsPerBlock = 64;  // q_latent: lora columns per block (two per lane)
constexpr int kMaxNope = 256;
constexpr int kRowsPerBlock = 16;     // output: v rows per block
constexpr int kMaxLora = 512;

// grid (heads, ceil(lora / 64)). Shared: W_UK[h][:, c0:c0+64] as bf16 (nope x 64) and one
// q_nope row per warp as f32.
__global__ void __launch_bounds__(kThreads) q_latent_kernel(MlaAttentionParams p) {
  wait_for_prior_kernel();
  __shared__ __nv_bfloat162 weight[kMaxNope][kColumnsPerBlock / 2];
  __shared__ float q_row[kWarps][kMaxNope];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t h = blockIdx.x, c0 = static_cast<int64_t>(blockIdx.y) * kColumnsPerBlock;
  const __nv_bfloat16* w_uk = static_cast<const __nv_bfloat16*>(p.kv_b) + h * (p.nope + p.v) * p.lora;
  if (p.lora % kColumnsPerBlock == 0) {  // whole 128-byte tile rows: 16-byte loads, all issued at once
    constexpr int kChunksPerRow = kColumnsPerBlock * 2 / 16;
    for (int64_t i = threadIdx.x; i < p.nope * kChunksPerRow; i += kThreads) {
      const int64_t row = i / kChunksPerRow, chunk = i % kChunksPerRow;
      reinterpret_cast<uint4*>(&weight[row][0])[chunk] =
          __ldcs(reinterpret_cast<const uint4*>(w_uk + row * p.lora + c0) + chunk);
    }
  } else {
    for (int64_t i = threadIdx.x; i < p.nope * (kColumnsPerBlock / 2); i += kThreads) {
      const int64_t row = i / (kColumnsPerBlock / 2), pair = i % (kColumnsPerBlock / 2);
      if (c0 + 2 * pair < p.lora)
        weight[row][pair] = *reinterpret_cast<const __nv_bfloat162*>(w_uk + row * p.lora + c0 + 2 * pair);
    }
  }
  __syncthreads();
  for (int64_t t = warp; t < p.tokens; t += kWarps) {
    const __nv_bfloat16* q = static_cast<const __nv_bfloat16*>(p.q) + (t * p.heads + h) * (p.nope + p.rope);
    for (int64_t i = lane; i < p.nope; i += 32) q_row[warp][i] = __bfloat162float(q[i]);
    __syncwarp();
    float sum0 = 0.0f, sum1 = 0.0f;
    for (int64_t i = 0; i < p.nope; ++i) {
      const float2 w = __bfloat1622float2(weight[i][lane]);
      sum0 = fmaf(q_row[warp][i], w.x, sum0);
      sum1 = fmaf(q_row[warp][i], w.y, sum1);
    }
    if (c0 + 2 * lane < p.lora)
      *reinterpret_cast<float2*>(p.q_latent + (t * p.heads + h) * p.lora + c0 + 2 * lane) = make_float2(sum0, sum1);
    __syncwarp();
  }
}

// grid (heads, ceil(v / 16)). Shared: 16 rows of W_UV[h] as bf16; each warp holds one
// token's out_latent row in registers (16 values per lane) and reduces 16 dot products.
__global__ void __launch_bounds__(kThreads) output_kernel(MlaAttentionParams p) {
  wait_for_prior_kernel();
  __shared__ __nv_bfloat16 weight[kRowsPerBlock][kMaxLora];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t h = blockIdx.x, d0 = static_cast<int64_t>(blockIdx.y) * kRowsPerBlock;
  const int rows = static_cast<int>(p.v - d0 < kRowsPerBlock ? p.v - d0 : kRowsPerBlock);
  const int per_lane = static_cast<int>(p.lora / 32);
  const __nv_bfloat16* w_uv = static_cast<const __nv_bfloat16*>(p.kv_b) + (h * (p.nope + p.v) + p.nope + d0) * p.lora;
  if (p.lora == kMaxLora) {  // the tile is one contiguous run of rows x 1 KB: 16-byte loads
    const uint4* source = reinterpret_cast<const uint4*>(w_uv);
    uint4* target = reinterpret_cast<uint4*>(&weight[0][0]);
    for (int64_t i = threadIdx.x; i < rows * (kMaxLora * 2 / 16); i += kThreads) target[i] = __ldcs(source + i);
  } else {
    for (int64_t i = threadIdx.x; i < rows * p.lora; i += kThreads) weight[i / p.lora][i % p.lora] = w_uv[i];
  }
  __syncthreads();
  for (int64_t t = warp; t < p.tokens; t += kWarps) {
    const float* latent = p.out_latent + (t * p.heads + h) * p.lora;
    float values[kMaxLora / 32];
#pragma unroll
    for (int r = 0; r < kMaxLora / 32; ++r) values[r] = r < per_lane ? latent[lane + 32 * r] : 0.0f;
    __nv_bfloat16* output = static_cast<__nv_bfloat16*>(p.output) + (t * p.heads + h) * p.v + d0;
    for (int d = 0; d < rows; ++d) {
      float partial = 0.0f;
#pragma unroll
      for (int r = 0; r < kMaxLora / 32; ++r)
        if (r < per_lane) partial = fmaf(__bfloat162float(weight[d][lane + 32 * r]), values[r], partial);
      const float sum = warp_sum(partial);
      if (lane == 0) output[d] = __float2bfloat16(sum);
    }
  }
}

bool valid(const MlaAttentionParams& p) {
  return p.tokens >= 0 && p.heads > 0 && p.nope > 0 && p.nope <= kMaxNope && p.v > 0 && p.lora > 0 &&
         p.lora % 32 == 0 && p.lora <= kMaxLora && p.rope >= 0 && p.heads <= 65535 &&
         (p.tokens == 0 || (p.q && p.kv_b && p.q_latent && p.out_latent && p.output));
}

}  // namespace

int launch_mla_q_latent(const MlaAttentionParams& p, Stream stream) {
  if (!valid(p)) return cudaErrorInvalidValue;
  if (p.tokens == 0) return cudaSuccess;
  dim3 grid(static_cast<unsigned>(p.heads), static_cast<unsigned>((p.lora + kColumnsPerBlock - 1) / kColumnsPerBlock));
  q_latent_kernel<<<grid, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(p);
  return launch_status();
}

int launch_mla_output(const MlaAttentionParams& p, Stream stream) {
  if (!valid(p)) return cudaErrorInvalidValue;
  if (p.tokens == 0) return cudaSuccess;
  dim3 grid(static_cast<unsigned>(p.heads), static_cast<unsigned>((p.v + kRowsPerBlock - 1) / kRowsPerBlock));
  output_kernel<<<grid, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(p);
  return launch_status();
}

}  // namespace rackserve::kernels
