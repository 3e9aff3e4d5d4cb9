#include "models/layers/dummy_weight_source.h"

#include <cmath>

#include "core/error.h"
#include "models/dummy_weight_plan.h"
#include "rackserve/random_hash.h"

namespace rackserve {

namespace {

// FNV-1a: a stable key per tensor name, independent of load order.
uint64_t name_key(const std::string& name, uint64_t key = 0xcbf29ce484222325ull) {
  for (unsigned char c : name) key = (key ^ c) * 0x100000001b3ull;
  return key;
}

}  // namespace

DummyWeightInit dummy_weight_init(WeightRole role, const Shape& shape) {
  RS_CHECK(!shape.empty() && shape.back() > 0, "dummy weight of shape {}", shape_string(shape));
  switch (role) {
    case WeightRole::Norm: return {1.0f, 0.0f};
    case WeightRole::Embedding: return {0.0f, 1.0f};
    case WeightRole::RouterBias: return {0.0f, 0.01f};
    case WeightRole::Linear:
    case WeightRole::RouterGate:
    case WeightRole::ExpertGateUp:
    case WeightRole::ExpertDown:
    case WeightRole::MlaKvB: return {0.0f, static_cast<float>(1.0 / std::sqrt(static_cast<double>(shape.back())))};
    case WeightRole::RopeFrequencies: break;  // computed from the config, never loaded
  }
  RS_FAIL("no dummy initialisation for weight role {}", static_cast<int>(role));
}

DummyWeightSource::DummyWeightSource(const ModelConfig& config, Backend& backend, uint64_t seed)
    : backend_(backend), seed_(seed), prefix_(config.checkpoint_prefix), manifest_(dummy_weight_manifest(config)) {
  for (size_t i = 0; i < manifest_.entries().size(); ++i) index_.emplace(manifest_.entries()[i].name, i);
}

void DummyWeightSource::check_requested(const std::string& model_name, const Shape& shape) {
  const std::string name = prefix_ + model_name;
  auto it = index_.find(name);
  RS_CHECK(it != index_.end(), "dummy weights: the model asks for {}, which the config's manifest does not hold", name);
  const ManifestEntry& entry = manifest_.entries()[it->second];
  RS_CHECK(entry.shape == shape, "dummy weights: the model asks for {} as {}, the manifest has {}", name,
           shape_string(shape), shape_string(entry.shape));
  requested_.insert(name);
}

Tensor DummyWeightSource::generate(uint64_t key, const Shape& shape, WeightRole role) {
  const DummyWeightInit init = dummy_weight_init(role, shape);
  Tensor tensor = backend_.allocate_weight(shape, role);
  if (init.scale == 0.0f)
    backend_.fill(tensor, init.center);
  else
    backend_.fill_random(tensor, mix_hash(seed_, key), init.scale);  // center is 0 for every random role
  return tensor;
}

Tensor DummyWeightSource::load(const std::string& name, const Shape& shape, WeightRole role) {
  check_requested(name, shape);
  return generate(name_key(name), shape, role);
}

Tensor DummyWeightSource::load_row_concat(const std::vector<std::string>& names, const std::vector<int64_t>& rows,
                                          int64_t cols, WeightRole role) {
  RS_CHECK(names.size() == rows.size() && !names.empty(), "load_row_concat: {} names for {} row counts", names.size(),
           rows.size());
  int64_t total_rows = 0;
  uint64_t key = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < names.size(); ++i) {
    check_requested(names[i], {rows[i], cols});
    total_rows += rows[i];
    key = name_key(names[i], key);
  }
  return generate(key, {total_rows, cols}, role);
}

void DummyWeightSource::check_complete() const {
  for (const ManifestEntry& entry : manifest_.entries())
    RS_CHECK(entry.optional || requested_.contains(entry.name),
             "dummy weights: the model never loaded {} {}, which a checkpoint of this config holds", entry.name,
             shape_string(entry.shape));
}

}  // namespace rackserve
