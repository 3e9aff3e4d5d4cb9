// CheckpointWeightSource: weights read from safetensors files (a WeightStore) and
// uploaded to the backend, each shape checked against what the model expects so a wrong
// checkpoint fails at load with the tensor's name, not with garbage logits.
#pragma once

#include "models/layers/weight_source.h"
#include "weights/safetensors.h"

namespace rackserve {

class CheckpointWeightSource final : public WeightSource {
 public:
  // Both must outlive the source.
  CheckpointWeightSource(const WeightStore& store, Backend& backend) : store_(store), backend_(backend) {}

  bool contains(const std::string& name) const override { return store_.contains(name); }
  Tensor load(const std::string& name, const Shape& shape, WeightRole role) override;
  // Staged in float32 on the host; the backend converts to its own layout on upload.
  Tensor load_row_concat(const std::vector<std::string>& names, const std::vector<int64_t>& rows, int64_t cols,
                         WeightRole role) override;

 private:
  const TensorRecord& checked(const std::string& name, const Shape& shape) const;

  const WeightStore& store_;
  Backend& backend_;
};

}  // namespace rackserve
