// The CPU reference backend: float32 activations and weights (FP8 weights stay e4m3 with
// f32 scales and run the W8A8 math of fp8_linear.h), straightforward loops,
// parallel over independent rows. It is the numerical oracle the CUDA backend is
// tested against, so clarity wins over speed everywhere it has to choose.
#pragma once

#include <cstddef>
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
  Tensor linear(const Tensor& x, const Tensor& weight) override;
  Tensor linear_f32(const Tensor& x, const Tensor& weight) override { return linear(x, weight); }
  Tensor linear_fp8(const Tensor& x, const QuantizedWeight& w) override;  // fp8_ops.cpp
  Tensor silu_mul(const Tensor& gate_up) override;
  Tensor gather_rows(const Tensor& x, const Tensor& row_indices) override;

  void rope_inplace(const Tensor& x, int64_t offset, const RopeTable& rope, const Tensor& positions) override;
  void mla_write_cache(const MlaCacheWrite& args) override;
  Tensor mla_attention(const MlaAttention& args) override;

  MoeRouting moe_route(const Tensor& router_logits, const Tensor& score_correction_bias,
                       const MoeRouterParams& params) override;
  Tensor moe_experts(const Tensor& x, const MoeRouting& routing, const ExpertWeights& experts) override;

  // Each row through the oracle in sampling_reference.h.
  std::vector<SampledRow> sample(const Tensor& logits, std::span<const SamplingRow> rows) override;

  // The oracle runs every op eagerly: no step graphs (supports_step_graphs() is false).
  int64_t capture_step_graph(const std::function<void()>& record) override;
  void replay_step_graph(int64_t graph) override;
  void release_step_graph(int64_t graph) override;

 private:
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
// Rotates one head's rope part in place; see RopeTable for the layouts.
void rope_row(float* x, const RopeTable& rope, int32_t position);
}  // namespace cpu

}  // namespace rackserve
