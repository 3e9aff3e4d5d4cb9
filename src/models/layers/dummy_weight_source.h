// DummyWeightSource: `--load-format dummy`. Every tensor the model asks for gets the
// shape the config's manifest gives it and random values generated on the backend
// (Backend::fill_random; nothing passes through host memory, so full-scale layers load in
// seconds). Values are a pure function of (seed, tensor name): two loads with the same seed
// hold the same weights on every backend. Scaled per role so activations stay finite
// through any depth (see dummy_weight_init). Dense tensors are BF16 on CUDA, f32 on the
// CPU; the linears the config's quantization_config stores in FP8 (block or channel) come
// back as e4m3 values and f32 scales in the checkpoint's layout (dummy_quant_config), as a
// checkpoint's would, with Fp8Weights::Dequantize as dense ones.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "config/model_config.h"
#include "models/layers/weight_source.h"
#include "models/load_options.h"
#include "models/weight_manifest.h"

namespace rackserve {

// Values of a dummy weight: center + uniform [-scale, scale).
//   Norm:                     exactly 1 (scale 0)
//   Embedding:                ±1 (rows are normalised before use)
//   RouterBias:               ±0.01 (selection only; small against sigmoid scores)
//   Bias:                     ±0.1 (q/k/v biases)
//   linears, experts, router: ±1/sqrt(fan_in), fan_in = the last extent, so a product keeps
//                             the size of its input (variance / 3)
struct DummyWeightInit {
  float center = 0.0f;
  float scale = 0.0f;
};
DummyWeightInit dummy_weight_init(WeightRole role, const Shape& shape);

class DummyWeightSource final : public WeightSource {
 public:
  // `config` is the (possibly depth-cut) config the model is built from; `backend` must
  // outlive the source.
  // With a shard of several ranks, a split tensor's slice is random values keyed by (name,
  // rank): a sharded dummy model is not the TP=1 one cut up (values come from the device's
  // own generator, which cannot start mid-tensor), only of the same shapes and scale.
  // `stated`: the checkpoint directory's quantization (dummy_quant_config).
  DummyWeightSource(const ModelConfig& config, Backend& backend, uint64_t seed, ShardSpec shard = {},
                    Fp8Weights fp8_weights = Fp8Weights::Native, const std::optional<QuantConfig>& stated = std::nullopt);

  // Names are the model's ("model.layers.0..."); the manifest's carry the config's
  // checkpoint_prefix ("language_model." for Kimi-K2.5), added here before every lookup.
  bool contains(const std::string& name) const override { return index_.contains(prefix_ + name); }
  Tensor load(const std::string& name, const Shape& shape, WeightRole role,
              const TensorSharding& sharding = {}) override;
  // One random stream over the whole concatenation (keyed by all the names).
  Tensor load_row_concat(const std::vector<std::string>& names, const std::vector<int64_t>& rows, int64_t cols,
                         WeightRole role, TpSplit split = TpSplit::Replicated) override;
  // FP8 modules (all of a request in one format) as a QuantizedWeight: values uniform over
  // the e4m3 range [-448, 448) (one random stream over the request, keyed by its names), each
  // scale role_scale / 448 (the scale dummy_weight_init gives the dense weight), so values *
  // scales have the dense dummy's magnitude. Tensor-parallel slices as the checkpoint
  // loader takes them (fp8_linear_slices). Dense modules as WeightSource does.
  // INT4 routed experts as an Int4Weight: random code words and per-group scales of the dense
  // dummy's magnitude / 8 (codes span [-8, 7]); NVFP4 ones as an Fp4Weight: random e2m1 pairs,
  // e4m3 block scales in [0.5, 1.5) and row scales of the dense dummy's magnitude / 6.
  LinearWeight load_linear(const LinearRequest& request) override;
  bool can_stack_linear(const LinearRequest& request) const override;  // pieces_stack of the dummy schemes

  // Throws naming the first required manifest tensor that no load asked for: the model and
  // the manifest disagree, and a real checkpoint would not load the same way.
  void check_complete() const;
  const WeightManifest& manifest() const { return manifest_; }

 private:
  // With several ranks, also checks that the layer splits the tensor along the axis the
  // manifest gives it (the footprint's bytes per GPU come from the manifest).
  void check_requested(const std::string& name, const Shape& shape, TpSplit split);
  Tensor generate(uint64_t key, const Shape& shape, WeightRole role);
  uint64_t shard_key(uint64_t key, TpSplit split) const;  // `key`, mixed with the rank when split
  // The scheme an FP8 request's modules share (Dense when they are not FP8).
  const LinearScheme& request_scheme(const LinearRequest& request) const;
  LinearWeight load_int4(const LinearRequest& request, const LinearScheme& scheme);
  LinearWeight load_fp4(const LinearRequest& request);
  // Marks the checkpoint tensors of a 4-bit module as requested (the packed codes, shaped
  // `packed_shape`, checked) and returns this rank's slice, checked to keep whole groups.
  TensorSlice request_packed(const std::string& module, int64_t rows, int64_t cols, TpSplit split,
                             const std::string& packed_name, const Shape& packed_shape,
                             std::initializer_list<const char*> other_suffixes, int64_t group);

  Backend& backend_;
  uint64_t seed_;
  std::string prefix_;
  QuantConfig quant_;  // dummy_quant_config: what is generated in FP8
  WeightManifest manifest_;
  std::unordered_map<std::string, size_t> index_;  // name -> manifest entry
  std::unordered_set<std::string> requested_;
};

}  // namespace rackserve
