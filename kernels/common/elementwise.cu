// Row-wise and element-wise kernels: embedding gather, RMSNorm (+ fused residual add),
// mean of squares, add, bias add, SiLU-and-mul, row gather and fill. Memory-bound; one block per row where a row
// reduction is needed, grid-stride loops elsewhere. The RMSNorm and SiLU math lives in
// rms_norm.cuh / silu_mul.cuh, shared with their FP8-quantizing variants (*_fp8.cu).
#include <cuda_fp8.h>

#include "common/device_utils.cuh"
#include "common/rms_norm.cuh"
#include "common/silu_mul.cuh"
#include "rackserve/kernels/elementwise_params.h"
#include "rackserve/random_hash.h"

namespace rackserve::kernels {

namespace {

// Grid (tokens, column chunks): a thread takes 8 columns of a token's row, one 16-byte load and
// two 16-byte stores when the row is a multiple of 8 wide and aligned (column by column
// otherwise), so a row costs one load round trip (a 256-thread loop over the row took 12-22 us
// at batch 1).
constexpr int kEmbeddingThreads = 256, kEmbeddingColumns = 8;

__global__ void __launch_bounds__(kEmbeddingThreads) embedding_kernel(EmbeddingParams p) {
  wait_for_prior_kernel();
  const int64_t t = blockIdx.x;
  const int64_t first = (static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x) * kEmbeddingColumns;
  if (first >= p.hidden) return;
  const int32_t id = p.token_ids[t];
  const bool valid = id >= 0 && id < p.vocab;  // the host validates ids; NaN makes a slip visible
  const __nv_bfloat16* row = static_cast<const __nv_bfloat16*>(p.table) + (valid ? id : 0) * p.hidden;
  float* output = p.output + t * p.hidden;
  const float invalid = __int_as_float(0x7fc00000);
  const bool aligned = reinterpret_cast<uintptr_t>(p.table) % 16 == 0 && reinterpret_cast<uintptr_t>(p.output) % 16 == 0;
  if (aligned && p.hidden % kEmbeddingColumns == 0) {
    float values[kEmbeddingColumns];
    load_bf16x8(row + first, values);
    float4* out = reinterpret_cast<float4*>(output + first);
    out[0] = valid ? make_float4(values[0], values[1], values[2], values[3]) : make_float4(invalid, invalid, invalid, invalid);
    out[1] = valid ? make_float4(values[4], values[5], values[6], values[7]) : make_float4(invalid, invalid, invalid, invalid);
  } else {
    for (int64_t c = first; c < min(first + kEmbeddingColumns, p.hidden); ++c)
      output[c] = valid ? __bfloat162float(row[c]) : invalid;
  }
}

// kVector: the vector path (rms_norm_vector_path), else the two-pass loop.
template <bool kVector>
__global__ void __launch_bounds__(kRmsNormThreads) rms_norm_kernel(RmsNormParams p) {
  wait_for_prior_kernel();
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  __nv_bfloat16* output = static_cast<__nv_bfloat16*>(p.output) + row * p.width;
  if constexpr (kVector) {
    RmsNormRow values;
    values.load(p, row, scratch);
    __nv_bfloat16 normed[kRmsNormVectorColumns];
    values.store(output, normed);
  } else {
    const float inverse_rms = rms_norm_inverse_rms(p, row, scratch);
    for (int64_t c = threadIdx.x; c < p.width; c += blockDim.x) output[c] = rms_norm_value(p, row, c, inverse_rms);
  }
}

__global__ void add_kernel(AddParams p) {
  wait_for_prior_kernel();
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < p.count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    store_element(p.target, p.target_type, i,
                  load_element(p.target, p.target_type, i) + load_element(p.source, p.source_type, i));
}

__global__ void mean_squares_kernel(MeanSquaresParams p) {
  wait_for_prior_kernel();
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  float sum_squares = 0.0f;
  for (int64_t c = threadIdx.x; c < p.width; c += blockDim.x) {
    const float value = load_element(p.x, p.x_type, row * p.width + c);
    sum_squares += value * value;
  }
  sum_squares = block_sum(sum_squares, scratch);
  if (threadIdx.x == 0) p.output[row] = sum_squares / static_cast<float>(p.row_width);
}

__global__ void add_bias_kernel(AddBiasParams p) {
  wait_for_prior_kernel();
  __nv_bfloat16* x = static_cast<__nv_bfloat16*>(p.x);
  const __nv_bfloat16* bias = static_cast<const __nv_bfloat16*>(p.bias);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < p.rows * p.width;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    x[i] = __float2bfloat16(__bfloat162float(x[i]) + __bfloat162float(bias[i % p.width]));
}

__global__ void silu_mul_kernel(SiluMulParams p) {
  wait_for_prior_kernel();
  const __nv_bfloat16* input = static_cast<const __nv_bfloat16*>(p.gate_up);
  __nv_bfloat16* output = static_cast<__nv_bfloat16*>(p.output);
  const int64_t count = p.rows * p.width;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t row = i / p.width, column = i % p.width;
    output[i] = silu_mul_value(input[row * 2 * p.width + column], input[row * 2 * p.width + p.width + column]);
  }
}

__global__ void gather_rows_kernel(GatherRowsParams p) {
  wait_for_prior_kernel();
  const int64_t row = blockIdx.x;
  const int32_t source = p.row_indices[row];
  const int64_t words = p.row_bytes / 4;
  const uint32_t* input = static_cast<const uint32_t*>(p.input) + static_cast<int64_t>(source) * words;
  uint32_t* output = static_cast<uint32_t*>(p.output) + row * words;
  const bool valid = source >= 0 && source < p.input_rows;
  for (int64_t w = threadIdx.x; w < words; w += blockDim.x) output[w] = valid ? input[w] : 0x7fc00000u;
}

__global__ void fill_kernel(FillParams p) {
  wait_for_prior_kernel();
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < p.count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    store_element(p.data, p.type, i, p.value);
}

__global__ void fill_random_kernel(FillRandomParams p) {
  wait_for_prior_kernel();
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < p.count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float value = uniform_symmetric(p.seed, static_cast<uint64_t>(i), p.scale);
    if (p.type == ElementType::F8_E4M3)
      static_cast<__nv_fp8_storage_t*>(p.data)[i] = __nv_cvt_float_to_fp8(value, __NV_SATFINITE, __NV_E4M3);
    else
      store_element(p.data, p.type, i, value);
  }
}

constexpr int kThreads = 256;

}  // namespace

int launch_embedding(const EmbeddingParams& p, Stream stream) {
  if (p.tokens < 0 || p.hidden <= 0 || !p.table || (p.tokens > 0 && (!p.token_ids || !p.output)))
    return cudaErrorInvalidValue;
  if (p.tokens == 0) return cudaSuccess;
  const int64_t chunks = (p.hidden + kEmbeddingThreads * kEmbeddingColumns - 1) / (kEmbeddingThreads * kEmbeddingColumns);
  if (p.tokens > INT32_MAX || chunks > 65535) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>(p.tokens), static_cast<unsigned>(chunks));
  embedding_kernel<<<grid, kEmbeddingThreads, 0, static_cast<cudaStream_t>(stream)>>>(p);
  return launch_status();
}

int launch_rms_norm(const RmsNormParams& p, Stream stream) {
  if (p.rows < 0 || p.width <= 0 || !p.x || !p.weight || !p.output) return cudaErrorInvalidValue;
  if (p.rows == 0) return cudaSuccess;
  auto kernel = rms_norm_vector_path(p) ? rms_norm_kernel<true> : rms_norm_kernel<false>;
  kernel<<<static_cast<unsigned>(p.rows), kRmsNormThreads, 0, static_cast<cudaStream_t>(stream)>>>(p);
  return launch_status();
}

int launch_add(const AddParams& p, Stream stream) {
  if (p.count < 0 || (p.count > 0 && (!p.target || !p.source))) return cudaErrorInvalidValue;
  if (p.count == 0) return cudaSuccess;
  add_kernel<<<grid_blocks(p.count, kThreads), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(p);
  return launch_status();
}

int launch_mean_squares(const MeanSquaresParams& p, Stream stream) {
  if (p.rows < 0 || p.width <= 0 || p.row_width < p.width || (p.rows > 0 && (!p.x || !p.output)))
    return cudaErrorInvalidValue;
  if (p.rows == 0) return cudaSuccess;
  mean_squares_kernel<<<static_cast<unsigned>(p.rows), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(p);
  return launch_status();
}

int launch_add_bias(const AddBiasParams& p, Stream stream) {
  if (p.rows < 0 || p.width <= 0 || (p.rows > 0 && (!p.x || !p.bias))) return cudaErrorInvalidValue;
  if (p.rows == 0) return cudaSuccess;
  add_bias_kernel<<<grid_blocks(p.rows * p.width, kThreads), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(p);
  return launch_status();
}

int launch_silu_mul(const SiluMulParams& p, Stream stream) {
  if (p.rows < 0 || p.width <= 0 || (p.rows > 0 && (!p.gate_up || !p.output))) return cudaErrorInvalidValue;
  if (p.rows == 0) return cudaSuccess;
  silu_mul_kernel<<<grid_blocks(p.rows * p.width, kThreads), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(p);
  return launch_status();
}

int launch_gather_rows(const GatherRowsParams& p, Stream stream) {
  if (p.rows < 0 || p.row_bytes <= 0 || p.row_bytes % 4 != 0 || (p.rows > 0 && (!p.input || !p.row_indices || !p.output)))
    return cudaErrorInvalidValue;
  if (p.rows == 0) return cudaSuccess;
  gather_rows_kernel<<<static_cast<unsigned>(p.rows), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(p);
  return launch_status();
}

int launch_fill(const FillParams& p, Stream stream) {
  if (p.count < 0 || (p.count > 0 && !p.data)) return cudaErrorInvalidValue;
  if (p.count == 0) return cudaSuccess;
  fill_kernel<<<grid_blocks(p.count, kThreads), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(p);
  return launch_status();
}

int launch_fill_random(const FillRandomParams& p, Stream stream) {
  if (p.count < 0 || (p.count > 0 && !p.data)) return cudaErrorInvalidValue;
  if (p.count == 0) return cudaSuccess;
  fill_random_kernel<<<grid_blocks(p.count, kThreads), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(p);
  return launch_status();
}

}  // namespace rackserve::kernels
