// The CPU backend's FP8 activations: quantize_fp8 row by row with fp8_linear.h's quantization,
// and the "fused" producers, which on the oracle are literally the plain op followed by
// quantize_fp8 (f32 activations need no rounding in between), so they define what the CUDA
// kernels that fuse them must reproduce.
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/fp8_linear.h"
#include "core/error.h"

namespace rackserve {

QuantizedActivation CpuBackend::quantize_fp8(const Tensor& x, const Fp8ActivationLayout& layout) {
  RS_CHECK(x.dtype == DType::F32 && x.rank() == 2, "quantize_fp8 input must be a 2-D F32 tensor, got {} {}",
           dtype_name(x.dtype), shape_string(x.shape));
  const int64_t rows = x.dim(0), width = x.dim(1);
  RS_CHECK(layout.scaling == Fp8Scaling::Channel ? layout.group == 0 : layout.group > 0 && width % layout.group == 0,
           "quantize_fp8: {} groups of {} columns do not fit width {}",
           layout.scaling == Fp8Scaling::Block ? "block" : "channel", layout.group, width);
  QuantizedActivation out{allocate_step(DType::F8_E4M3, {rows, width}),
                          allocate_step(DType::F32, layout.scales_shape(rows, width)), layout};
  const int64_t scales_per_row = layout.scaling == Fp8Scaling::Block ? width / layout.group : 1;
  pool_.parallel_for(rows, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      cpu::quantize_e4m3_row(x.as<float>() + r * width, width, layout, out.values.as<uint8_t>() + r * width,
                             out.scales.as<float>() + r * scales_per_row);
  });
  return out;
}

NormedActivation CpuBackend::rms_norm_fp8(const Tensor& x, const Tensor& weight, float eps,
                                          const Fp8ActivationLayout& layout) {
  Tensor normed = rms_norm(x, weight, eps);
  return {normed, quantize_fp8(normed, layout)};
}

NormedActivation CpuBackend::add_rms_norm_fp8(const Tensor& residual, const Tensor& x, const Tensor& weight, float eps,
                                              const Fp8ActivationLayout& layout) {
  Tensor normed = add_rms_norm(residual, x, weight, eps);
  return {normed, quantize_fp8(normed, layout)};
}

QuantizedActivation CpuBackend::silu_mul_fp8(const Tensor& gate_up, const Fp8ActivationLayout& layout) {
  return quantize_fp8(silu_mul(gate_up), layout);
}

}  // namespace rackserve
