// CheckpointWeightSource: weights read from safetensors files (a WeightStore) and
// uploaded to the backend, each shape checked against what the model expects so a wrong
// checkpoint fails at load with the tensor's name, not with garbage logits. The QuantConfig
// says how each linear module is stored: FP8 block and FP8 channel layers come back as
// QuantizedWeight (e4m3 values + f32 scales), or, with Fp8Weights::Dequantize, as dense
// weights holding values * scales (W8A16); every other tensor must be a float dtype.
#pragma once

#include "models/layers/weight_source.h"
#include "models/load_options.h"
#include "weights/quant_config.h"
#include "weights/safetensors.h"

namespace rackserve {

class CheckpointWeightSource final : public WeightSource {
 public:
  // `store` and `backend` must outlive the source. `prefix` is the config's checkpoint_prefix
  // ("language_model." for Kimi-K2.5): the model asks for "model.layers.0...", the checkpoint
  // (and its quantization config's module names) say "language_model.model.layers.0...".
  CheckpointWeightSource(const WeightStore& store, Backend& backend, QuantConfig quant = {},
                         Fp8Weights fp8_weights = Fp8Weights::Native, ShardSpec shard = {}, std::string prefix = {})
      : WeightSource(shard),
        store_(store),
        backend_(backend),
        quant_(std::move(quant)),
        fp8_weights_(fp8_weights),
        prefix_(std::move(prefix)) {}

  bool contains(const std::string& name) const override { return store_.contains(prefix_ + name); }
  // An FP8 "<module>.weight" asked for here (kv_b_proj, absorbed into attention) is
  // dequantized to f32 (values * scales) before upload; so are FP8 pieces of load_row_concat.
  // Only this rank's slice is read from the mapped file.
  Tensor load(const std::string& name, const Shape& shape, WeightRole role,
              const TensorSharding& sharding = {}) override;
  // Staged in float32 on the host; the backend converts to its own layout on upload.
  Tensor load_row_concat(const std::vector<std::string>& names, const std::vector<int64_t>& rows, int64_t cols,
                         WeightRole role, TpSplit split = TpSplit::Replicated) override;
  // Dense modules as WeightSource does; FP8 modules (all of a request in one format) as a
  // QuantizedWeight; INT4 and NVFP4 modules as an Int4Weight / Fp4Weight when they are routed
  // experts (roles ExpertGateUp / ExpertDown), else dequantized to dense like any float layer. Block scales are concatenated along rows, so every piece but the last
  // of a matrix must fill whole blocks (gate/up of DeepSeek: 18432 and 2048 rows, 128 each).
  // A TP slice of a block-scaled weight must start and end on block boundaries (its scales
  // are the blocks' scales); a channel-scaled one takes its rows' scales.
  LinearWeight load_linear(const LinearRequest& request) override;
  // pieces_stack of the modules' schemes (any one format when FP8 is dequantized at load).
  bool can_stack_linear(const LinearRequest& request) const override;

 private:
  const TensorRecord& checked(const std::string& name, const Shape& shape) const;
  bool is_fp8_weight(const std::string& name) const;  // an F8_E4M3 "<module>.weight"
  // A "<module>.weight" the checkpoint stores as INT4 (weight_packed + weight_scale).
  bool is_int4_weight(const std::string& name) const;
  // A "<module>.weight" the checkpoint stores as NVFP4 (U8 e2m1 pairs + scales).
  bool is_nvfp4_weight(const std::string& name) const;
  LinearWeight load_int4_experts(const LinearRequest& request, const LinearScheme& scheme);
  LinearWeight load_fp4_experts(const LinearRequest& request);
  // The `slice` of tensor `name` of (full) `shape` as f32 into out[0, slice rows * cols):
  // float dtypes converted, FP8 weights dequantized with the scales of their global position.
  void read_f32(const std::string& name, const Shape& shape, const TensorSlice& slice, float* out) const;
  // The scheme of an FP8 module, checked to be one this loader reads.
  const LinearScheme& fp8_scheme(const std::string& module) const;
  // The f32 scales of `module` ([rows, cols], stored as `scheme`), row-major as stored.
  std::vector<float> read_scales(const std::string& module, const LinearScheme& scheme, int64_t rows,
                                 int64_t cols) const;

  const WeightStore& store_;
  Backend& backend_;
  QuantConfig quant_;
  Fp8Weights fp8_weights_;
  std::string prefix_;
  // The request with the checkpoint's names (prefix_ prepended to every module).
  LinearRequest in_checkpoint(const LinearRequest& request) const;
  // The entry points prefix the names, then these do the work on checkpoint names.
  Tensor load_prefixed(const std::string& name, const Shape& shape, WeightRole role, const TensorSharding& sharding);
  Tensor load_row_concat_prefixed(const std::vector<std::string>& names, const std::vector<int64_t>& rows, int64_t cols,
                                  WeightRole role, TpSplit split);
};

}  // namespace rackserve
