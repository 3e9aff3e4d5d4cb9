// WeightSource: where a model's weights come from while it is built: a checkpoint on disk
// (CheckpointWeightSource) or random values generated on the backend (DummyWeightSource).
// The model names each tensor and the shape it expects; the source checks the name and
// shape and returns the tensor on the backend in the layout upload_weight gives `role`.
// Model code sees only WeightLoader, never which source is behind it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "models/layers/linear_weight.h"

namespace rackserve {

// The weight of one linear layer (matrices == 1) or of `matrices` stacked ones (MoE experts).
// Each matrix is the row concatenation of consecutive `modules` (checkpoint module names
// without ".weight", e.g. gate_proj then up_proj), modules[i] being [rows[i], cols].
struct LinearRequest {
  std::vector<std::string> modules;  // matrices * pieces entries, matrix by matrix
  std::vector<int64_t> rows;         // one per piece of a matrix
  int64_t cols = 0;
  int64_t matrices = 1;
  WeightRole role = WeightRole::Linear;
};

class WeightSource {
 public:
  virtual ~WeightSource() = default;

  // Whether the source holds a tensor of this name (optional tensors such as lm_head).
  virtual bool contains(const std::string& name) const = 0;
  // One tensor; throws naming it when it is absent or its shape is not `shape`.
  virtual Tensor load(const std::string& name, const Shape& shape, WeightRole role) = 0;
  // [rows_i, cols] tensors concatenated along rows into one [sum(rows), cols] tensor.
  virtual Tensor load_row_concat(const std::vector<std::string>& names, const std::vector<int64_t>& rows,
                                 int64_t cols, WeightRole role) = 0;
  // A linear layer in the format the checkpoint stores it. This default loads it dense
  // ("<module>.weight" through load_row_concat); a checkpoint with a quantization config
  // returns FP8 layers as QuantizedWeight.
  virtual LinearWeight load_linear(const LinearRequest& request);
};

}  // namespace rackserve
