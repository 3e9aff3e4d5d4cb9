#include "models/dummy_weight_plan.h"

#include "core/error.h"
#include "models/footprint.h"
#include "weights/quant_config.h"

namespace rackserve {

QuantConfig dummy_quant_config(const ModelConfig& config, Fp8Weights fp8_weights,
                               const std::optional<QuantConfig>& stated) {
  if (fp8_weights == Fp8Weights::Dequantize) return {};
  QuantConfig quant = stated ? *stated : QuantConfig::from_config_json(config.raw);
  if (quant.method() == "none") return quant;
  const WeightManifest manifest = dummy_weight_manifest(config, quant);
  for (const ManifestEntry& entry : manifest.entries()) {
    const bool fp8 = entry.format == WeightFormat::Fp8Block || entry.format == WeightFormat::Fp8Channel;
    // 4-bit routed experts run W4A16 (an NVFP4 input_scale is not read).
    const bool four_bit_expert = (entry.format == WeightFormat::Int4Group || entry.format == WeightFormat::Nvfp4) &&
                                 entry.name.find(".experts.") != std::string::npos;
    if (four_bit_expert) continue;
    if ((entry.format != WeightFormat::Dense && !fp8) || entry.name.ends_with(".input_scale")) return {};
  }
  return quant;
}

WeightManifest dummy_weight_manifest(const ModelConfig& config, const QuantConfig& quant) {
  ModelConfig bf16 = config;
  bf16.raw["torch_dtype"] = "bfloat16";  // read before "dtype" by the manifest
  return WeightManifest::build(bf16, quant);
}

uint64_t DummyWeightPlan::total() const { return total_of_first(static_cast<int64_t>(layers.size())); }

uint64_t DummyWeightPlan::total_of_first(int64_t count) const {
  RS_CHECK(count >= 0 && count <= static_cast<int64_t>(layers.size()), "{} layers of {}", count, layers.size());
  uint64_t bytes = embedding + head;
  for (int64_t i = 0; i < count; ++i) bytes += layers[i].total();
  return bytes;
}


DummyWeightPlan plan_dummy_weights(const ModelConfig& config, Fp8Weights fp8_weights,
                                   const std::optional<QuantConfig>& stated) {
  DummyWeightPlan plan;
  plan.layers.resize(static_cast<size_t>(config.num_layers));
  const WeightManifest manifest = dummy_weight_manifest(config, dummy_quant_config(config, fp8_weights, stated));
  for (const ManifestEntry& entry : manifest.entries()) {
    if (entry.optional) continue;  // MTP layers are not loaded
    if (entry.layer < 0) {
      (entry.name.ends_with("embed_tokens.weight") ? plan.embedding : plan.head) += loaded_bytes_per_rank(entry, 1);
      continue;
    }
    LayerWeightBytes& layer = plan.layers.at(static_cast<size_t>(entry.layer));
    if (entry.split == TpSplit::ExpertIntermediate) {
      layer.routed_experts += loaded_bytes_per_rank(entry, 1);
      layer.num_routed_experts = config.moe.num_routed_experts;
    } else {
      layer.read_every_step += loaded_bytes_per_rank(entry, 1);
    }
  }
  return plan;
}

int64_t layers_that_fit(const DummyWeightPlan& plan, uint64_t budget_bytes) {
  int64_t count = 0;
  while (count < static_cast<int64_t>(plan.layers.size()) && plan.total_of_first(count + 1) <= budget_bytes) ++count;
  return count;
}

}  // namespace rackserve
