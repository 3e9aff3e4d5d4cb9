// The INT4 modules of a compressed-tensors "pack-quantized" checkpoint (Int4Weight in
// backend/ops.h has the format): one module's weight_packed (I32 [rows, cols / 8]) and
// weight_scale ([rows, cols / group], a float dtype), read as dequantized f32 values (for
// layers rackserve keeps dense) or as packed codes and scales (routed experts, W4A16).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "models/layers/weight_source.h"
#include "weights/quant_config.h"
#include "weights/safetensors.h"

namespace rackserve {

class Int4Module {
 public:
  // Throws naming the tensor when it is missing or its shape or dtype is not [rows, cols] under
  // `scheme` (an Int4Group scheme).
  Int4Module(const WeightStore& store, const std::string& module, const LinearScheme& scheme, int64_t rows,
             int64_t cols);

  // The slice's weights as f32, row-major [slice.rows, slice.cols].
  void dequantize(const TensorSlice& slice, float* out) const;
  // Appends the slice's packed words (row-major [slice.rows, slice.cols / 8]) and f32 scales
  // ([slice.rows, slice.cols / group]). The slice's columns must lie on group edges (a
  // tensor-parallel split of the input axis keeps whole groups), which it checks.
  void append_packed(const TensorSlice& slice, std::vector<int32_t>& packed, std::vector<float>& scales) const;

  int64_t group() const { return group_; }

 private:
  float scale(int64_t row, int64_t group_index) const;

  std::string module_;
  const TensorRecord* packed_;
  const TensorRecord* scales_;
  int64_t rows_, cols_, group_;
};

}  // namespace rackserve
