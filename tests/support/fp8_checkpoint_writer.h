// Quantizes a checkpoint's linears into one of the FP8 formats the loader takes, as the real
// checkpoints are made (scale = amax / 448 per block or output row, e4m3 round-to-nearest-even
// with saturation): DeepSeek `fp8` blocks (F8_E4M3 weight + F32 weight_scale_inv) or
// compressed-tensors per-channel (F8_E4M3 weight + BF16 weight_scale [out, 1]). Also gives the
// same checkpoint with those FP8 weights expanded back to f32: the W8A16 reference.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "support/safetensors_writer.h"
#include "weights/safetensors.h"

namespace rackserve::testing {

enum class Fp8Layout { Block, Channel };

// The linears FP8 checkpoints store in FP8: every projection of attention, dense MLPs and
// experts (MiniMax's w1/w2/w3 included); lm_head, routers, embeddings, norms, biases and MTP
// eh_proj stay as they are.
inline bool quantized_in_checkpoint(const std::string& name, const Shape& shape) {
  const bool projection = name.ends_with("_proj.weight") || name.ends_with("_proj_with_mqa.weight") ||
                          name.ends_with(".w1.weight") || name.ends_with(".w2.weight") ||
                          name.ends_with(".w3.weight");
  return shape.size() == 2 && projection && !name.ends_with("eh_proj.weight");
}

struct QuantizedCheckpoint {
  std::vector<OutTensor> fp8;       // the FP8 checkpoint's tensors
  std::vector<OutTensor> expanded;  // the same with every FP8 weight as f32 codes x scales
};

// Blocks are [block_out, block_in] (Block only).
inline QuantizedCheckpoint quantize_checkpoint(const WeightStore& store, Fp8Layout layout, int64_t block_out,
                                               int64_t block_in) {
  QuantizedCheckpoint out;
  for (const std::string& name : store.names()) {
    const TensorRecord& record = store.get(name);
    std::vector<float> values(static_cast<size_t>(shape_numel(record.shape)));
    convert_to_f32(record.dtype, record.data, values.data(), values.size());
    if (!quantized_in_checkpoint(name, record.shape)) {
      const auto* begin = static_cast<const uint8_t*>(static_cast<const void*>(record.data));
      std::vector<uint8_t> raw(begin, begin + record.bytes);
      out.fp8.push_back({name, std::string(dtype_name(record.dtype)), record.shape, raw});
      out.expanded.push_back({name, std::string(dtype_name(record.dtype)), record.shape, raw});
      continue;
    }
    const int64_t rows = record.shape[0], cols = record.shape[1];
    const int64_t bo = layout == Fp8Layout::Block ? block_out : 1, bi = layout == Fp8Layout::Block ? block_in : cols;
    const int64_t scale_rows = (rows + bo - 1) / bo, scale_cols = (cols + bi - 1) / bi;
    std::vector<float> scales(static_cast<size_t>(scale_rows * scale_cols));
    for (int64_t sr = 0; sr < scale_rows; ++sr)
      for (int64_t sc = 0; sc < scale_cols; ++sc) {
        float amax = 0.0f;
        for (int64_t r = sr * bo; r < std::min(rows, (sr + 1) * bo); ++r)
          for (int64_t c = sc * bi; c < std::min(cols, (sc + 1) * bi); ++c)
            amax = std::max(amax, std::fabs(values[r * cols + c]));
        float scale = amax > 0.0f ? amax / 448.0f : 1.0f;
        // compressed-tensors stores the scale in the weight's dtype (bf16): quantize with that one.
        if (layout == Fp8Layout::Channel) scale = bf16_to_f32(f32_to_bf16(scale));
        scales[sr * scale_cols + sc] = scale;
      }
    std::vector<uint8_t> codes(values.size());
    std::vector<float> dequantized(values.size());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        const float scale = scales[(r / bo) * scale_cols + c / bi];
        codes[r * cols + c] = f32_to_e4m3(values[r * cols + c] / scale);
        dequantized[r * cols + c] = e4m3_to_f32(codes[r * cols + c]) * scale;
      }
    const std::string module = name.substr(0, name.size() - 7);
    out.fp8.push_back({name, "F8_E4M3", record.shape, codes});
    if (layout == Fp8Layout::Block) {
      out.fp8.push_back({module + ".weight_scale_inv", "F32", {scale_rows, scale_cols}, bytes_of(scales)});
    } else {
      std::vector<uint16_t> bf16;
      for (float s : scales) bf16.push_back(f32_to_bf16(s));
      out.fp8.push_back({module + ".weight_scale", "BF16", {rows, 1}, bytes_of(bf16)});
    }
    out.expanded.push_back({name, "F32", record.shape, bytes_of(dequantized)});
  }
  return out;
}

// The config.json quantization_config of such a checkpoint: DeepSeek's `fp8`, or
// compressed-tensors float-quantized channel weights with dynamic per-token activations.
inline nlohmann::json fp8_quantization_config(Fp8Layout layout, int64_t block_out, int64_t block_in) {
  if (layout == Fp8Layout::Block)
    return {{"quant_method", "fp8"},
            {"fmt", "e4m3"},
            {"activation_scheme", "dynamic"},
            {"weight_block_size", {block_out, block_in}}};
  return {{"quant_method", "compressed-tensors"},
          {"format", "float-quantized"},
          {"ignore", {"lm_head", "re:.*eh_proj$"}},
          {"config_groups",
           {{"group_0",
             {{"targets", {"Linear"}},
              {"weights", {{"num_bits", 8}, {"type", "float"}, {"strategy", "channel"}, {"symmetric", true}}},
              {"input_activations", {{"num_bits", 8}, {"type", "float"}, {"strategy", "token"}, {"dynamic", true}}}}}}}};
}

}  // namespace rackserve::testing
