// The CUDA backend: BF16 weights and activations with a float32 residual stream, one
// stream per backend, persistent allocations for weights and KV pages, and a step arena
// (reused chunks, bump allocation) for activations. Every op validates shapes here and
// then calls a launcher from kernels/, which validates its params again.
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <unordered_map>
#include <vector>

#include "backend/backend.h"
#include "rackserve/kernels/elementwise_params.h"
#include "rackserve/kernels/gemm_params.h"
#include "rackserve/kernels/moe_fp8_params.h"
#include "rackserve/kernels/moe_params.h"

namespace rackserve {

struct CudaBackendOptions {
  int device = 0;
  // Fill every step allocation with NaN (F32, BF16; F8_E4M3 with its NaN code 0x7f) before
  // handing it out, so an op that leaves part of its output unwritten fails the tests (costs a
  // memset per allocation).
  bool poison_step_allocations = false;
  // Time every compute op with a cudaEvent pair, summed per op (ProfilingCudaBackend;
  // read it with op_profiler()). Off: the plain backend, no cost.
  bool profile_ops = false;
  // Programmatic dependent launch (sm_90+), so a kernel starts while the one before it
  // finishes: the decode (small-M) GEMMs are launched with it and stream their first weight
  // blocks meanwhile (kernels/gemm/small_m_stream.cuh), and in captured step graphs every
  // edge from a kernel to one of rackserve's kernels becomes a programmatic dependency
  // (cuda_step_graphs.cpp; each of those kernels waits for its predecessor before touching
  // memory). On by default: the FP8 DeepSeek-V3 decode step (13 layers, H200, 2026-12-05)
  // took 5.111 ms with it and 5.222 ms without at batch 1, 33.52 and 33.65 ms at batch 32
  // (decode_step --no-overlap-launches times the plain order).
  bool overlap_launches = true;
};

std::unique_ptr<Backend> make_cuda_backend(const CudaBackendOptions& options);

class MoeFp8ConfigSelector;  // backend/cuda/moe_fp8_config_file.h

class CudaBackend : public Backend {
 public:
  explicit CudaBackend(const CudaBackendOptions& options);
  ~CudaBackend() override;

  std::string name() const override { return "cuda"; }
  Device device() const override { return Device{DeviceKind::Cuda, options_.device}; }
  DType activation_dtype() const override { return DType::BF16; }

  // The dtype a weight of `role` is stored in: F32 for the rope frequencies and the router
  // bias, BF16 for every other dense weight (FP8 weights come through upload_quantized_weight).
  static DType weight_dtype(WeightRole role);
  Tensor upload_weight(const Tensor& host, WeightRole role) override;
  Tensor allocate_weight(const Shape& shape, WeightRole role) override;
  Tensor allocate_persistent(DType dtype, const Shape& shape) override;
  Tensor upload_persistent(const Tensor& host, DType dtype) override;
  // cuda_fp8_ops.cpp: the layouts the FP8 kernels take (cuda_fp8_layout.h), checked here.
  QuantizedWeight upload_quantized_weight(const QuantizedWeight& host) override;
  void begin_step() override;
  Tensor upload_step_ints(std::span<const int32_t> values) override;
  Tensor allocate_step(DType dtype, const Shape& shape) override;
  void* native_stream() const override { return stream_; }
  std::vector<float> download_f32(const Tensor& tensor) override;
  std::optional<DeviceMemory> device_memory() const override;
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
  Tensor linear_f32(const Tensor& x, const Tensor& weight) override;
  Tensor silu_mul(const Tensor& gate_up) override;
  Tensor gather_rows(const Tensor& x, const Tensor& row_indices) override;

  // cuda_fp8_activation_ops.cpp: quantization and the producers fused with it.
  QuantizedActivation quantize_fp8(const Tensor& x, const Fp8ActivationLayout& layout) override;
  NormedActivation rms_norm_fp8(const Tensor& x, const Tensor& weight, float eps,
                                const Fp8ActivationLayout& layout) override;
  NormedActivation add_rms_norm_fp8(const Tensor& residual, const Tensor& x, const Tensor& weight, float eps,
                                    const Fp8ActivationLayout& layout) override;
  QuantizedActivation silu_mul_fp8(const Tensor& gate_up, const Fp8ActivationLayout& layout) override;
  // cuda_fp8_ops.cpp: the W8A8 products.
  using Backend::linear_fp8;
  Tensor linear_fp8(const QuantizedActivation& x, const QuantizedWeight& w) override;
  // Both at decode sizes: one small-M launch writing the two parts' outputs one after the other
  // (cuda_ops.cpp, cuda_fp8_ops.cpp); larger m: the two parts as two products.
  std::pair<Tensor, Tensor> linear_split(const Tensor& x, const Tensor& weight, int64_t first_rows) override;
  std::pair<Tensor, Tensor> linear_fp8_split(const QuantizedActivation& x, const QuantizedWeight& w,
                                             int64_t first_rows) override;

  void rope_inplace(const Tensor& x, int64_t offset, const RopeTable& rope, const Tensor& positions) override;
  void mla_write_cache(const MlaCacheWrite& args) override;
  Tensor mla_attention(const MlaAttention& args) override;
  void dsa_write_keys(const DsaKeyWrite& args) override;  // cuda_dsa_ops.cpp
  Tensor dsa_top_k(const DsaTopK& args) override;
  void gqa_write_cache(const GqaCacheWrite& args) override;
  Tensor gqa_attention(const GqaAttention& args) override;

  MoeRouting moe_route(const Tensor& router_logits, const Tensor& score_correction_bias,
                       const MoeRouterParams& params) override;
  Tensor moe_experts(const Tensor& x, const MoeRouting& routing, const ExpertWeights& experts) override;
  Tensor moe_experts(const QuantizedActivation& x, const MoeRouting& routing, const ExpertWeights& experts) override;
  // FP8 experts (gate_up_fp8 / down_fp8) with an explicit config (moe_experts takes the tuned
  // one from moe_fp8_configs_); throws on a config the kernels refuse (unsupported, or over the
  // device's shared memory). The Tensor form quantizes x first (quantize_fp8).
  Tensor moe_experts_fp8(const QuantizedActivation& x, const MoeRouting& routing, const ExpertWeights& experts,
                         const kernels::MoeFp8Config& config);
  Tensor moe_experts_fp8(const Tensor& x, const MoeRouting& routing, const ExpertWeights& experts,
                         const kernels::MoeFp8Config& config);
  // The config moe_experts runs these FP8 experts with for `tokens` tokens routed to `top_k`
  // experts each: the device's tuned file (nearest M), else the default.
  kernels::MoeFp8Config moe_fp8_config(const ExpertWeights& experts, int64_t tokens, int64_t top_k);

  // cuda_sampling.cpp: every row on the GPU (kernels/sampling), results copied back.
  std::vector<SampledRow> sample(const Tensor& logits, std::span<const SamplingRow> rows) override;

  // cuda_step_graphs.cpp: CUDA graphs captured from and replayed on the backend's stream.
  bool supports_step_graphs() const override { return true; }
  int64_t capture_step_graph(const std::function<void()>& record) override;
  void replay_step_graph(int64_t graph) override;
  void release_step_graph(int64_t graph) override;
  // Kernels, and edges between them made programmatic, in the most recently captured step
  // graph (0 before any): benches report them.
  int64_t last_step_graph_kernels() const { return graphs_.empty() ? 0 : graphs_.back().kernels; }
  int64_t last_step_graph_overlapped_edges() const { return graphs_.empty() ? 0 : graphs_.back().overlapped_edges; }

 protected:
  void* stream() const { return stream_; }  // cudaStream_t every op runs on

 private:
  // Sorts the routing's pairs into per-expert lists padded to `block` (moe_align_tokens) in
  // step memory and returns the launched kernel's params: its pointers and layout are what
  // the grouped expert kernels read.
  kernels::MoeAlignParams align_moe_pairs(const MoeRouting& routing, int64_t experts, int64_t block);
  struct Chunk {
    std::byte* data = nullptr;
    size_t bytes = 0;
  };
  struct ArenaMark {  // the step arena's bump position
    size_t chunk = 0, offset = 0;
    bool operator==(const ArenaMark&) const = default;
  };
  struct StepGraph {
    void* exec = nullptr;  // cudaGraphExec_t; nullptr once released
    // cudaGraph_t as captured, kept while `exec` lives when exec was instantiated from a copy
    // (overlapped launches): the captured graph owns what libraries attached to the capture
    // (NCCL's resources), which a copy need not reference.
    void* captured = nullptr;
    ArenaMark start, end;  // arena before and after the recorded ops' allocations
    int64_t kernels = 0;   // kernel nodes captured
    int64_t overlapped_edges = 0;  // kernel edges made programmatic (options_.overlap_launches)
  };
  Tensor allocate_persistent_uninitialized(DType dtype, const Shape& shape);
  // A (residual +) RMSNorm's operands validated at the op boundary `op`, its bf16 output
  // allocated, and the params of launch_rms_norm / launch_rms_norm_fp8 (residual may be nullptr).
  struct RmsNormLaunch {
    kernels::RmsNormParams params;
    Tensor output;
  };
  RmsNormLaunch prepare_rms_norm(const char* op, const Tensor* residual, const Tensor& x, const Tensor& weight,
                                 float eps);
  // Step memory for rows x width activations quantized in `layout`, which must be one the FP8
  // kernels read (checked, naming `op`).
  QuantizedActivation allocate_fp8_activation(const char* op, int64_t rows, int64_t width,
                                              const Fp8ActivationLayout& layout);
  // Synchronous host-to-device copy through stream_.
  void copy_to_device(void* device_data, const void* host_data, size_t bytes);
  Tensor linear_into(const Tensor& x, const Tensor& weight, DType output_dtype);
  // The small-M BF16 GEMM on `params` (its plan and workspace from here).
  void launch_linear_small_m(kernels::LinearBf16Params params);
  // The W8A8 GEMM of linear_fp8 into `out` (m x n elements); segment_rows as in LinearFp8Params.
  void launch_linear_fp8(const QuantizedActivation& x, const QuantizedWeight& w, const Tensor& out,
                         int64_t segment_rows);
  // A flat [m * n] output of a segment_rows launch as its two blocks [m, first_rows] and
  // [m, n - first_rows].
  static std::pair<Tensor, Tensor> split_output(const Tensor& flat, int64_t m, int64_t first_rows, int64_t n);
  void check(int status, const char* what) const;

  CudaBackendOptions options_;
  void* stream_ = nullptr;
  int sm_count_ = 0;  // read once: kernel plans (split counts) depend on it every step
  // The small-M GEMMs' per-row-group split counters (LinearBf16Params::split_counters), shared
  // by every GEMM on the stream: launches on one stream never overlap where they use them.
  void* split_counters_ = nullptr;
  std::vector<void*> persistent_;
  std::vector<Chunk> chunks_;
  size_t chunk_index_ = 0, chunk_offset_ = 0;
  std::vector<StepGraph> graphs_;  // indexed by graph id
  // The fused FP8 experts' launch configs: tuned files under default_kernel_config_root() for
  // this device, else the kernels' default. Files are read on a shape's first moe_experts call.
  std::unique_ptr<MoeFp8ConfigSelector> moe_fp8_configs_;
  // kernels::moe_fp8_resident_ctas per (config, scale layout), the experts' K-split target:
  // asked of the runtime once per key, not on every step.
  std::unordered_map<uint64_t, int64_t> moe_fp8_resident_ctas_;
  int64_t moe_fp8_split_target(const kernels::MoeFp8Config& config, kernels::Fp8ScaleLayout layout);
  // The small-M GEMMs' resident CTAs per SM for their split plans, asked of the runtime once per
  // (GEMM, m): [BF16, FP8 block scales, FP8 channel scales][m = 1..64; 0 unused]; -1 until
  // asked, 0 when it could not be told (the plan then assumes SM120's count).
  enum class SmallMGemm { Bf16, Fp8Block, Fp8Channel };
  std::array<std::array<int, 65>, 3> small_m_resident_per_sm_;
  int small_m_resident_per_sm(SmallMGemm gemm, int64_t m);
};

}  // namespace rackserve
