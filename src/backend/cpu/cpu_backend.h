// The CPU reference backend: float32 activations and weights (FP8 weights stay e4m3 with
// f32 scales and run the W8A8 math of fp8_linear.h), straightforward loops,
// parallel over independent rows. It is the numerical oracle the CUDA backend is
// tested against, so clarity wins over speed everywhere it has to choose.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "core/thread_pool.h"

namespace rackserve {

class CpuBackend : public Backend {
 public:
  explicit CpuBackend(unsigned threads);

  std::string name() const override { return "cpu"; }
  Device device() const override { return Device{}; }
  DType activation_dtype() const override { return DType::F32; }

  Tensor upload_weight(const Tensor& host, WeightRole role) override;
  Tensor allocate_weight(const Shape& shape, WeightRole) override { return allocate_persistent(DType::F32, shape); }
  Tensor allocate_persistent(DType dtype, const Shape& shape) override;
  Tensor upload_persistent(const Tensor& host, DType dtype) override;
  QuantizedWeight upload_quantized_weight(const QuantizedWeight& host) override;
  void begin_step() override { step_buffers_.clear(); }
  Tensor upload_step_ints(std::span<const int32_t> values) override;
  Tensor allocate_step(DType dtype, const Shape& shape) override;
  std::vector<float> download_f32(const Tensor& tensor) override;
  void fill(const Tensor& tensor, float value) override;
  void fill_random(const Tensor& tensor, uint64_t seed, float scale) override;

  Tensor embedding(const Tensor& table, const Tensor& token_ids) override;
  Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps) override;
  Tensor add_rms_norm(const Tensor& residual, const Tensor& x, const Tensor& weight, float eps) override;
  void add_inplace(const Tensor& residual, const Tensor& x) override;
  void add_bias(const Tensor& x, const Tensor& bias) override;
  Tensor mean_squares(const Tensor& x, int64_t row_width) override;
  Tensor rms_norm_given_mean_squares(const Tensor& x, const Tensor& mean_squares, const Tensor& weight,
                                     float eps) override;
  Tensor linear(const Tensor& x, const Tensor& weight) override;
  Tensor linear_f32(const Tensor& x, const Tensor& weight) override { return linear(x, weight); }
  Tensor silu_mul(const Tensor& gate_up) override;
  Tensor gather_rows(const Tensor& x, const Tensor& row_indices) override;

  // fp8_activation_ops.cpp: the fused producers are the plain op (a virtual call, so a subclass
  // that changes rms_norm or silu_mul changes its FP8 variant alike) followed by quantize_fp8.
  QuantizedActivation quantize_fp8(const Tensor& x, const Fp8ActivationLayout& layout) override;
  NormedActivation rms_norm_fp8(const Tensor& x, const Tensor& weight, float eps,
                                const Fp8ActivationLayout& layout) override;
  NormedActivation add_rms_norm_fp8(const Tensor& residual, const Tensor& x, const Tensor& weight, float eps,
                                    const Fp8ActivationLayout& layout) override;
  QuantizedActivation silu_mul_fp8(const Tensor& gate_up, const Fp8ActivationLayout& layout) override;
  using Backend::linear_fp8;
  Tensor linear_fp8(const QuantizedActivation& x, const QuantizedWeight& w) override;  // fp8_ops.cpp

  void rope_inplace(const Tensor& x, int64_t offset, const RopeTable& rope, const Tensor& positions) override;
  void mla_write_cache(const MlaCacheWrite& args) override;
  Tensor mla_attention(const MlaAttention& args) override;

  void dsa_write_keys(const DsaKeyWrite& args) override;  // dsa_ops.cpp
  Tensor dsa_top_k(const DsaTopK& args) override;

  void gqa_write_cache(const GqaCacheWrite& args) override;  // gqa_ops.cpp
  Tensor gqa_attention(const GqaAttention& args) override;

  MoeRouting moe_route(const Tensor& router_logits, const Tensor& score_correction_bias,
                       const MoeRouterParams& params) override;
  Tensor moe_experts(const Tensor& x, const MoeRouting& routing, const ExpertWeights& experts) override;
  Tensor moe_experts(const QuantizedActivation& x, const MoeRouting& routing, const ExpertWeights& experts) override;

  // Each row through the oracle in sampling_reference.h.
  std::vector<SampledRow> sample(const Tensor& logits, std::span<const SamplingRow> rows) override;

  // The oracle runs every op eagerly: no step graphs (supports_step_graphs() is false).
  int64_t capture_step_graph(const std::function<void()>& record) override;
  void replay_step_graph(int64_t graph) override;
  void release_step_graph(int64_t graph) override;

 private:
  // moe_ops.cpp: the routed experts' per-pair work and its slot-ordered sum.
  struct ExpertScratch {
    std::vector<float> gate_up, activated, matvec;
  };
  using ExpertOutput = std::function<void(int64_t item, float* target, ExpertScratch& scratch)>;
  Tensor sum_expert_outputs(int64_t tokens, int64_t hidden, const MoeRouting& routing,
                            const ExpertOutput& expert_output);

  ThreadPool pool_;
  std::vector<std::unique_ptr<std::byte[]>> persistent_buffers_;
  std::vector<std::unique_ptr<std::byte[]>> step_buffers_;
};

// Kernels shared by the op files (plain loops over float32 rows).
namespace cpu {
// out[n] = dot(weight[n, :], x) for n in [0, rows): one matrix-vector product.
void matvec(const float* weight, const float* x, float* out, int64_t rows, int64_t cols);
float dot(const float* a, const float* b, int64_t count);
void rms_norm_row(const float* x, const float* weight, float* out, int64_t width, float eps);
// out[i] = silu(gate_up[i]) * gate_up[half + i] for i in [0, half): one token's SiLU-and-mul.
void silu_mul_row(const float* gate_up, int64_t half, float* out);
// Rotates one head's rope part in place; see RopeTable for the layouts.
void rope_row(float* x, const RopeTable& rope, int32_t position);

// The paged-attention metadata of a step, validated once (paged_attention.cpp) so that the
// attention loops can trust it: every token's sequence and position, every page id in [0, pages).
class PagedSequences {
 public:
  PagedSequences(const AttentionBatch& batch, int64_t pages);
  int32_t sequence_of(int64_t token) const { return sequence_of_[token]; }
  // Cache slot (page * page_size + offset) of position j of sequence s.
  int64_t slot(int64_t s, int64_t j) const {
    return static_cast<int64_t>(block_table_[s * max_blocks_ + j / page_size_]) * page_size_ + j % page_size_;
  }

 private:
  std::vector<int32_t> sequence_of_;
  const int32_t* block_table_;
  int64_t max_blocks_, page_size_;
};
}  // namespace cpu

}  // namespace rackserve
