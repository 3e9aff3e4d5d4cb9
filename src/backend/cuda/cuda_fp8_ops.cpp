// CudaBackend's FP8 products: storing a QuantizedWeight on the device (e4m3 bytes as they are,
// scales widened to f32), the W8A8 linear of the CPU contract (backend/cpu/fp8_linear.h) on
// quantized activations (cuda_fp8_activation_ops.cpp makes them): the small-M (decode) or tiled
// (prefill) FP8 GEMM; and the FP8 routed experts (the same contract per expert,
// kernels/moe/moe_experts_fp8.cu) after the pair lists are aligned to the config's block_m.
#include <algorithm>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_fp8_layout.h"
#include "core/error.h"
#include "rackserve/kernels/fp8_gemm_params.h"
#include "rackserve/kernels/moe_fp8_params.h"
#include "rackserve/kernels/moe_params.h"

namespace rackserve {

namespace {

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
    RS_CHECK(w.block_in == kCudaFp8BlockIn,
             "FP8 block weight [{}, {}]: the CUDA kernels take block_in {}, not {} (--dequantize-fp8 runs this "
             "checkpoint with BF16 weights)",
             out, in, kCudaFp8BlockIn, w.block_in);
    expected.push_back((out + w.block_out - 1) / w.block_out);
    expected.push_back(in / w.block_in);
  } else {
    RS_CHECK(in % kCudaFp8ChannelGranule == 0,
             "FP8 channel weight [{}, {}]: the CUDA kernels need an input width that is a multiple of {}", out, in,
             kCudaFp8ChannelGranule);
    expected.push_back(out);
  }
  RS_CHECK(w.scales.shape == expected, "FP8 weight {} has scales {}, expected {}", shape_string(w.values.shape),
           shape_string(w.scales.shape), shape_string(expected));
}

// Throws unless `x` is quantized activations the kernels can multiply with `w`.
void check_fp8_operands(const char* op, const QuantizedActivation& x, const QuantizedWeight& w) {
  check_quantized_activation(op, x);
  RS_CHECK(w.in_features() == x.width(), "{}: input width {} does not match weight {}", op, x.width(),
           shape_string(w.values.shape));
  check_layout_matches(op, x.layout, w);
  check_cuda_fp8_activation_layout(op, x.layout, x.width());
}

// Throws unless linear_fp8 can run x [m, in] (quantized) times the rank-2 `w`.
void check_linear_fp8_operands(const char* op, const QuantizedActivation& x, const QuantizedWeight& w) {
  check_fp8_weight(w, 2);
  RS_CHECK(w.scales.dtype == DType::F32, "FP8 weight scales must be F32 (upload_quantized_weight), got {}",
           dtype_name(w.scales.dtype));
  check_fp8_operands(op, x, w);
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

Tensor CudaBackend::linear_fp8(const QuantizedActivation& x, const QuantizedWeight& w) {
  check_linear_fp8_operands("linear_fp8", x, w);
  Tensor out = allocate_step(DType::BF16, {x.rows(), w.out_features()});
  launch_linear_fp8(x, w, out, 0);
  return out;
}

// Decode sizes: one small-M launch storing the two row blocks' outputs one after the other
// (segment_rows), viewed as two tensors. Otherwise the two parts as two products.
std::pair<Tensor, Tensor> CudaBackend::linear_fp8_split(const QuantizedActivation& x, const QuantizedWeight& w,
                                                        int64_t first_rows) {
  check_linear_fp8_operands("linear_fp8_split", x, w);
  const int64_t m = x.rows(), n = w.out_features();
  RS_CHECK(0 < first_rows && first_rows < n, "linear_fp8_split: rows cut at {} of a {} weight",
           first_rows, shape_string(w.values.shape));
  // Whatever m: the parts must be weights of their own (the path above 64 tokens runs them so).
  RS_CHECK(w.scaling != Fp8Scaling::Block || first_rows % w.block_out == 0,
           "linear_fp8_split: rows cut at {} inside a {}-row scale block", first_rows, w.block_out);
  if (m > kSmallMMaxTokens)
    return {CudaBackend::linear_fp8(x, w.rows(0, first_rows)), CudaBackend::linear_fp8(x, w.rows(first_rows, n))};
  Tensor out = allocate_step(DType::BF16, {m * n});
  launch_linear_fp8(x, w, out, first_rows);
  return split_output(out, m, first_rows, n);
}

void CudaBackend::launch_linear_fp8(const QuantizedActivation& x, const QuantizedWeight& w, const Tensor& out,
                                    int64_t segment_rows) {
  const int64_t m = x.rows(), k = x.width(), n = w.out_features();
  const bool block = w.scaling == Fp8Scaling::Block;
  if (m == 0) return;

  const bool small_m = m <= kSmallMMaxTokens;
  kernels::LinearFp8Config config =
      small_m ? kernels::plan_linear_fp8_small_m(
                    m, n, k, sm_count_,
                    small_m_resident_per_sm(block ? SmallMGemm::Fp8Block : SmallMGemm::Fp8Channel, m))
              : kernels::plan_linear_fp8_tiled(m, n, k, sm_count_);
  config.overlap_prior = small_m && options_.overlap_launches;
  const int64_t workspace_floats = kernels::linear_fp8_workspace_floats(m, n, config);
  Tensor workspace = workspace_floats > 0 ? allocate_step(DType::F32, {workspace_floats}) : Tensor{};
  kernels::LinearFp8Params params{};
  params.x = x.values.data;
  params.x_scales = x.scales.as<float>();
  params.weight = w.values.data;
  params.weight_scales = w.scales.as<float>();
  params.y = out.data;
  params.workspace = workspace.as<float>();
  params.y_type = kernels::ElementType::BF16;
  params.layout = cuda_fp8_scale_layout(w.scaling);
  params.m = m;
  params.n = n;
  params.k = k;
  params.block_out = block ? w.block_out : 1;
  params.segment_rows = segment_rows;
  if (small_m) params.split_counters = static_cast<unsigned*>(split_counters_);
  if (small_m)
    check(kernels::launch_linear_fp8_small_m(params, config, stream_), "linear_fp8_small_m");
  else
    check(kernels::launch_linear_fp8_tiled(params, config, stream_), "linear_fp8_tiled");
}

int CudaBackend::small_m_resident_per_sm(SmallMGemm gemm, int64_t m) {
  // By m itself: the kernels decide which of their instantiations an m runs.
  int& entry = small_m_resident_per_sm_[static_cast<size_t>(gemm)][static_cast<size_t>(std::clamp<int64_t>(m, 1, 64))];
  if (entry < 0)
    entry = gemm == SmallMGemm::Bf16 ? kernels::linear_bf16_small_m_resident_per_sm(m)
                                     : kernels::linear_fp8_small_m_resident_per_sm(
                                           m, gemm == SmallMGemm::Fp8Block ? kernels::Fp8ScaleLayout::Block
                                                                           : kernels::Fp8ScaleLayout::Channel);
  return entry;
}

int64_t CudaBackend::moe_fp8_split_target(const kernels::MoeFp8Config& config, kernels::Fp8ScaleLayout layout) {
  const uint64_t key = uint64_t(config.block_m) | uint64_t(config.block_n) << 8 | uint64_t(config.block_k) << 16 |
                       uint64_t(config.stages) << 24 | uint64_t(config.warps) << 28 |
                       uint64_t(layout == kernels::Fp8ScaleLayout::Block) << 32;
  auto [entry, inserted] = moe_fp8_resident_ctas_.try_emplace(key, 0);
  if (inserted) entry->second = kernels::moe_fp8_resident_ctas(config, layout);
  return entry->second;
}

Tensor CudaBackend::moe_experts_fp8(const Tensor& x, const MoeRouting& routing, const ExpertWeights& experts,
                                    const kernels::MoeFp8Config& config) {
  RS_CHECK(experts.gate_up_fp8 && experts.down_fp8, "moe_experts_fp8 needs FP8 gate_up and down");
  return moe_experts_fp8(quantize_fp8(x, Fp8ActivationLayout::of(*experts.gate_up_fp8)), routing, experts, config);
}

Tensor CudaBackend::moe_experts_fp8(const QuantizedActivation& x, const MoeRouting& routing,
                                    const ExpertWeights& experts, const kernels::MoeFp8Config& config) {
  RS_CHECK(experts.gate_up_fp8 && experts.down_fp8, "moe_experts_fp8 needs FP8 gate_up and down");
  const QuantizedWeight& gate_up = *experts.gate_up_fp8;
  const QuantizedWeight& down = *experts.down_fp8;
  check_fp8_weight(gate_up, 3);
  check_fp8_weight(down, 3);
  check_fp8_operands("moe_experts_fp8", x, gate_up);
  RS_CHECK(gate_up.scales.dtype == DType::F32 && down.scales.dtype == DType::F32,
           "FP8 expert scales must be F32 (upload_quantized_weight)");
  RS_CHECK(gate_up.scaling == down.scaling && (gate_up.scaling != Fp8Scaling::Block || gate_up.block_out == down.block_out),
           "FP8 expert gate_up and down must share the scale layout and block size");
  const int64_t tokens = x.rows(), hidden = x.width(), top_k = routing.expert_ids.dim(1);
  const int64_t count = gate_up.values.dim(0), inter = gate_up.out_features() / 2;
  RS_CHECK(gate_up.out_features() == 2 * inter && down.values.shape == Shape({count, hidden, inter}),
           "FP8 expert weights {} / {} do not match hidden {}", shape_string(gate_up.values.shape),
           shape_string(down.values.shape), hidden);
  RS_CHECK(routing.expert_ids.dtype == DType::I32 && routing.weights.dtype == DType::F32 &&
               routing.expert_ids.dim(0) == tokens && routing.weights.numel() == tokens * top_k,
           "moe routing {} does not match {} tokens", shape_string(routing.expert_ids.shape), tokens);
  RS_CHECK(count <= kernels::kMoeAlignMaxExperts, "{} experts: the align kernel takes at most {}", count,
           kernels::kMoeAlignMaxExperts);
  RS_CHECK(kernels::moe_fp8_config_supported(config), "unsupported FP8 MoE config {{block_m {}, block_n {}, block_k {}, "
           "stages {}, warps {}}}", config.block_m, config.block_n, config.block_k, config.stages, config.warps);
  Tensor out = allocate_step(DType::F32, {tokens, hidden});
  if (tokens == 0) return out;

  // Pair lists padded to the config's block_m, then the kernels' workspace.
  const kernels::MoeAlignParams align = align_moe_pairs(routing, count, config.block_m);
  const kernels::Fp8ScaleLayout layout = cuda_fp8_scale_layout(gate_up.scaling);
  const int64_t split_target = moe_fp8_split_target(config, layout);
  const size_t workspace_bytes = kernels::moe_fp8_workspace_bytes(tokens, top_k, hidden, inter, config, split_target);
  Tensor workspace = allocate_step(DType::U8, {static_cast<int64_t>(std::max<size_t>(workspace_bytes, 1))});

  kernels::MoeFp8ExpertsParams params{};
  params.x = x.values.data;
  params.x_scales = x.scales.as<float>();
  params.weights = routing.weights.as<float>();
  params.gate_up = gate_up.values.data;
  params.gate_up_scales = gate_up.scales.as<float>();
  params.down = down.values.data;
  params.down_scales = down.scales.as<float>();
  kernels::set_pair_lists(params, align);
  params.workspace = workspace.data;
  params.output = out.as<float>();
  params.layout = layout;
  params.split_target_ctas = split_target;
  params.block_out = gate_up.scaling == Fp8Scaling::Block ? gate_up.block_out : 1;
  params.tokens = tokens;
  params.top_k = top_k;
  params.experts = count;
  params.hidden = hidden;
  params.inter = inter;
  check(kernels::launch_moe_experts_fp8(params, config, stream_), "moe_experts_fp8");
  return out;
}

}  // namespace rackserve
