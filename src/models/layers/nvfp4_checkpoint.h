// The NVFP4 modules of a modelopt checkpoint (Fp4Weight in backend/ops.h has the format): one
// module's weight (U8 [rows, cols / 2] of e2m1 pairs), weight_scale (F8_E4M3 [rows, cols / 16])
// and weight_scale_2 (F32 scalar), read as dequantized f32 values (layers rackserve keeps dense)
// or as packed codes and scales (routed experts, W4A16). input_scale (W4A4's static activation
// scale) is not read: activations stay unquantized.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "models/layers/weight_source.h"
#include "weights/quant_config.h"
#include "weights/safetensors.h"

namespace rackserve {

class Nvfp4Module {
 public:
  static constexpr int64_t kGroup = 16;

  // Throws naming the tensor when it is missing or its shape or dtype is not [rows, cols] in
  // NVFP4 (cols a multiple of 16).
  Nvfp4Module(const WeightStore& store, const std::string& module, int64_t rows, int64_t cols);

  // The slice's weights as f32, row-major [slice.rows, slice.cols].
  void dequantize(const TensorSlice& slice, float* out) const;
  // Appends the slice's packed bytes ([slice.rows, slice.cols / 2]), block scales' e4m3 bytes
  // ([slice.rows, slice.cols / 16]) and one global scale per row. The slice's columns must lie
  // on 16-column block edges, which it checks.
  void append_packed(const TensorSlice& slice, std::vector<uint8_t>& packed, std::vector<uint8_t>& block_scales,
                     std::vector<float>& row_scales) const;

 private:
  std::string module_;
  const TensorRecord* packed_;
  const TensorRecord* block_scales_;
  float global_scale_ = 1.0f;
  int64_t rows_, cols_;
};

}  // namespace rackserve
