// DummyWeightSource: `--load-format dummy`. Every tensor the model asks for gets the
// shape the config's manifest gives it and random values generated on the backend
// (Backend::fill_random; nothing passes through host memory, so full-scale layers load in
// seconds). Values are a pure function of (seed, tensor name): two loads with the same seed
// hold the same weights on every backend. Scaled per role so activations stay finite
// through any depth (see dummy_weight_init). Unquantized: BF16 on CUDA, f32 on the CPU.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "config/model_config.h"
#include "models/layers/weight_source.h"
#include "models/weight_manifest.h"

namespace rackserve {

// Values of a dummy weight: center + uniform [-scale, scale).
//   Norm:                     exactly 1 (scale 0)
//   Embedding:                ±1 (rows are normalised before use)
//   RouterBias:               ±0.01 (selection only; small against sigmoid scores)
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
  DummyWeightSource(const ModelConfig& config, Backend& backend, uint64_t seed);

  // Names are the model's ("model.layers.0..."); the manifest's carry the config's
  // checkpoint_prefix ("language_model." for Kimi-K2.5), added here before every lookup.
  bool contains(const std::string& name) const override { return index_.contains(prefix_ + name); }
  Tensor load(const std::string& name, const Shape& shape, WeightRole role) override;
  // One random stream over the whole concatenation (keyed by all the names).
  Tensor load_row_concat(const std::vector<std::string>& names, const std::vector<int64_t>& rows, int64_t cols,
                         WeightRole role) override;

  // Throws naming the first required manifest tensor that no load asked for: the model and
  // the manifest disagree, and a real checkpoint would not load the same way.
  void check_complete() const;
  const WeightManifest& manifest() const { return manifest_; }

 private:
  void check_requested(const std::string& name, const Shape& shape);
  Tensor generate(uint64_t key, const Shape& shape, WeightRole role);

  Backend& backend_;
  uint64_t seed_;
  std::string prefix_;
  WeightManifest manifest_;
  std::unordered_map<std::string, size_t> index_;  // name -> manifest entry
  std::unordered_set<std::string> requested_;
};

}  // namespace rackserve
