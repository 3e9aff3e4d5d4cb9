// Tiny checkpoints written from the weight manifest with seeded random values, for tests that
// need a model beyond the transformers fixtures (configs of their own, tensor parallelism, FP8
// variants, the CUDA backend): write_checkpoint(name, config) makes a directory with the
// config.json and a model.safetensors of every tensor the config's manifest requires.
#pragma once

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/model_config.h"
#include "models/weight_manifest.h"
#include "support/safetensors_writer.h"
#include "weights/quant_config.h"

namespace rackserve::testing {

using nlohmann::json;

// A tiny DeepSeek-V3 (MLA with query compression, one dense layer, then 8 routed experts of 64
// and a shared one, every expert taken by every token so no routing decision can flip under a
// format's rounding), for the quantized-expert tests.
inline json tiny_deepseek_v3_config() {
  return {{"model_type", "deepseek_v3"},  {"architectures", {"DeepseekV3ForCausalLM"}},
          {"vocab_size", 384},            {"hidden_size", 64},
          {"num_hidden_layers", 2},       {"num_attention_heads", 4},
          {"num_key_value_heads", 4},     {"q_lora_rank", 32},
          {"kv_lora_rank", 32},           {"qk_nope_head_dim", 16},
          {"qk_rope_head_dim", 8},        {"v_head_dim", 16},
          {"intermediate_size", 96},      {"moe_intermediate_size", 64},
          {"n_routed_experts", 8},        {"num_experts_per_tok", 8},
          {"n_shared_experts", 1},        {"first_k_dense_replace", 1},
          {"norm_topk_prob", true},       {"routed_scaling_factor", 2.5},
          {"topk_method", "noaux_tc"},    {"scoring_func", "sigmoid"},
          {"n_group", 1},                 {"topk_group", 1},
          {"rope_theta", 10000.0},        {"max_position_embeddings", 512},
          {"rms_norm_eps", 1e-6},         {"tie_word_embeddings", false},
          {"bos_token_id", 0},            {"eos_token_id", 1}};
}

// `length` token ids drawn uniformly from [2, vocab) (0 and 1 are the tiny configs' bos / eos).
inline std::vector<int32_t> random_prompt(int64_t length, uint32_t seed, int64_t vocab) {
  std::mt19937 generator(seed);
  std::uniform_int_distribution<int32_t> token(2, static_cast<int32_t>(vocab) - 1);
  std::vector<int32_t> tokens(static_cast<size_t>(length));
  for (int32_t& t : tokens) t = token(generator);
  return tokens;
}

// config.json and a model.safetensors (F32) holding every required tensor of the manifest:
// norms 1 ± 0.1, biases ± 0.1, correction biases ± 0.05, embeddings ± 1, matrices with
// variance 1 / fan_in, so activations and logits stay O(1).
inline std::filesystem::path write_checkpoint(const std::string& name, const json& config_json) {
  const std::filesystem::path directory = std::filesystem::temp_directory_path() / ("rackserve-seeded-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::create_directories(directory);
  std::ofstream(directory / "config.json") << config_json.dump(1);
  const ModelConfig config = ModelConfig::from_json(config_json);
  const WeightManifest manifest = WeightManifest::build(config, QuantConfig{});
  std::mt19937 generator(1234);
  std::vector<OutTensor> tensors;
  for (const ManifestEntry& entry : manifest.entries()) {
    if (entry.optional) continue;
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    std::vector<float> values(static_cast<size_t>(shape_numel(entry.shape)));
    const bool norm = entry.name.ends_with("norm.weight");
    const float scale = norm                                                 ? 0.1f
                        : entry.name.ends_with("e_score_correction_bias")    ? 0.05f
                        : entry.name.ends_with(".bias")                      ? 0.1f
                        : entry.name.find("embed_tokens") != std::string::npos ? 1.0f
                                                                              : std::sqrt(3.0f / entry.shape.back());
    for (float& value : values) value = (norm ? 1.0f : 0.0f) + scale * uniform(generator);
    tensors.push_back({entry.name, "F32", entry.shape, bytes_of(values)});
  }
  write_safetensors(directory / "model.safetensors", tensors);
  return directory;
}

// Every token takes every expert in the quantized variants (FP8 weights or cache): a
// quantization-noise flip of a top-2 choice would be a jump no error bound covers (as in
// fp8_checkpoint_test).
inline json every_expert(json config) {
  const char* experts = config["model_type"] == "minimax_m2" ? "num_local_experts" : "n_routed_experts";
  config["num_experts_per_tok"] = config[experts];
  return config;
}

}  // namespace rackserve::testing
