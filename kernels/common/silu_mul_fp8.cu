// SiLU-and-mul fused with the e4m3 quantization of its output (fp8_activation_params.h): each
// element rounded to bf16 as the plain kernel rounds it (silu_mul.cuh), then quantized by
// fp8_row_quantize.cuh; the bf16 row never goes to memory. Channel scaling: one CTA per row
// (the scale needs the whole row). Block scaling: one CTA per span of kBlockSpanColumns (whole
// groups) of a row, so a decode step's few wide rows still spread over the SMs (one CTA per
// 18432-wide row took 20.9 us on the H200 for DeepSeek-V3's dense MLP at batch 1, 2026-12-04).
#include <cuda_bf16.h>

#include <algorithm>

#include "common/device_utils.cuh"
#include "common/fp8_row_quantize.cuh"
#include "common/shared_memory_budget.cuh"
#include "common/silu_mul.cuh"
#include "rackserve/kernels/fp8_activation_params.h"

namespace rackserve::kernels {

namespace {

// Channel: wide for the same reason as RMSNorm's CTA (few rows at decode, one SM each).
constexpr int kRowThreads = 1024;
// Block: 256 threads, 4 columns each, per span.
constexpr int kSpanThreads = 256;
constexpr int64_t kBlockSpanColumns = 1024;

// Columns per CTA: the whole row (Channel) or the whole groups nearest kBlockSpanColumns.
int64_t span_columns(const SiluMulFp8Params& p, bool block) {
  if (!block) return p.width;
  return std::min(p.width, std::max<int64_t>(1, kBlockSpanColumns / p.fp8.group) * p.fp8.group);
}

// Grid (rows, spans); `span` columns per CTA (the last span of a row may be shorter).
template <bool kBlockScaling>
__global__ void __launch_bounds__(kRowThreads) silu_mul_fp8_kernel(SiluMulFp8Params p, int64_t span) {
  wait_for_prior_kernel();
  extern __shared__ __align__(16) unsigned char shared[];
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const __nv_bfloat16* gate = static_cast<const __nv_bfloat16*>(p.gate_up) + row * 2 * p.width;
  const __nv_bfloat16* up = gate + p.width;
  const int64_t begin = static_cast<int64_t>(blockIdx.y) * span;
  produce_fp8_row<kBlockScaling>(p.fp8, row, p.width, begin, std::min(span, p.width - begin), shared, scratch,
                                 [&](int64_t c) { return silu_mul_value(gate[c], up[c]); });
}

}  // namespace

int launch_silu_mul_fp8(const SiluMulFp8Params& p, Stream stream) {
  if (p.rows < 0 || p.rows > INT32_MAX || !fp8_rows_output_valid(p.fp8, p.rows, p.width)) return cudaErrorInvalidValue;
  if (p.rows > 0 && !p.gate_up) return cudaErrorInvalidValue;
  if (p.rows == 0) return cudaSuccess;
  const bool block = p.fp8.layout == Fp8ScaleLayout::Block;
  auto kernel = block ? silu_mul_fp8_kernel<true> : silu_mul_fp8_kernel<false>;
  const int64_t span = span_columns(p, block);
  const int bytes = static_cast<int>(fp8_row_shared_bytes(span, block, p.fp8.group));
  if (int status = opt_in_dynamic_shared_memory(reinterpret_cast<const void*>(kernel), bytes, "silu_mul_fp8"))
    return status;
  const dim3 grid(static_cast<unsigned>(p.rows), static_cast<unsigned>((p.width + span - 1) / span));
  kernel<<<grid, block ? kSpanThreads : kRowThreads, bytes, static_cast<cudaStream_t>(stream)>>>(p, span);
  return launch_status();
}

}  // namespace rackserve::kernels
