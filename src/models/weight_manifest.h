// WeightManifest: every tensor a DeepSeek-V3-family checkpoint holds for a ModelConfig and
// a QuantConfig, with its real checkpoint name, dtype, shape and how tensor parallelism
// splits it. Built from config.json alone, so footprints, `--load-format dummy` and load-time
// checks need no safetensors files.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/model_config.h"
#include "core/dtype.h"
#include "core/tensor.h"
#include "weights/quant_config.h"

namespace rackserve {

// How a tensor is divided among TP ranks. Every rank holds all of a Replicated tensor.
enum class TpSplit : uint8_t {
  Replicated,
  Column,              // output rows divided (q_b_proj, kv_b_proj, gate/up_proj): axis 0
  Row,                 // input columns divided, partial sums all-reduced (o_proj, down_proj): axis 1
  Vocab,               // vocabulary rows divided (embed_tokens, lm_head, shared_head.head): axis 0
  ExpertIntermediate,  // every rank holds every expert's slice of moe_intermediate_size:
                       // axis 0 of gate/up_proj, axis 1 of down_proj
};

std::string_view tp_split_name(TpSplit split);

struct ManifestEntry {
  std::string name;  // checkpoint tensor name, e.g. "model.layers.3.mlp.experts.7.down_proj.weight"
  DType dtype = DType::BF16;
  Shape shape;
  TpSplit split = TpSplit::Replicated;
  int split_axis = -1;  // the axis TP divides; -1 when replicated
  // Storage format of the linear layer this tensor belongs to; "storage" groups bytes by it
  // ("nvfp4", "fp8-block", ...) and names the dtype for tensors outside linears ("bf16", "f32").
  WeightFormat format = WeightFormat::Dense;
  std::string storage;
  int64_t parameters = 0;  // logical model values (packed int4/fp4 count unpacked; scales count 0)
  int64_t layer = -1;      // decoder layer index, -1 outside layers
  bool optional = false;   // MTP tensors: loaded when the checkpoint has them

  int64_t numel() const { return shape_numel(shape); }
  uint64_t bytes() const { return static_cast<uint64_t>(numel()) * dtype_size(dtype); }
  // The shape one of `tp` ranks holds (the split axis divided; the caller checks divisibility).
  Shape shape_per_rank(int64_t tp) const;
  uint64_t bytes_per_rank(int64_t tp) const {
    return static_cast<uint64_t>(shape_numel(shape_per_rank(tp))) * dtype_size(dtype);
  }
};

class WeightManifest {
 public:
  // Throws when the config asks for something the family does not have a layout for.
  static WeightManifest build(const ModelConfig& config, const QuantConfig& quant);

  const std::vector<ManifestEntry>& entries() const { return entries_; }
  const ManifestEntry* find(const std::string& name) const;  // nullptr when absent (linear scan)
  // Throws naming the first tensor whose split axis `tp` does not divide.
  void check_divisible(int64_t tp) const;

 private:
  std::vector<ManifestEntry> entries_;
};

}  // namespace rackserve
