// Pieces shared by the two W8A8 FP8 GEMMs (linear_fp8_small_m.cu, linear_fp8_tiled.cu): the
// e4m3 mma.sync, the launch-time validation of LinearFp8Params, output stores, and the
// split-K reduction (the GEMMs' common one, linear_split_k.cuh).
//
// mma.sync m16n8k32 e4m3 has the byte image of m16n8k16 bf16 (mma_utils.cuh): each 32-bit
// register holds 4 consecutive k values instead of 2, with g = lane / 4, t = lane % 4:
//   A (16x32, row)  a0:(g, 4t..4t+3) a1:(g+8, 4t..) a2:(g, 16+4t..) a3:(g+8, 16+4t..)
//   B (32x8, "col") b0:(k 4t..4t+3, n g) b1:(k 16+4t.., n g)
//   C (16x8, f32)   c0,c1:(g, 2t..2t+1) c2,c3:(g+8, 2t..2t+1)
// so ldmatrix.b16 loads e4m3 tiles exactly as it loads bf16 ones (a 16-byte row = 16 k).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "gemm/linear_split_k.cuh"
#include "rackserve/kernels/fp8_gemm_params.h"

namespace rackserve::kernels {

// K block of the Block layout's scales, and the K granule of both kernels' loops.
constexpr int kFp8BlockK = 128;
static_assert(kFp8BlockK == 128, "only per-128-column FP8 scaling (DeepSeek's block_in)");

// d = a * b (a zero accumulator input), e4m3 inputs, f32 outputs; QMMA on sm_120a.
// Why a zero input: the FP8 tensor cores of Ada and Hopper keep only ~13 mantissa bits of the
// accumulator input and align all addends to the largest before adding (SageAttention2;
// DeepSeek-V3's report), and SM120's are not documented to do better. Under that model a
// whole dot chained through the accumulator has 1 - cosine 4e-3 at k = 7168, and even a
// 128-wide block chained (DeepSeek's promotion interval) 9e-6 at k = 18432; one MMA per f32 add,
// as both kernels do, gives 8e-7 there, every element within 2^-15.5 of its sum of |products|
// (simulated).
__device__ __forceinline__ void mma_e4m3_16x8x32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  const float zero = 0.0f;
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%10, %10, %10, %10};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(zero));
}

// sum += a * b, the MMA run on a zero accumulator and its result added in f32 (see above).
__device__ __forceinline__ void mma_e4m3_add(float (&sum)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  float d[4];
  mma_e4m3_16x8x32(d, a, b);
#pragma unroll
  for (int c = 0; c < 4; ++c) sum[c] += d[c];
}

__device__ __forceinline__ void store_y_pair(float* y, int64_t index, float first, float second) {
  *reinterpret_cast<float2*>(y + index) = make_float2(first, second);
}
__device__ __forceinline__ void store_y_pair(__nv_bfloat16* y, int64_t index, float first, float second) {
  *reinterpret_cast<__nv_bfloat162*>(y + index) = __floats2bfloat162_rn(first, second);
}
__device__ __forceinline__ void store_y(float* y, int64_t index, float value) { y[index] = value; }
__device__ __forceinline__ void store_y(__nv_bfloat16* y, int64_t index, float value) {
  y[index] = __float2bfloat16(value);
}

__host__ __device__ inline int64_t fp8_k_blocks(int64_t k) { return (k + kFp8BlockK - 1) / kFp8BlockK; }

// The launchers' boundary check: shapes, alignment, scale layout, and a config whose splits
// cover the K blocks with none empty (and a workspace when it splits). cudaSuccess or
// cudaErrorInvalidValue.
inline int validate_linear_fp8(const LinearFp8Params& p, const LinearFp8Config& config) {
  const auto aligned = [](const void* pointer) { return (reinterpret_cast<uintptr_t>(pointer) & 15u) == 0; };
  const bool block = p.layout == Fp8ScaleLayout::Block;
  if (!block && p.layout != Fp8ScaleLayout::Channel) return cudaErrorInvalidValue;
  if (p.m < 0 || p.n <= 0 || p.k <= 0 || p.k % (block ? kFp8BlockK : 16) != 0 || (block && p.block_out <= 0))
    return cudaErrorInvalidValue;
  if (p.y_type != ElementType::F32 && p.y_type != ElementType::BF16) return cudaErrorInvalidValue;
  if (p.segment_rows < 0 || p.segment_rows >= p.n) return cudaErrorInvalidValue;
  if (!p.weight || !p.weight_scales || !aligned(p.weight)) return cudaErrorInvalidValue;
  if (p.m > 0 && (!p.x || !p.x_scales || !p.y || !aligned(p.x))) return cudaErrorInvalidValue;
  const int64_t k_blocks = fp8_k_blocks(p.k);
  // Scale offsets are 32-bit inside the kernels.
  const int64_t scale_rows = block ? (p.n + p.block_out - 1) / p.block_out : p.n;
  if (p.m * k_blocks >= INT32_MAX || scale_rows * k_blocks >= INT32_MAX) return cudaErrorInvalidValue;
  if (config.splits < 1 || config.splits > 65535 || config.k_blocks_per_split < 1 ||
      static_cast<int64_t>(config.splits) * config.k_blocks_per_split < k_blocks ||
      static_cast<int64_t>(config.splits - 1) * config.k_blocks_per_split >= k_blocks)
    return cudaErrorInvalidValue;
  if (config.splits > 1 && p.m > 0 && !p.workspace) return cudaErrorInvalidValue;
  return cudaSuccess;
}

// y = sum over splits of workspace[split] (in split order), converted to y_type; params
// already validated.
inline int launch_linear_fp8_split_reduce(const LinearFp8Params& params, int splits, cudaStream_t stream) {
  return launch_linear_split_reduce(params.workspace, params.y, params.y_type, params.m * params.n, splits, stream);
}

}  // namespace rackserve::kernels
