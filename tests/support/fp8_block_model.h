// A DeepSeek-V3-family model shaped for the CUDA FP8 block kernels, for tests that run FP8 block
// weights end to end: the dsv3-qlora-yarn-groups fixture's architecture (MLA with q_lora, YaRN,
// group-limited routing, a dense first layer) with every FP8 linear's input width a multiple of
// 128 and DeepSeek's `fp8` [128, 128] block quantization config. The fixture's own FP8 versions
// only allow 16x16 blocks (64-wide layers); this one is loaded with dummy weights, which are the
// same on every backend.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "support/fixtures.h"

namespace rackserve::testing {

struct Fp8BlockModelShape {
  int64_t hidden = 256;
  int64_t intermediate = 256;      // the dense layer's
  int64_t moe_intermediate = 128;  // per expert
  int64_t q_lora_rank = 128;
};

// Writes the model's config.json into a new temporary directory and returns it (the caller
// removes it once loaded). v_head_dim is 32, so o_proj's input is 4 heads x 32 = 128.
inline std::filesystem::path write_fp8_block_model_config(const Fp8BlockModelShape& shape) {
  std::ifstream file(fixture_directory("dsv3-qlora-yarn-groups") / "config.json");
  nlohmann::json config = nlohmann::json::parse(file);
  config["hidden_size"] = shape.hidden;
  config["intermediate_size"] = shape.intermediate;
  config["moe_intermediate_size"] = shape.moe_intermediate;
  config["q_lora_rank"] = shape.q_lora_rank;
  config["v_head_dim"] = 32;
  config["quantization_config"] = {{"quant_method", "fp8"},
                                   {"fmt", "e4m3"},
                                   {"activation_scheme", "dynamic"},
                                   {"weight_block_size", {128, 128}}};
  const std::filesystem::path directory =
      std::filesystem::temp_directory_path() / ("rackserve_fp8_block_model_" + std::to_string(std::random_device{}()));
  std::filesystem::create_directories(directory);
  std::ofstream(directory / "config.json") << config.dump(1);
  return directory;
}

}  // namespace rackserve::testing
