// What `--load-format dummy` allocates, from the config alone (no memory touched): the
// manifest of the dummy weights and their bytes per decoder layer, split into what a
// decode step reads whole and the routed experts it reads only where tokens were sent.
// Used to choose how many layers fit on a GPU and for the decode benchmark's floor.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "config/model_config.h"
#include "models/load_options.h"
#include "models/weight_manifest.h"

namespace rackserve {

// How dummy weights store `config`'s linears: as its quantization_config says when that
// stores them in FP8 block or channel layout (what a checkpoint loads natively, W8A8) or INT4 /
// NVFP4 routed experts only (Kimi-K2.5, the modelopt *-NVFP4 exports; W4A16), and `fp8_weights`
// is Native; otherwise unquantized.
// So --dequantize-fp8 gives dense linears as it does for a checkpoint, and formats the loader
// does not run natively (per-tensor fp8, static input scales, 4-bit layers beyond the routed
// experts) stay dense as before.
// `stated` is the quantization the checkpoint directory states (QuantConfig::load: config.json's
// quantization_config, or modelopt's hf_quant_config.json beside it); nullopt reads config.json's.
QuantConfig dummy_quant_config(const ModelConfig& config, Fp8Weights fp8_weights = Fp8Weights::Native,
                               const std::optional<QuantConfig>& stated = std::nullopt);

// The manifest dummy weights follow: every tensor of `config`, linears stored as `quant`
// says (dummy_quant_config: e4m3 values and f32 scales in the checkpoint's layout), every
// other tensor as the CUDA backend stores weights (BF16; the router's correction bias f32),
// whatever the config's torch_dtype says.
WeightManifest dummy_weight_manifest(const ModelConfig& config, const QuantConfig& quant = {});

struct LayerWeightBytes {
  uint64_t read_every_step = 0;  // attention, norms, dense MLP or shared experts, router
  uint64_t routed_experts = 0;   // all routed experts; a step reads those its tokens chose
  int64_t num_routed_experts = 0;
  uint64_t total() const { return read_every_step + routed_experts; }
  uint64_t bytes_per_expert() const { return num_routed_experts ? routed_experts / num_routed_experts : 0; }
};

struct DummyWeightPlan {
  uint64_t embedding = 0;  // embed_tokens; a step reads only its tokens' rows
  uint64_t head = 0;       // final norm and lm_head (norm only when the head is tied to the embedding)
  std::vector<LayerWeightBytes> layers;  // one per decoder layer of the config (MTP layers excluded)
  uint64_t total() const;
  uint64_t total_of_first(int64_t layers) const;  // embedding + head + the first `layers` layers
};

// Bytes as loaded: FP8 linears 1 byte per value plus their scales, except kv_b_proj, which
// the model keeps dense (BF16) whatever the checkpoint stores, as it is absorbed into attention.
DummyWeightPlan plan_dummy_weights(const ModelConfig& config, Fp8Weights fp8_weights = Fp8Weights::Native,
                                   const std::optional<QuantConfig>& stated = std::nullopt);

// The most decoder layers (>= 0) whose dummy weights, with the embedding and head, fit in
// `budget_bytes`; the first layers are the cheaper dense ones, so depth is a prefix.
int64_t layers_that_fit(const DummyWeightPlan& plan, uint64_t budget_bytes);

}  // namespace rackserve
