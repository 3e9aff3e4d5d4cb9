// CudaBackend's FP8 ops: storing a QuantizedWeight on the device (e4m3 bytes as they are,
// scales widened to f32) and the W8A8 linear of the CPU contract (backend/cpu/fp8_linear.h):
// the activations are quantized to e4m3 per token by one kernel, then the small-M (decode)
// or tiled (prefill) FP8 GEMM runs on them.
#include "backend/cuda/cuda_backend.h"
#include "core/error.h"
#include "rackserve/kernels/fp8_gemm_params.h"

namespace rackserve {

namespace {

// The kernels' K block: the Block layout's block_in must be this (DeepSeek's 128).
constexpr int64_t kKernelBlockIn = 128;
// The Channel layout's input width granule (16-byte loads of e4m3).
constexpr int64_t kChannelWidthGranule = 16;
// The small-M kernel holds up to 8 tiles of 8 tokens; beyond that the tiled kernel reads each
// weight byte once per 128 tokens instead of once per 64.
constexpr int64_t kSmallMMaxTokens = 64;

// Throws unless `w` is a well-formed rank-`rank` QuantizedWeight (scales of any dtype) in a
// layout the CUDA kernels run.
void check_fp8_weight(const QuantizedWeight& w, int rank) {
  RS_CHECK(w.values.dtype == DType::F8_E4M3 && w.values.rank() == rank,
           "FP8 weight values must be a rank-{} F8_E4M3 tensor, got {} {}", rank, dtype_name(w.values.dtype),
           shape_string(w.values.shape));
  const int64_t out = w.out_features(), in = w.in_features();
  Shape expected;
  if (rank == 3) expected.push_back(w.values.dim(0));
  if (w.scaling == Fp8Scaling::Block) {
    RS_CHECK(w.block_out > 0 && w.block_in > 0 && in % w.block_in == 0,
             "FP8 block weight [{}, {}]: blocks [{}, {}] must divide the input width", out, in, w.block_out, w.block_in);
    RS_CHECK(w.block_in == kKernelBlockIn, "FP8 block weight [{}, {}]: the CUDA kernels take block_in {}, not {}", out,
             in, kKernelBlockIn, w.block_in);
    expected.push_back((out + w.block_out - 1) / w.block_out);
    expected.push_back(in / w.block_in);
  } else {
    RS_CHECK(in % kChannelWidthGranule == 0,
             "FP8 channel weight [{}, {}]: the CUDA kernels need an input width that is a multiple of {}", out, in,
             kChannelWidthGranule);
    expected.push_back(out);
  }
  RS_CHECK(w.scales.shape == expected, "FP8 weight {} has scales {}, expected {}", shape_string(w.values.shape),
           shape_string(w.scales.shape), shape_string(expected));
}

}  // namespace

QuantizedWeight CudaBackend::upload_quantized_weight(const QuantizedWeight& host) {
  RS_CHECK(host.values.rank() == 2 || host.values.rank() == 3, "FP8 weight values must be rank 2 or 3, got {}",
           shape_string(host.values.shape));
  check_fp8_weight(host, host.values.rank());
  RS_CHECK(host.values.device.kind == DeviceKind::Host && host.scales.device.kind == DeviceKind::Host,
           "upload_quantized_weight takes host tensors");
  QuantizedWeight stored = host;
  stored.values = allocate_persistent_uninitialized(DType::F8_E4M3, host.values.shape);
  if (host.values.bytes() > 0) copy_to_device(stored.values.data, host.values.data, host.values.bytes());
  stored.scales = upload_persistent(host.scales, DType::F32);  // converts bf16 / f16 scales
  return stored;
}

Tensor CudaBackend::linear_fp8(const Tensor& x, const QuantizedWeight& w) {
  RS_CHECK(x.dtype == DType::BF16 && x.rank() == 2, "linear_fp8 input must be a 2-D BF16 tensor, got {} {}",
           dtype_name(x.dtype), shape_string(x.shape));
  check_fp8_weight(w, 2);
  RS_CHECK(w.scales.dtype == DType::F32, "FP8 weight scales must be F32 (upload_quantized_weight), got {}",
           dtype_name(w.scales.dtype));
  const int64_t m = x.dim(0), k = x.dim(1), n = w.out_features();
  RS_CHECK(w.in_features() == k, "linear_fp8: input width {} does not match weight {}", k,
           shape_string(w.values.shape));
  const bool block = w.scaling == Fp8Scaling::Block;
  Tensor out = allocate_step(DType::BF16, {m, n});
  if (m == 0) return out;

  Tensor quantized = allocate_step(DType::F8_E4M3, {m, k});
  Tensor x_scales = allocate_step(DType::F32, block ? Shape{m, k / kKernelBlockIn} : Shape{m});
  const kernels::Fp8ScaleLayout layout = block ? kernels::Fp8ScaleLayout::Block : kernels::Fp8ScaleLayout::Channel;
  check(kernels::launch_fp8_quantize_activations(
            {x.data, quantized.data, x_scales.as<float>(), layout, m, k, block ? kKernelBlockIn : k}, stream_),
        "fp8_quantize_activations");

  const bool small_m = m <= kSmallMMaxTokens;
  const kernels::LinearFp8Config config =
      small_m ? kernels::plan_linear_fp8_small_m(m, n, k, sm_count_) : kernels::plan_linear_fp8_tiled(m, n, k, sm_count_);
  const int64_t workspace_floats = kernels::linear_fp8_workspace_floats(m, n, config);
  Tensor workspace = workspace_floats > 0 ? allocate_step(DType::F32, {workspace_floats}) : Tensor{};
  kernels::LinearFp8Params params{};
  params.x = quantized.data;
  params.x_scales = x_scales.as<float>();
  params.weight = w.values.data;
  params.weight_scales = w.scales.as<float>();
  params.y = out.data;
  params.workspace = workspace.as<float>();
  params.y_type = kernels::ElementType::BF16;
  params.layout = layout;
  params.m = m;
  params.n = n;
  params.k = k;
  params.block_out = block ? w.block_out : 1;
  if (small_m)
    check(kernels::launch_linear_fp8_small_m(params, config, stream_), "linear_fp8_small_m");
  else
    check(kernels::launch_linear_fp8_tiled(params, config, stream_), "linear_fp8_tiled");
  return out;
}

}  // namespace rackserve
