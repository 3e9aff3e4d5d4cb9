// CudaBackend's FP8 activations (the W8A8 contract of backend/cpu/fp8_linear.h on the bf16
// values this backend stores): quantize_fp8 (kernels/gemm/fp8_quantize.cu), and RMSNorm /
// SiLU-and-mul fused with that quantization (kernels/common/rms_norm_fp8.cu, silu_mul_fp8.cu),
// which write the same bytes as the plain op followed by quantize_fp8. Rows wider than the fused
// kernels take (kFp8FusedMaxWidth) run as exactly that pair.
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_fp8_layout.h"
#include "core/error.h"
#include "rackserve/kernels/fp8_activation_params.h"
#include "rackserve/kernels/fp8_gemm_params.h"

namespace rackserve {

namespace {

kernels::Fp8RowsOutput rows_output(const QuantizedActivation& q) {
  return {q.values.data, q.scales.as<float>(), cuda_fp8_scale_layout(q.layout.scaling), q.layout.group};
}

}  // namespace

QuantizedActivation CudaBackend::allocate_fp8_activation(const char* op, int64_t rows, int64_t width,
                                                         const Fp8ActivationLayout& layout) {
  check_cuda_fp8_activation_layout(op, layout, width);
  return {allocate_step(DType::F8_E4M3, {rows, width}), allocate_step(DType::F32, layout.scales_shape(rows, width)),
          layout};
}

QuantizedActivation CudaBackend::quantize_fp8(const Tensor& x, const Fp8ActivationLayout& layout) {
  RS_CHECK(x.dtype == DType::BF16 && x.rank() == 2, "quantize_fp8 input must be a 2-D BF16 tensor, got {} {}",
           dtype_name(x.dtype), shape_string(x.shape));
  const int64_t m = x.dim(0), k = x.dim(1);
  QuantizedActivation out = allocate_fp8_activation("quantize_fp8", m, k, layout);
  if (m == 0) return out;
  const int64_t group = layout.scaling == Fp8Scaling::Block ? layout.group : k;
  const kernels::Fp8QuantizeParams params{
      x.data, out.values.data, out.scales.as<float>(), cuda_fp8_scale_layout(layout.scaling), m, k, group};
  check(kernels::launch_fp8_quantize_activations(params, stream_), "fp8_quantize_activations");
  return out;
}

NormedActivation CudaBackend::rms_norm_fp8(const Tensor& x, const Tensor& weight, float eps,
                                           const Fp8ActivationLayout& layout) {
  if (x.rank() == 2 && x.dim(1) > kernels::kFp8FusedMaxWidth) {
    Tensor normed = rms_norm(x, weight, eps);
    return {normed, quantize_fp8(normed, layout)};
  }
  const RmsNormLaunch norm = prepare_rms_norm("rms_norm_fp8", nullptr, x, weight, eps);
  NormedActivation out{norm.output, allocate_fp8_activation("rms_norm_fp8", x.dim(0), x.dim(1), layout)};
  check(kernels::launch_rms_norm_fp8({norm.params, rows_output(out.fp8)}, stream_), "rms_norm_fp8");
  return out;
}

NormedActivation CudaBackend::add_rms_norm_fp8(const Tensor& residual, const Tensor& x, const Tensor& weight,
                                               float eps, const Fp8ActivationLayout& layout) {
  if (x.rank() == 2 && x.dim(1) > kernels::kFp8FusedMaxWidth) {
    Tensor normed = add_rms_norm(residual, x, weight, eps);
    return {normed, quantize_fp8(normed, layout)};
  }
  const RmsNormLaunch norm = prepare_rms_norm("add_rms_norm_fp8", &residual, x, weight, eps);
  NormedActivation out{norm.output, allocate_fp8_activation("add_rms_norm_fp8", x.dim(0), x.dim(1), layout)};
  check(kernels::launch_rms_norm_fp8({norm.params, rows_output(out.fp8)}, stream_), "add_rms_norm_fp8");
  return out;
}

QuantizedActivation CudaBackend::silu_mul_fp8(const Tensor& gate_up, const Fp8ActivationLayout& layout) {
  RS_CHECK(gate_up.dtype == DType::BF16 && gate_up.rank() == 2 && gate_up.dim(1) % 2 == 0,
           "silu_mul_fp8 input must be a 2-D BF16 tensor of even width, got {} {}", dtype_name(gate_up.dtype),
           shape_string(gate_up.shape));
  const int64_t rows = gate_up.dim(0), width = gate_up.dim(1) / 2;
  if (width > kernels::kFp8FusedMaxWidth) return quantize_fp8(silu_mul(gate_up), layout);
  QuantizedActivation out = allocate_fp8_activation("silu_mul_fp8", rows, width, layout);
  check(kernels::launch_silu_mul_fp8({gate_up.data, rows, width, rows_output(out)}, stream_), "silu_mul_fp8");
  return out;
}

}  // namespace rackserve
