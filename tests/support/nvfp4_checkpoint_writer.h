// Quantizes a checkpoint's linears into NVIDIA modelopt NVFP4 as the *-NVFP4 exports are made:
//   weight_scale_2 = amax(tensor) / (6 x 448)                  (F32 scalar, per module)
//   weight_scale   = e4m3(amax(block of 16) / 6 / weight_scale_2)  (F8_E4M3 [rows, cols / 16])
//   code           = the e2m1 value nearest x / (e4m3 scale x weight_scale_2) (ties to the even
//                    code), sign in bit 3
//   weight         = U8 [rows, cols / 2]: column 2b in the low nibble of byte b, 2b + 1 high
//   input_scale    = 1 (W4A4's static activation scale; rackserve runs W4A16 and ignores it)
// Also gives the same checkpoint with those weights expanded back to f32 (e2m1 x e4m3 x global):
// the W4A16 reference.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "support/safetensors_writer.h"
#include "weights/safetensors.h"

namespace rackserve::testing {

struct Nvfp4Checkpoint {
  std::vector<OutTensor> nvfp4;     // the NVFP4 checkpoint's tensors
  std::vector<OutTensor> expanded;  // the same with every NVFP4 weight as f32
};

// The e2m1 code nearest `x` (magnitudes 0, 0.5, 1, 1.5, 2, 3, 4, 6; beyond 6 saturates).
inline uint8_t nearest_e2m1(float x) {
  uint8_t best = 0;
  for (uint8_t code = 1; code < 8; ++code)  // first (lower, even-mantissa-first) wins a tie
    if (std::fabs(std::fabs(x) - e2m1_to_f32(code)) < std::fabs(std::fabs(x) - e2m1_to_f32(best))) best = code;
  return static_cast<uint8_t>(best | (x < 0.0f && best != 0 ? 0x8u : 0u));
}

// `quantized(name)`: whether the rank-2 "<module>.weight" `name` is stored NVFP4.
inline Nvfp4Checkpoint quantize_nvfp4_checkpoint(const WeightStore& store,
                                                 const std::function<bool(const std::string&)>& quantized) {
  constexpr int64_t kBlock = 16;
  Nvfp4Checkpoint out;
  for (const std::string& name : store.names()) {
    const TensorRecord& record = store.get(name);
    if (record.shape.size() != 2 || !name.ends_with(".weight") || !quantized(name)) {
      const auto* begin = static_cast<const uint8_t*>(static_cast<const void*>(record.data));
      std::vector<uint8_t> raw(begin, begin + record.bytes);
      out.nvfp4.push_back({name, std::string(dtype_name(record.dtype)), record.shape, raw});
      out.expanded.push_back({name, std::string(dtype_name(record.dtype)), record.shape, raw});
      continue;
    }
    const int64_t rows = record.shape[0], cols = record.shape[1];
    std::vector<float> values(static_cast<size_t>(rows * cols)), expanded(values.size());
    convert_to_f32(record.dtype, record.data, values.data(), values.size());
    float amax = 0.0f;
    for (float v : values) amax = std::max(amax, std::fabs(v));
    const float global = amax > 0.0f ? amax / (6.0f * 448.0f) : 1.0f;
    std::vector<uint8_t> packed(static_cast<size_t>(rows * cols / 2), 0), blocks;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t b = 0; b < cols / kBlock; ++b) {
        float block_amax = 0.0f;
        for (int64_t c = b * kBlock; c < (b + 1) * kBlock; ++c) block_amax = std::max(block_amax, std::fabs(values[r * cols + c]));
        const uint8_t block_code = f32_to_e4m3(block_amax / 6.0f / global);
        blocks.push_back(block_code);
        const float scale = e4m3_to_f32(block_code) * global;
        for (int64_t c = b * kBlock; c < (b + 1) * kBlock; ++c) {
          const uint8_t code = scale > 0.0f ? nearest_e2m1(values[r * cols + c] / scale) : 0;
          expanded[r * cols + c] = e2m1_to_f32(code) * e4m3_to_f32(block_code) * global;
          packed[(r * cols + c) / 2] |= static_cast<uint8_t>(c % 2 == 0 ? code : code << 4);
        }
      }
    const std::string module = name.substr(0, name.size() - 7);
    out.nvfp4.push_back({name, "U8", {rows, cols / 2}, packed});
    out.nvfp4.push_back({module + ".weight_scale", "F8_E4M3", {rows, cols / kBlock}, blocks});
    out.nvfp4.push_back({module + ".weight_scale_2", "F32", {}, bytes_of(std::vector<float>{global})});
    out.nvfp4.push_back({module + ".input_scale", "F32", {}, bytes_of(std::vector<float>{1.0f})});
    out.expanded.push_back({name, "F32", record.shape, bytes_of(expanded)});
  }
  return out;
}

// An hf_quant_config.json as modelopt writes it: NVFP4 everywhere but `exclude_modules`.
inline nlohmann::json nvfp4_hf_quant_config(const std::vector<std::string>& exclude_modules) {
  return {{"producer", {{"name", "modelopt"}}},
          {"quantization", {{"quant_algo", "NVFP4"}, {"group_size", 16}, {"exclude_modules", exclude_modules}}}};
}

}  // namespace rackserve::testing
