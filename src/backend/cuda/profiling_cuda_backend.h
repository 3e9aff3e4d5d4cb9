// ProfilingCudaBackend: the CUDA backend with every compute op timed by an OpProfiler
// (cudaEvent pair per op, summed per label). make_cuda_backend returns one when
// CudaBackendOptions::profile_ops is set; otherwise nothing of this runs. Labels carry the
// shape that tells calls apart where one op serves several layers ("linear 7168->1536").
// Memory ops (uploads, fills, downloads) are not timed.
#pragma once

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/op_profiler.h"

namespace rackserve {

class ProfilingCudaBackend : public CudaBackend {
 public:
  explicit ProfilingCudaBackend(const CudaBackendOptions& options);

  OpProfiler& profiler() { return profiler_; }
  // Timing reads events back on the host after every op, so steps run eagerly while the
  // profiler is enabled; disabled, this is the plain backend, graphs included.
  bool supports_step_graphs() const override { return !profiler_.enabled(); }

  Tensor embedding(const Tensor& table, const Tensor& token_ids) override;
  Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps) override;
  Tensor add_rms_norm(const Tensor& residual, const Tensor& x, const Tensor& weight, float eps) override;
  void add_inplace(const Tensor& residual, const Tensor& x) override;
  Tensor linear(const Tensor& x, const Tensor& weight) override;
  Tensor linear_f32(const Tensor& x, const Tensor& weight) override;
  Tensor silu_mul(const Tensor& gate_up) override;
  Tensor gather_rows(const Tensor& x, const Tensor& row_indices) override;
  void rope_inplace(const Tensor& x, int64_t offset, const RopeTable& rope, const Tensor& positions) override;
  void mla_write_cache(const MlaCacheWrite& args) override;
  Tensor mla_attention(const MlaAttention& args) override;
  void dsa_write_keys(const DsaKeyWrite& args) override;
  Tensor dsa_top_k(const DsaTopK& args) override;
  MoeRouting moe_route(const Tensor& router_logits, const Tensor& score_correction_bias,
                       const MoeRouterParams& params) override;
  Tensor moe_experts(const Tensor& x, const MoeRouting& routing, const ExpertWeights& experts) override;
  Tensor moe_experts(const QuantizedActivation& x, const MoeRouting& routing, const ExpertWeights& experts) override;
  QuantizedActivation quantize_fp8(const Tensor& x, const Fp8ActivationLayout& layout) override;
  NormedActivation rms_norm_fp8(const Tensor& x, const Tensor& weight, float eps,
                                const Fp8ActivationLayout& layout) override;
  NormedActivation add_rms_norm_fp8(const Tensor& residual, const Tensor& x, const Tensor& weight, float eps,
                                    const Fp8ActivationLayout& layout) override;
  QuantizedActivation silu_mul_fp8(const Tensor& gate_up, const Fp8ActivationLayout& layout) override;
  using CudaBackend::linear_fp8;
  Tensor linear_fp8(const QuantizedActivation& x, const QuantizedWeight& w) override;
  std::pair<Tensor, Tensor> linear_split(const Tensor& x, const Tensor& weight, int64_t first_rows) override;
  std::pair<Tensor, Tensor> linear_fp8_split(const QuantizedActivation& x, const QuantizedWeight& w,
                                             int64_t first_rows) override;

 private:
  OpProfiler profiler_;
};

// The profile of a backend made by make_cuda_backend with profile_ops, or nullptr.
OpProfiler* op_profiler(Backend& backend);

}  // namespace rackserve
