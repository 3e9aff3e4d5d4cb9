// QuantConfig: how a checkpoint stores each linear layer, read from config.json's
// `quantization_config` (DeepSeek fp8, compressed-tensors, modelopt) or from modelopt's
// hf_quant_config.json. Callers ask by module name; the manifest and the loader turn the
// answer into the checkpoint tensors of that linear (quantized_linear_tensors).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "core/tensor.h"

namespace rackserve {

enum class WeightFormat : uint8_t {
  Dense,      // not quantized: `weight` in the checkpoint's float dtype (bf16 for every target model)
  Fp8Block,   // e4m3 `weight` + one scale per [block_out, block_in] block (DeepSeek: f32 `weight_scale_inv`)
  Fp8Channel, // e4m3 `weight` + `weight_scale` per output row (compressed-tensors strategy "channel")
  Fp8Tensor,  // e4m3 `weight` + one `weight_scale` (compressed-tensors "tensor", modelopt FP8)
  Int4Group,  // compressed-tensors pack-quantized: int32 `weight_packed` (8 values per word),
              // `weight_scale` per group of inputs, int32 `weight_shape`; symmetric (no zero point)
  Nvfp4,      // modelopt NVFP4: u8 `weight` (two e2m1 per byte), e4m3 `weight_scale` per 16 inputs,
              // f32 `weight_scale_2` and f32 `input_scale` (one each)
};

std::string_view weight_format_name(WeightFormat format);  // "bf16", "fp8-block", ...

// How one linear layer is stored. Only the fields of `format` are meaningful.
struct LinearScheme {
  WeightFormat format = WeightFormat::Dense;
  int64_t block_out = 0;  // Fp8Block: rows per scale block
  int64_t block_in = 0;   // Fp8Block: inputs per scale block
  int64_t group_size = 0; // Int4Group, Nvfp4: inputs per scale
  DType scale_dtype = DType::F32;
  bool static_input_scale = false;  // an `input_scale` tensor exists (static activation quantization)
  std::string scale_name = "weight_scale";  // DeepSeek fp8 spells it weight_scale_inv (an inverse: multiply)
  bool rank0_scalars = false;  // per-tensor scales have shape [] (modelopt) rather than [1] (compressed-tensors)

  std::string describe() const;  // "fp8-block [128, 128] e4m3 + f32 weight_scale_inv"
};

// One tensor a linear layer [out_features, in_features] contributes to the checkpoint.
// Rank-2 tensors keep the weight's axis order (rows follow outputs, columns follow inputs),
// so splitting the weight along an axis splits them along the same axis; rank-0/1 tensors
// are per-tensor values (global scales, weight_shape) and stay whole on every rank.
struct LinearTensor {
  std::string suffix;  // "weight", "weight_scale_inv", "weight_packed", ...
  DType dtype = DType::BF16;
  Shape shape;
  int64_t parameters = 0;  // logical weight values it holds (out * in for the weight, 0 for scales)
};

// The checkpoint tensors of one linear layer stored as `scheme`; `dense_dtype` is the float
// dtype of unquantized weights. Throws when the shape does not suit the format (an input
// width that is not a multiple of the group or pack size).
std::vector<LinearTensor> quantized_linear_tensors(const LinearScheme& scheme, int64_t out_features,
                                                   int64_t in_features, DType dense_dtype = DType::BF16);

// A list of module patterns from an ignore / exclude / target list. Entry syntax:
//   "re:<regex>"   Python re.match semantics: the regex must match at the start of the name
//   contains * ?   shell glob over the whole name (modelopt exclude_modules)
//   otherwise      the name itself, a parent module of it ("model.layers.0" covers
//                  "model.layers.0.mlp.down_proj"), or a trailing module path ("lm_head"
//                  covers "language_model.lm_head"), as transformers applies
//                  modules_to_not_convert.
class ModulePatterns {
 public:
  ModulePatterns() = default;
  explicit ModulePatterns(const std::vector<std::string>& entries);  // throws on a bad regex
  void add(const std::string& entry);
  bool matches(const std::string& name) const;
  size_t size() const { return size_; }

 private:
  struct Compiled;  // regular expressions and globs
  std::unordered_set<std::string> plain_;
  std::vector<std::shared_ptr<const Compiled>> compiled_;
  size_t size_ = 0;
};

class QuantConfig {
 public:
  QuantConfig();  // unquantized checkpoint: every linear is Dense

  // `file` is a whole config.json: quantization_config is looked up at the top level and in
  // text_config (Kimi K2.5 keeps it there). Without one the checkpoint is unquantized.
  static QuantConfig from_config_json(const nlohmann::json& file, const std::string& source = "config.json");
  // modelopt's hf_quant_config.json ({"producer": ..., "quantization": {...}}).
  static QuantConfig from_hf_quant_config(const nlohmann::json& file,
                                          const std::string& source = "hf_quant_config.json");
  // A model directory or a config file: config.json's quantization_config when it has one,
  // else hf_quant_config.json next to it when present, else unquantized. A path naming
  // hf_quant_config.json itself reads only that file.
  static QuantConfig load(const std::filesystem::path& path);

  // Storage of the linear module `module`: a full checkpoint module name without the
  // ".weight" suffix, e.g. "model.layers.3.mlp.experts.7.down_proj". Only ask about linear
  // layers (projections, lm_head, eh_proj); embeddings, norms and the router are never
  // quantized by any supported format and the manifest does not ask (asked anyway, a
  // router "<...>.gate", "<...>.embed_tokens" or "<...>norm" answers Dense).
  const LinearScheme& linear(const std::string& module) const;

  const std::string& method() const { return method_; }  // "none", "fp8", "compressed-tensors", "modelopt"
  const std::string& source() const { return source_; }
  // The KV-cache quantization the checkpoint was calibrated for ("FP8" from modelopt), or empty.
  const std::string& kv_cache_hint() const { return kv_cache_hint_; }
  std::string describe() const;  // one line for logs and `rackserve inspect`

 private:
  struct Group {
    LinearScheme scheme;
    bool all_linear = false;  // targets name the class "Linear": every linear layer
    ModulePatterns targets;   // otherwise these module patterns
  };
  std::string method_ = "none";
  std::string source_;
  std::string kv_cache_hint_;
  std::vector<Group> groups_;
  ModulePatterns keep_dense_;  // linear modules left unquantized
  LinearScheme dense_;

  static QuantConfig parse_fp8(const nlohmann::json& config, const std::string& source);
  static QuantConfig parse_compressed_tensors(const nlohmann::json& config, const std::string& source);
  static QuantConfig parse_modelopt(const std::string& algorithm, int64_t group_size,
                                    const std::vector<std::string>& exclude, const std::string& kv_algorithm,
                                    const std::string& source);
};

}  // namespace rackserve
