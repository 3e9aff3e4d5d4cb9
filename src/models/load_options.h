// LoadOptions: how load_model gets a model's weights and how much of it. Parsed at the CLI
// boundary (--load-format, --num-layers), plain data below it.
#pragma once

#include <cstdint>
#include <string_view>

#include "config/model_config.h"
#include "models/step_graphs.h"

namespace rackserve {

enum class LoadFormat : uint8_t {
  Safetensors,  // the checkpoint's *.safetensors (also what "auto" means for now)
  Dummy,        // random weights with the config's shapes, generated on the backend (BF16 on CUDA)
};

// What load does with the linears an FP8 checkpoint stores in e4m3.
enum class Fp8Weights : uint8_t {
  Native,      // kept as e4m3 + scales and run W8A8 (dynamic per-token activation quantization)
  Dequantize,  // expanded to the backend's dense weights (values * scales) and run W8A16: f32 on
               // the CPU (exact), BF16 on CUDA (twice the weight memory of Native)
};

LoadFormat parse_load_format(std::string_view name);  // "auto", "safetensors", "dummy"; throws otherwise
std::string_view load_format_name(LoadFormat format);

// The fused weights the model builds where the checkpoint allows them. Off, each module
// loads and runs on its own: the unfused path, to bisect a numerical difference.
struct WeightFusions {
  bool qkv_a = true;          // q_a_proj and kv_a_proj_with_mqa as one stacked linear
  bool shared_expert = true;  // a lone shared expert stacked as one more routed expert
  bool kv = true;             // GQA k_proj and v_proj as one stacked linear
};

struct LoadOptions {
  LoadFormat format = LoadFormat::Safetensors;
  // Decoder layers to build: the first num_layers of the config's (0: all). The first
  // first_k_dense_replace of them stay dense, so a cut model keeps the layer types it had.
  int64_t num_layers = 0;
  uint64_t dummy_seed = 0;  // the dummy weights' random stream
  Fp8Weights fp8_weights = Fp8Weights::Native;
  WeightFusions fusions;
  // Decode steps from captured graphs where the backend has them (CUDA); not a loading
  // choice, but fixed for the model's lifetime like the rest.
  StepGraphOptions step_graphs;
};

// `config` with its depth cut to options.num_layers (unchanged when 0); throws when the
// count is negative or exceeds the config's layers.
ModelConfig with_layers_cut(ModelConfig config, int64_t num_layers);

}  // namespace rackserve
