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

__global__ void embedding_kernel(EmbeddingParams p) {
  wait_for_prior_kernel();
  const int64_t t = blockIdx.x;
  const int32_t id = p.token_ids[t];
  const bool valid = id >= 0 && id < p.vocab;  // the host validates ids; NaN makes a slip visible
  const __nv_bfloat16* row = static_cast<const __nv_bfloat16*>(p.table) + (valid ? id : 0) * p.hidden;
  for (int64_t c = threadIdx.x; c < p.hidden; c += blockDim.x)
    p.output[t * p.hidden + c] = valid ? __bfloat162float(row[c]) : __int_as_float(0x7fc00000);
}

__global__ void __launch_bounds__(kRmsNormThreads) rms_norm_kernel(RmsNormParams p) {
  wait_for_prior_kernel();
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const float inverse_rms = rms_norm_inverse_rms(p, row, scratch);
  __nv_bfloat16* output = static_cast<__nv_bfloat16*>(p.output);
  for (int64_t c = threadIdx.x; c < p.width; c += blockDim.x)
    output[row * p.width + c] = rms_norm_value(p, row, c, inverse_rms);
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
  embedding_kernel<<<static_cast<unsigned>(p.tokens), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(p);
  return launch_status();
}

int launch_rms_norm(const RmsNormParams& p, Stream stream) {
  if (p.rows < 0 || p.width <= 0 || !p.x || !p.weight || !p.output) return cudaErrorInvalidValue;
  if (p.rows == 0) return cudaSuccess;
  rms_norm_kernel<<<static_cast<unsigned>(p.rows), kRmsNormThreads, 0, static_cast<cudaStream_t>(stream)>>>(p);
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
