// Producers of W8A8 activations fused with their e4m3 quantization (kernels/common/
// rms_norm_fp8.cu, silu_mul_fp8.cu). The op's bf16 result, rounded exactly as the plain kernel
// rounds it (launch_rms_norm, launch_silu_mul), is quantized per row exactly as
// launch_fp8_quantize_activations quantizes a bf16 tensor (fp8_gemm_params.h), so plain op +
// quantize and the fused op give identical bytes and scales; the fused op saves the bf16
// round trip through memory and a launch.
// One CTA per row holds the row's bf16 values in shared memory between the amax and the
// quantization, which bounds the width (kFp8FusedMaxWidth).
#pragma once

#include "rackserve/kernels/common.h"
#include "rackserve/kernels/elementwise_params.h"
#include "rackserve/kernels/fp8_gemm_params.h"

namespace rackserve::kernels {

// Where a fused producer writes its rows' e4m3 copy.
struct Fp8RowsOutput {
  void* q;               // [rows, width] e4m3
  float* scales;         // Block: [rows, width / group]; Channel: [rows]
  Fp8ScaleLayout layout;
  int64_t group;         // Block: columns per scale, a multiple of 32 that divides width; Channel: ignored
};

// The widest row the fused producers take: 2 bytes per column of shared memory plus the group
// maxima, 70 KB at this width, inside SM120's 99 KB budget.
inline constexpr int64_t kFp8FusedMaxWidth = 32768;

// launch_rms_norm's op (norm.output written as it writes it, residual add included) plus the
// e4m3 copy of norm.output. norm.rows * norm.width as in RmsNormParams; width <= kFp8FusedMaxWidth.
struct RmsNormFp8Params {
  RmsNormParams norm;
  Fp8RowsOutput fp8;
};
int launch_rms_norm_fp8(const RmsNormFp8Params& params, Stream stream);

// silu(gate) * up rounded to bf16 as launch_silu_mul rounds it, written only as its e4m3 copy.
struct SiluMulFp8Params {
  const void* gate_up;  // [rows, 2 * width] bf16, gate columns first
  int64_t rows, width;  // width <= kFp8FusedMaxWidth
  Fp8RowsOutput fp8;
};
int launch_silu_mul_fp8(const SiluMulFp8Params& params, Stream stream);

}  // namespace rackserve::kernels
