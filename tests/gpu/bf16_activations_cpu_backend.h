// Bf16ActivationsCpuBackend: the CPU oracle with its activations and dense weights rounded to
// BF16 wherever the CUDA backend stores them as BF16, so a comparison of the two measures the
// kernels and not the storage precision.
//
// Why: the W8A8 FP8 path quantizes each linear's input to e4m3 (steps of 2^-3 relative). Any
// BF16-level difference between the two backends moves some inputs across an e4m3 rounding
// boundary, by a whole e4m3 step each, and over a few layers that cost the logits about 1e-3
// of cosine (H200, 2026-12-04: 0.994-0.999 on the FP8 fixtures, with float32 activations in
// the oracle; then 0.9988 with BF16 activations but float32 weights: an FP8 kv_b_proj is
// dequantized at load, to float32 values on the CPU and to BF16 on CUDA).
//
// Rounded, as on CUDA: dense weights (uploaded, or filled with dummy values) but for the rope
// frequencies and the router bias (CudaBackend::weight_dtype); the outputs of rms_norm /
// add_rms_norm (not the residual, which the CUDA backend keeps in float32; their FP8 variants
// quantize these rounded outputs), linear, linear_fp8, silu_mul, mla_attention; rope_inplace's
// rotated tensor; the latent cache after each write (the CUDA cache is BF16). Not rounded:
// embedding rows (BF16 table values, exact), linear_f32 (router and lm_head logits are float32
// on CUDA too), and moe_experts' output and the shared expert's sum into it (add_inplace), which
// CUDA keeps in float32. Not modelled: the BF16 experts' SiLU x up, which CUDA stores in BF16
// between its two GEMMs (the FP8 experts quantize it to e4m3 from float32, as here).
#pragma once

#include <cstdint>
#include <set>

#include "backend/cpu/cpu_backend.h"
#include "backend/cuda/cuda_backend.h"
#include "core/dtype.h"

namespace rackserve::testing {

class Bf16ActivationsCpuBackend : public CpuBackend {
 public:
  // With `round_activations` false this is the plain float32 oracle.
  explicit Bf16ActivationsCpuBackend(bool round_activations) : CpuBackend(0), round_(round_activations) {}

  Tensor upload_weight(const Tensor &host, WeightRole role) override {
    Tensor weight = CpuBackend::upload_weight(host, role);
    return stored_as_bf16(role) ? rounded(weight) : weight;
  }
  Tensor allocate_weight(const Shape &shape, WeightRole role) override {
    Tensor weight = CpuBackend::allocate_weight(shape, role);
    if (stored_as_bf16(role)) bf16_weights_.insert(weight.data);
    return weight;
  }
  // Dummy weights: the same values as CUDA's fill_random, then CUDA's storage rounding.
  void fill_random(const Tensor &tensor, uint64_t seed, float scale) override {
    CpuBackend::fill_random(tensor, seed, scale);
    if (bf16_weights_.contains(tensor.data)) rounded(tensor);
  }

  Tensor rms_norm(const Tensor &x, const Tensor &weight, float eps) override {
    return rounded(CpuBackend::rms_norm(x, weight, eps));
  }
  Tensor add_rms_norm(const Tensor &residual, const Tensor &x, const Tensor &weight, float eps) override {
    CpuBackend::add_inplace(residual, x);  // the float32 residual stream
    return rounded(CpuBackend::rms_norm(residual, weight, eps));
  }
  Tensor linear(const Tensor &x, const Tensor &weight) override { return rounded(CpuBackend::linear(x, weight)); }
  Tensor linear_f32(const Tensor &x, const Tensor &weight) override { return CpuBackend::linear(x, weight); }
  // Every FP8 product runs here (linear_fp8 on a tensor quantizes it, then
  // calls this); the fused producers (rms_norm_fp8, silu_mul_fp8, ...) call the
  // rounded plain ops above first.
  using CpuBackend::linear_fp8;
  Tensor linear_fp8(const QuantizedActivation &x, const QuantizedWeight &w) override {
    return rounded(CpuBackend::linear_fp8(x, w));
  }
  Tensor silu_mul(const Tensor &gate_up) override { return rounded(CpuBackend::silu_mul(gate_up)); }
  void rope_inplace(const Tensor &x, int64_t offset, const RopeTable &rope, const Tensor &positions) override {
    CpuBackend::rope_inplace(x, offset, rope, positions);
    rounded(x);
  }
  void mla_write_cache(const MlaCacheWrite &args) override {
    CpuBackend::mla_write_cache(args);
    if (args.cache_layer.dtype == DType::F32) rounded(args.cache_layer);
  }
  Tensor mla_attention(const MlaAttention &args) override { return rounded(CpuBackend::mla_attention(args)); }

 private:
  // Rounds a float32 tensor's values to BF16 in place (nearest even; NaN stays
  // NaN) when rounding is on; returns it.
  Tensor rounded(Tensor tensor) const {
    if (!round_ || tensor.dtype != DType::F32) return tensor;
    float *values = tensor.as<float>();
    for (int64_t i = 0, n = tensor.numel(); i < n; ++i) values[i] = bf16_to_f32(f32_to_bf16(values[i]));
    return tensor;
  }

  bool stored_as_bf16(WeightRole role) const { return round_ && CudaBackend::weight_dtype(role) == DType::BF16; }

  bool round_;
  std::set<void *> bf16_weights_;  // weights allocated for a role CUDA stores in BF16
};

}  // namespace rackserve::testing
