// Backend: the op set that models are written against. A backend owns device memory
// (persistent: weights and KV cache; per step: activations) and runs each op on its
// device. Models see only this interface, never a concrete backend, so the CPU
// reference (the oracle) and the CUDA backend run the same model code.
//
// Conventions for every op:
// - Tensors passed in live on this backend's device; outputs are allocated from the
//   step arena and stay valid until the next begin_step().
// - Shapes are validated at the op boundary; a mismatch throws rackserve::Error.
// - Activations are in activation_dtype() (F32 on the CPU, BF16 on CUDA).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "backend/ops.h"
#include "core/tensor.h"

namespace rackserve {

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string name() const = 0;
  virtual Device device() const = 0;
  virtual DType activation_dtype() const = 0;

  // ---- memory ----------------------------------------------------------------
  // Copies a host tensor (any floating dtype) into persistent device memory, converted
  // to the backend's weight layout for `role`. Lives as long as the backend.
  virtual Tensor upload_weight(const Tensor& host, WeightRole role) = 0;
  // Persistent storage for a weight of `shape` in the dtype and layout upload_weight gives
  // `role`; contents unspecified. Dummy weights are generated into it on the device.
  virtual Tensor allocate_weight(const Shape& shape, WeightRole role) = 0;
  // Copies a host tensor into persistent device memory as `dtype`: the bytes as they are when
  // `dtype` is the host's (packed codes, e4m3 scales, ints), else converting floats.
  virtual Tensor upload_persistent(const Tensor& host, DType dtype) = 0;
  // Copies an FP8 weight whose tensors are on the host (values F8_E4M3, scales any float
  // dtype) into persistent device memory, in the layout linear_fp8 and moe_experts take.
  virtual QuantizedWeight upload_quantized_weight(const QuantizedWeight& host) = 0;
  // Persistent zero-initialised storage (KV cache pages and the like).
  virtual Tensor allocate_persistent(DType dtype, const Shape& shape) = 0;
  // Releases every step allocation; called once before each forward pass.
  virtual void begin_step() = 0;
  // Copies host integers into a step tensor (token ids, positions, slots, ...).
  virtual Tensor upload_step_ints(std::span<const int32_t> values) = 0;
  // A step tensor with unspecified contents, valid until the next begin_step(): the output
  // of work that is not a backend op (the collectives of a Communicator).
  virtual Tensor allocate_step(DType dtype, const Shape& shape) = 0;
  // The native stream the ops run on (a cudaStream_t), for collectives to enqueue on;
  // nullptr on a backend whose ops finish before they return (the CPU).
  virtual void* native_stream() const { return nullptr; }
  // Free and total memory of this backend's device, for sizing the KV cache; nullopt where
  // there is no such limit to plan against (the CPU).
  struct DeviceMemory {
    uint64_t free_bytes = 0;
    uint64_t total_bytes = 0;
  };
  virtual std::optional<DeviceMemory> device_memory() const { return std::nullopt; }
  // Copies a tensor to host memory as float32 (blocking).
  virtual std::vector<float> download_f32(const Tensor& tensor) = 0;
  // Fills `tensor` with `value` (used to poison unused KV pages in tests).
  virtual void fill(const Tensor& tensor, float value) = 0;
  // Element i = uniform_symmetric(seed, i, scale) from rackserve/random_hash.h (rounded to
  // the tensor's dtype; F8_E4M3 to nearest even, saturated): the same values on every
  // backend. Dummy weights and benchmarks.
  virtual void fill_random(const Tensor& tensor, uint64_t seed, float scale) = 0;

  // ---- dense ops -------------------------------------------------------------
  // table [vocab, hidden], token_ids [T] int32 -> [T, hidden]
  virtual Tensor embedding(const Tensor& table, const Tensor& token_ids) = 0;
  // x [T, width], weight [width] -> [T, width]; y = x / sqrt(mean(x^2) + eps) * weight
  virtual Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps) = 0;
  // residual [T, width] += x; returns rms_norm(residual) (the fused pre-norm of the next block).
  virtual Tensor add_rms_norm(const Tensor& residual, const Tensor& x, const Tensor& weight, float eps) = 0;
  // residual [T, width] += x.
  virtual void add_inplace(const Tensor& residual, const Tensor& x) = 0;
  // x [T, in], weight [out, in] -> [T, out]  (y = x W^T, float32 accumulation)
  virtual Tensor linear(const Tensor& x, const Tensor& weight) = 0;
  // The same product with a float32 output whatever the activation dtype (router and
  // lm_head logits).
  virtual Tensor linear_f32(const Tensor& x, const Tensor& weight) = 0;
  // x [T, n] += bias [n] on every row (the biases of GQA's q/k/v projections).
  virtual void add_bias(const Tensor& x, const Tensor& bias) = 0;
  // x [T, width] -> [T] f32: sum over the row of x^2 / row_width, from the values as stored.
  // row_width is width, or the width of the whole row when tensor parallelism splits it (then
  // the ranks' results sum to the row's mean of squares).
  virtual Tensor mean_squares(const Tensor& x, int64_t row_width) = 0;
  // x [T, width], mean_squares [T] f32, weight [width] -> [T, width];
  // y = x / sqrt(mean_squares + eps) * weight: rms_norm with the mean of squares given, for a
  // norm over a row that tensor parallelism splits (each rank's mean_squares, all-reduced and
  // divided by the ranks, is the whole row's).
  virtual Tensor rms_norm_given_mean_squares(const Tensor& x, const Tensor& mean_squares, const Tensor& weight,
                                             float eps) = 0;
  // gate_up [T, 2I] (gate columns first) -> [T, I] = silu(gate) * up
  virtual Tensor silu_mul(const Tensor& gate_up) = 0;
  // x [T, width], row_indices [R] int32 -> [R, width]
  virtual Tensor gather_rows(const Tensor& x, const Tensor& row_indices) = 0;

  // ---- FP8 (W8A8) activations and products ---------------------------------------------
  // The CPU backend's fp8_linear.h holds the exact contract: activations are quantized per
  // token (per group of columns for Block weights) with dynamic scales, always from the values
  // as this backend stores them in activation_dtype() (bf16 on CUDA), so an activation quantized
  // by quantize_fp8 and one quantized inside the op that produced it are the same bytes.
  //
  // x [T, K] activation_dtype() -> its e4m3 values and scales in `layout`.
  virtual QuantizedActivation quantize_fp8(const Tensor& x, const Fp8ActivationLayout& layout) = 0;
  // rms_norm / add_rms_norm together with the quantized copy of their output, made in the same
  // pass (one kernel on CUDA): `normed` equals the plain op's output and `fp8` equals
  // quantize_fp8(normed, layout), bit for bit; add_rms_norm_fp8 updates the residual as
  // add_rms_norm does. For a norm whose output feeds FP8 linears and dense consumers alike.
  virtual NormedActivation rms_norm_fp8(const Tensor& x, const Tensor& weight, float eps,
                                        const Fp8ActivationLayout& layout) = 0;
  virtual NormedActivation add_rms_norm_fp8(const Tensor& residual, const Tensor& x, const Tensor& weight, float eps,
                                            const Fp8ActivationLayout& layout) = 0;
  // quantize_fp8(silu_mul(gate_up), layout) bit for bit, without making the plain output (its
  // one consumer, an FP8 down projection, reads only the copy).
  virtual QuantizedActivation silu_mul_fp8(const Tensor& gate_up, const Fp8ActivationLayout& layout) = 0;
  // x [T, in] quantized in Fp8ActivationLayout::of(w), w [out, in] FP8 -> [T, out]
  // (activation_dtype()): the W8A8 product of fp8_linear.h on already quantized activations.
  virtual Tensor linear_fp8(const QuantizedActivation& x, const QuantizedWeight& w) = 0;
  // x [T, in] -> [T, out]: x quantized dynamically as w.scaling says, then the product above.
  Tensor linear_fp8(const Tensor& x, const QuantizedWeight& w) {
    return linear_fp8(quantize_fp8(x, Fp8ActivationLayout::of(w)), w);
  }

  // ---- two stacked linears of one input ----------------------------------------
  // `weight` [out, in] stacks two layers' rows, [0, first_rows) then [first_rows, out) (the
  // loader's load_linear_concat): x W^T as the two outputs [T, first_rows] and
  // [T, out - first_rows], each contiguous, with the math of linear / linear_fp8 on each part.
  // This default runs the two parts; a backend may run them as one product (CUDA: one launch at
  // decode sizes). FP8 Block weights need first_rows on a scale-block edge.
  virtual std::pair<Tensor, Tensor> linear_split(const Tensor& x, const Tensor& weight, int64_t first_rows) {
    RS_CHECK(weight.rank() == 2 && 0 < first_rows && first_rows < weight.dim(0),
             "linear_split: rows cut at {} of a {} weight", first_rows, shape_string(weight.shape));
    return {linear(x, weight.rows(0, first_rows)), linear(x, weight.rows(first_rows, weight.dim(0)))};
  }
  virtual std::pair<Tensor, Tensor> linear_fp8_split(const QuantizedActivation& x, const QuantizedWeight& w,
                                                     int64_t first_rows) {
    RS_CHECK(0 < first_rows && first_rows < w.out_features(), "linear_fp8_split: rows cut at {} of a {} weight",
             first_rows, shape_string(w.values.shape));
    return {linear_fp8(x, w.rows(0, first_rows)), linear_fp8(x, w.rows(first_rows, w.out_features()))};
  }

  // ---- multi-head latent attention ---------------------------------------------
  // Rotates x[t, h, offset : offset + rope.dim] in place for every token t and head h.
  virtual void rope_inplace(const Tensor& x, int64_t offset, const RopeTable& rope, const Tensor& positions) = 0;
  // kv [T, kv_lora + rope_dim] from kv_a_proj_with_mqa: normalises the latent columns,
  // rotates the rope columns, and writes both into cache_layer at slots[t].
  virtual void mla_write_cache(const MlaCacheWrite& args) = 0;
  // Absorbed-form MLA over the paged latent cache -> [T, heads, v_head_dim]; causal, or over
  // the keys args.key_positions names (DeepSeek sparse attention).
  virtual Tensor mla_attention(const MlaAttention& args) = 0;

  // ---- DeepSeek sparse attention's indexer ---------------------------------------------
  // Normalises, rotates and caches each token's indexer key (DsaKeyWrite in ops.h).
  virtual void dsa_write_keys(const DsaKeyWrite& args) = 0;
  // The key positions each query attends to -> [T, top_k] int32 (DsaTopK in ops.h).
  virtual Tensor dsa_top_k(const DsaTopK& args) = 0;

  // ---- grouped-query attention ------------------------------------------------------
  // Writes each token's key and value into cache_layer at slots[t] (GqaCacheWrite in ops.h).
  virtual void gqa_write_cache(const GqaCacheWrite& args) = 0;
  // Paged causal GQA -> [T, heads, head_dim] (GqaAttention in ops.h).
  virtual Tensor gqa_attention(const GqaAttention& args) = 0;

  // ---- mixture of experts -------------------------------------------------------
  // router_logits [T, experts] f32 -> top-k expert ids and weights per token.
  virtual MoeRouting moe_route(const Tensor& router_logits, const Tensor& score_correction_bias,
                               const MoeRouterParams& params) = 0;
  // Sum over the chosen experts of weight * down(silu(gate(x)) * up(x)) -> [T, hidden].
  // FP8 experts (experts.*_fp8) run each product with the W8A8 math of linear_fp8: x is
  // quantized once per token (as the moe_experts overload below takes it), each expert's
  // activation silu(gate) * up once per (token, expert) from its f32 value. INT4 experts
  // (experts.*_int4) are W4A16: each weight is (code - 8) * its group's scale, products in f32
  // on the activations as stored.
  virtual Tensor moe_experts(const Tensor& x, const MoeRouting& routing, const ExpertWeights& experts) = 0;
  // The same for FP8 experts on x already quantized in Fp8ActivationLayout::of(*experts.gate_up_fp8).
  virtual Tensor moe_experts(const QuantizedActivation& x, const MoeRouting& routing,
                             const ExpertWeights& experts) = 0;

  // ---- sampling -------------------------------------------------------------------
  // logits [R, vocab] f32, rows.size() == R -> one SampledRow per row (SamplingRow's
  // contract in ops.h). Blocking: the results are on the host when it returns.
  virtual std::vector<SampledRow> sample(const Tensor& logits, std::span<const SamplingRow> rows) = 0;

  // ---- step graphs (CUDA graphs) -----------------------------------------------------
  // A backend that supports them records the ops of one step once and replays them.
  // capture_step_graph runs `record` with every op it issues recorded and none executed;
  // those ops must not move data between host and device (no upload_*, download_f32) and
  // their host-side arguments (shapes, plans) are frozen into the graph. Returns the
  // graph's id, with the step arena back where it was before `record` (nothing ran).
  // The step arena must be in the same state (same begin_step() and the same
  // allocations since) at every replay as at capture; replay_step_graph checks that, runs
  // the recorded ops on the tensors they were recorded with, and leaves the arena as the
  // capture left it, so the tensors `record` allocated stay valid until the next begin_step().
  virtual bool supports_step_graphs() const { return false; }
  virtual int64_t capture_step_graph(const std::function<void()>& record) = 0;
  virtual void replay_step_graph(int64_t graph) = 0;
  virtual void release_step_graph(int64_t graph) = 0;
};

// The CPU reference backend; `threads` == 0 uses every hardware thread.
std::unique_ptr<Backend> make_cpu_backend(unsigned threads = 0);

// The CUDA backend on `device` (throws when this build or machine has no CUDA device).
std::unique_ptr<Backend> make_cuda_backend(int device = 0);
// Whether a CUDA device is usable (false in builds without CUDA).
bool cuda_device_available();

}  // namespace rackserve
