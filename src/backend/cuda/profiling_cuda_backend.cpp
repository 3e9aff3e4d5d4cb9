#include "backend/cuda/profiling_cuda_backend.h"

#include <fmt/format.h>

namespace rackserve {

namespace {
// "linear 7168->1536": a weight [out, in] read by the op.
std::string product_label(const char* op, const Tensor& weight) {
  return fmt::format("{} {}->{}", op, weight.dim(weight.rank() - 1), weight.dim(weight.rank() - 2));
}
// "linear_split 7168->1536+576": the input width and the two parts' rows.
std::string split_label(const char* op, const Tensor& weight, int64_t first_rows) {
  return fmt::format("{} {}->{}+{}", op, weight.dim(1), first_rows, weight.dim(0) - first_rows);
}
// "moe_experts 256x2048 int4": the experts' count, intermediate width and storage.
std::string experts_label(const ExpertWeights& experts) {
  if (experts.down_int4)
    return fmt::format("moe_experts {}x{} int4", experts.down_int4->packed.dim(0), experts.down_int4->in_features());
  if (experts.down_fp4)
    return fmt::format("moe_experts {}x{} nvfp4", experts.down_fp4->packed.dim(0), experts.down_fp4->in_features());
  const Tensor& down = experts.down_fp8 ? experts.down_fp8->values : experts.down;
  return fmt::format("moe_experts {}x{}{}", down.dim(0), down.dim(2), experts.down_fp8 ? " fp8" : "");
}
}  // namespace

ProfilingCudaBackend::ProfilingCudaBackend(const CudaBackendOptions& options)
    : CudaBackend(options), profiler_(stream()) {}

OpProfiler* op_profiler(Backend& backend) {
  auto* profiling = dynamic_cast<ProfilingCudaBackend*>(&backend);
  return profiling ? &profiling->profiler() : nullptr;
}

// Each override opens its scope only while profiling, so building the label costs nothing
// when the profiler is disabled.
#define RS_PROFILED(label_expression) \
  OpProfiler::Scope scope = profiler_.enabled() ? profiler_.time(label_expression) : OpProfiler::Scope()

Tensor ProfilingCudaBackend::embedding(const Tensor& table, const Tensor& token_ids) {
  RS_PROFILED("embedding");
  return CudaBackend::embedding(table, token_ids);
}

Tensor ProfilingCudaBackend::rms_norm(const Tensor& x, const Tensor& weight, float eps) {
  RS_PROFILED(fmt::format("rms_norm {}", weight.numel()));
  return CudaBackend::rms_norm(x, weight, eps);
}

Tensor ProfilingCudaBackend::add_rms_norm(const Tensor& residual, const Tensor& x, const Tensor& weight, float eps) {
  RS_PROFILED("add_rms_norm");
  return CudaBackend::add_rms_norm(residual, x, weight, eps);
}

void ProfilingCudaBackend::add_inplace(const Tensor& residual, const Tensor& x) {
  RS_PROFILED("add");
  CudaBackend::add_inplace(residual, x);
}

Tensor ProfilingCudaBackend::linear(const Tensor& x, const Tensor& weight) {
  RS_PROFILED(product_label("linear", weight));
  return CudaBackend::linear(x, weight);
}

Tensor ProfilingCudaBackend::linear_f32(const Tensor& x, const Tensor& weight) {
  RS_PROFILED(product_label("linear_f32", weight));
  return CudaBackend::linear_f32(x, weight);
}

Tensor ProfilingCudaBackend::silu_mul(const Tensor& gate_up) {
  RS_PROFILED(fmt::format("silu_mul {}", gate_up.dim(1) / 2));
  return CudaBackend::silu_mul(gate_up);
}

Tensor ProfilingCudaBackend::gather_rows(const Tensor& x, const Tensor& row_indices) {
  RS_PROFILED("gather_rows");
  return CudaBackend::gather_rows(x, row_indices);
}

void ProfilingCudaBackend::rope_inplace(const Tensor& x, int64_t offset, const RopeTable& rope,
                                        const Tensor& positions) {
  RS_PROFILED("rope");
  CudaBackend::rope_inplace(x, offset, rope, positions);
}

void ProfilingCudaBackend::mla_write_cache(const MlaCacheWrite& args) {
  RS_PROFILED("mla_write_cache");
  CudaBackend::mla_write_cache(args);
}

Tensor ProfilingCudaBackend::mla_attention(const MlaAttention& args) {
  RS_PROFILED(fmt::format("mla_attention {} heads", args.heads));
  return CudaBackend::mla_attention(args);
}

void ProfilingCudaBackend::dsa_write_keys(const DsaKeyWrite& args) {
  RS_PROFILED("dsa_write_keys");
  CudaBackend::dsa_write_keys(args);
}

Tensor ProfilingCudaBackend::dsa_top_k(const DsaTopK& args) {
  RS_PROFILED("dsa_top_k");
  return CudaBackend::dsa_top_k(args);
}

MoeRouting ProfilingCudaBackend::moe_route(const Tensor& router_logits, const Tensor& score_correction_bias,
                                           const MoeRouterParams& params) {
  RS_PROFILED("moe_route");
  return CudaBackend::moe_route(router_logits, score_correction_bias, params);
}

Tensor ProfilingCudaBackend::moe_experts(const Tensor& x, const MoeRouting& routing, const ExpertWeights& experts) {
  RS_PROFILED(experts_label(experts));
  return CudaBackend::moe_experts(x, routing, experts);
}

Tensor ProfilingCudaBackend::moe_experts(const QuantizedActivation& x, const MoeRouting& routing,
                                         const ExpertWeights& experts) {
  RS_PROFILED(experts_label(experts));
  return CudaBackend::moe_experts(x, routing, experts);
}

QuantizedActivation ProfilingCudaBackend::quantize_fp8(const Tensor& x, const Fp8ActivationLayout& layout) {
  RS_PROFILED(fmt::format("quantize_fp8 {}", x.dim(-1)));
  return CudaBackend::quantize_fp8(x, layout);
}

NormedActivation ProfilingCudaBackend::rms_norm_fp8(const Tensor& x, const Tensor& weight, float eps,
                                                    const Fp8ActivationLayout& layout) {
  RS_PROFILED(fmt::format("rms_norm_fp8 {}", weight.numel()));
  return CudaBackend::rms_norm_fp8(x, weight, eps, layout);
}

NormedActivation ProfilingCudaBackend::add_rms_norm_fp8(const Tensor& residual, const Tensor& x, const Tensor& weight,
                                                        float eps, const Fp8ActivationLayout& layout) {
  RS_PROFILED("add_rms_norm_fp8");
  return CudaBackend::add_rms_norm_fp8(residual, x, weight, eps, layout);
}

QuantizedActivation ProfilingCudaBackend::silu_mul_fp8(const Tensor& gate_up, const Fp8ActivationLayout& layout) {
  RS_PROFILED(fmt::format("silu_mul_fp8 {}", gate_up.dim(1) / 2));
  return CudaBackend::silu_mul_fp8(gate_up, layout);
}

Tensor ProfilingCudaBackend::linear_fp8(const QuantizedActivation& x, const QuantizedWeight& w) {
  RS_PROFILED(product_label("linear_fp8", w.values));
  return CudaBackend::linear_fp8(x, w);
}

std::pair<Tensor, Tensor> ProfilingCudaBackend::linear_split(const Tensor& x, const Tensor& weight,
                                                             int64_t first_rows) {
  RS_PROFILED(split_label("linear_split", weight, first_rows));
  return CudaBackend::linear_split(x, weight, first_rows);
}

std::pair<Tensor, Tensor> ProfilingCudaBackend::linear_fp8_split(const QuantizedActivation& x,
                                                                 const QuantizedWeight& w, int64_t first_rows) {
  RS_PROFILED(split_label("linear_fp8_split", w.values, first_rows));
  return CudaBackend::linear_fp8_split(x, w, first_rows);
}

#undef RS_PROFILED

}  // namespace rackserve
