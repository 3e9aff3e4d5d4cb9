// RMSNorm (optionally after the residual add) fused with the e4m3 quantization of its output
// (fp8_activation_params.h): the plain kernel's reduction and rounding (rms_norm.cuh), then
// fp8_row_quantize.cuh on the bf16 values it writes. One CTA of kRmsNormThreads per row, as the
// plain kernel, so the two sum the squares in the same order and give the same bits.
#include <cuda_bf16.h>

#include "common/device_utils.cuh"
#include "common/fp8_row_quantize.cuh"
#include "common/rms_norm.cuh"
#include "common/shared_memory_budget.cuh"
#include "rackserve/kernels/fp8_activation_params.h"

namespace rackserve::kernels {

namespace {

// kVector: the vector path (rms_norm_vector_path and fp8_vector_path_fits), else the two-pass loop.
template <bool kBlockScaling, bool kVector>
__global__ void __launch_bounds__(kRmsNormThreads) rms_norm_fp8_kernel(RmsNormFp8Params p) {
  wait_for_prior_kernel();
  extern __shared__ __align__(16) unsigned char shared[];
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  __nv_bfloat16* output = static_cast<__nv_bfloat16*>(p.norm.output) + row * p.norm.width;
  if constexpr (kVector) {
    RmsNormRow values;
    values.load(p.norm, row, scratch);
    __nv_bfloat16 normed[kRmsNormVectorColumns];
    values.store(output, normed);
    quantize_fp8_vector<kBlockScaling>(p.fp8, row, p.norm.width, values.inside, normed, scratch);
  } else {
    const float inverse_rms = rms_norm_inverse_rms(p.norm, row, scratch);
    produce_fp8_row<kBlockScaling>(p.fp8, row, p.norm.width, 0, p.norm.width, shared, scratch, [&](int64_t c) {
      const __nv_bfloat16 value = rms_norm_value(p.norm, row, c, inverse_rms);
      output[c] = value;
      return value;
    });
  }
}

}  // namespace

int launch_rms_norm_fp8(const RmsNormFp8Params& p, Stream stream) {
  const RmsNormParams& norm = p.norm;
  if (norm.rows < 0 || norm.rows > INT32_MAX || !fp8_rows_output_valid(p.fp8, norm.rows, norm.width))
    return cudaErrorInvalidValue;
  if (norm.rows > 0 && (!norm.x || !norm.weight || !norm.output)) return cudaErrorInvalidValue;
  if (norm.rows == 0) return cudaSuccess;
  const bool block = p.fp8.layout == Fp8ScaleLayout::Block;
  const bool vector = rms_norm_vector_path(norm) && fp8_vector_path_fits(p.fp8, norm.width);
  auto kernel = block ? (vector ? rms_norm_fp8_kernel<true, true> : rms_norm_fp8_kernel<true, false>)
                      : (vector ? rms_norm_fp8_kernel<false, true> : rms_norm_fp8_kernel<false, false>);
  const int bytes = vector ? 0 : static_cast<int>(fp8_row_shared_bytes(norm.width, block, p.fp8.group));
  if (int status = opt_in_dynamic_shared_memory(reinterpret_cast<const void*>(kernel), bytes, "rms_norm_fp8"))
    return status;
  kernel<<<static_cast<unsigned>(norm.rows), kRmsNormThreads, bytes, static_cast<cudaStream_t>(stream)>>>(p);
  return launch_status();
}

}  // namespace rackserve::kernels
