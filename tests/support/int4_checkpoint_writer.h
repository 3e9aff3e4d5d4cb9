// Quantizes a checkpoint's linears into compressed-tensors "pack-quantized" INT4 (symmetric,
// per row per `group` inputs), as Kimi-K2-Thinking / K2.5 ship their routed experts:
//   scale = bf16(amax / 7.5) of the group (compressed-tensors' symmetric rule: the range [-8, 7]
//           is (qmax - qmin) / 2 = 7.5 steps on each side), code = clamp(round(x / scale), -8, 7)
//   weight_packed I32 [rows, cols / 8]: column 8w + i in bits [4i, 4i + 4) of word w, stored as
//                 code + 8 (compressed-tensors' pack_to_int32)
//   weight_scale  BF16 [rows, cols / group];  weight_shape I32 [2] = {rows, cols}
// Also gives the same checkpoint with those weights expanded back to f32 (code x scale): the
// W4A16 reference, which INT4 weights must reproduce exactly up to f32 rounding.
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

struct Int4Checkpoint {
  std::vector<OutTensor> int4;      // the INT4 checkpoint's tensors
  std::vector<OutTensor> expanded;  // the same with every INT4 weight as f32 codes x scales
};

// `quantized(name)`: whether the rank-2 "<module>.weight" `name` is stored INT4.
inline Int4Checkpoint quantize_int4_checkpoint(const WeightStore& store, int64_t group,
                                               const std::function<bool(const std::string&)>& quantized) {
  Int4Checkpoint out;
  for (const std::string& name : store.names()) {
    const TensorRecord& record = store.get(name);
    if (record.shape.size() != 2 || !name.ends_with(".weight") || !quantized(name)) {
      const auto* begin = static_cast<const uint8_t*>(static_cast<const void*>(record.data));
      std::vector<uint8_t> raw(begin, begin + record.bytes);
      out.int4.push_back({name, std::string(dtype_name(record.dtype)), record.shape, raw});
      out.expanded.push_back({name, std::string(dtype_name(record.dtype)), record.shape, raw});
      continue;
    }
    const int64_t rows = record.shape[0], cols = record.shape[1];
    std::vector<float> values(static_cast<size_t>(rows * cols)), expanded(values.size());
    convert_to_f32(record.dtype, record.data, values.data(), values.size());
    std::vector<int32_t> packed(static_cast<size_t>(rows * cols / 8), 0);
    std::vector<uint16_t> scales;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t g = 0; g < cols / group; ++g) {
        float amax = 0.0f;
        for (int64_t c = g * group; c < (g + 1) * group; ++c) amax = std::max(amax, std::fabs(values[r * cols + c]));
        const uint16_t stored = f32_to_bf16(amax > 0.0f ? amax / 7.5f : 1.0f);
        const float scale = bf16_to_f32(stored);
        scales.push_back(stored);
        for (int64_t c = g * group; c < (g + 1) * group; ++c) {
          const int code = static_cast<int>(std::clamp(std::nearbyint(values[r * cols + c] / scale), -8.0f, 7.0f));
          expanded[r * cols + c] = static_cast<float>(code) * scale;
          packed[(r * cols + c) / 8] |= static_cast<int32_t>(static_cast<uint32_t>(code + 8) << (4 * (c % 8)));
        }
      }
    const std::string module = name.substr(0, name.size() - 7);
    out.int4.push_back({module + ".weight_packed", "I32", {rows, cols / 8}, bytes_of(packed)});
    out.int4.push_back({module + ".weight_scale", "BF16", {rows, cols / group}, bytes_of(scales)});
    const std::vector<int32_t> shape = {static_cast<int32_t>(rows), static_cast<int32_t>(cols)};
    out.int4.push_back({module + ".weight_shape", "I32", {2}, bytes_of(shape)});
    out.expanded.push_back({name, "F32", record.shape, bytes_of(expanded)});
  }
  return out;
}

// Kimi-K2.5's quantization_config: routed experts INT4 in groups of `group`, everything the
// `ignore` list names (lm_head, attention, shared experts, dense MLPs) unquantized.
inline nlohmann::json kimi_int4_quantization_config(int64_t group, bool quantize_attention = false) {
  nlohmann::json ignore = {"lm_head", "re:.*shared_experts.*", "re:.*mlp\\.(gate|up|gate_up|down)_proj.*"};
  if (!quantize_attention) ignore.push_back("re:.*self_attn.*");
  return {{"quant_method", "compressed-tensors"},
          {"format", "pack-quantized"},
          {"ignore", ignore},
          {"kv_cache_scheme", nullptr},
          {"config_groups",
           {{"group_0",
             {{"targets", {"Linear"}},
              {"input_activations", nullptr},
              {"weights",
               {{"num_bits", 4},
                {"type", "int"},
                {"strategy", "group"},
                {"group_size", group},
                {"symmetric", true},
                {"dynamic", false}}}}}}}};
}

}  // namespace rackserve::testing
