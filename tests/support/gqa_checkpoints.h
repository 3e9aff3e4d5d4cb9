// Tiny checkpoints of the grouped-query-attention families written from the weight manifest
// with seeded random values (GLM-4.x glm4_moe, MiniMax-M2 minimax_m2): 8 query heads over 4 KV
// heads of 32, half of each head rotated. For tests that need a GQA model beyond the
// transformers fixtures (their configs, tensor parallelism, FP8 variants, the CUDA backend).
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

// The fields both families share.
inline json common_fields() {
  return {{"vocab_size", 384},        {"hidden_size", 64},   {"num_attention_heads", 8}, {"num_key_value_heads", 4},
          {"head_dim", 32},           {"max_position_embeddings", 512}, {"tie_word_embeddings", false},
          {"bos_token_id", 0},        {"eos_token_id", 1}};
}

// GLM-4.5/4.6/4.7 as transformers 5 saves it: q/k/v biases, per-head q/k norm, half of each
// head rotated, one dense first layer, a shared expert, routed scaling.
inline json glm4_moe_config() {
  json c = common_fields();
  c.update({{"model_type", "glm4_moe"},
            {"architectures", {"Glm4MoeForCausalLM"}},
            {"num_hidden_layers", 3},
            {"intermediate_size", 96},
            {"moe_intermediate_size", 32},
            {"n_routed_experts", 8},
            {"num_experts_per_tok", 2},
            {"n_shared_experts", 1},
            {"routed_scaling_factor", 2.5},
            {"first_k_dense_replace", 1},
            {"attention_bias", true},
            {"use_qk_norm", true},
            {"rms_norm_eps", 1e-5},
            {"rope_parameters", {{"rope_type", "default"}, {"rope_theta", 1e6}, {"partial_rotary_factor", 0.5}}}});
  return c;
}

// MiniMax-M2 as its checkpoints ship it: q/k norm over all heads, rotary_dim, every layer MoE.
inline json minimax_m2_config() {
  json c = common_fields();
  c.update({{"model_type", "minimax_m2"},
            {"architectures", {"MiniMaxM2ForCausalLM"}},
            {"num_hidden_layers", 2},
            {"intermediate_size", 32},
            {"num_local_experts", 8},
            {"num_experts_per_tok", 2},
            {"rotary_dim", 16},
            {"rope_theta", 5e6},
            {"use_qk_norm", true},
            {"qk_norm_type", "per_layer"},
            {"scoring_func", "sigmoid"},
            {"use_routing_bias", true},
            {"rms_norm_eps", 1e-6}});
  return c;
}

// config.json and a model.safetensors (F32) holding every required tensor of the manifest:
// norms 1 ± 0.1, biases ± 0.1, correction biases ± 0.05, embeddings ± 1, matrices with
// variance 1 / fan_in, so activations and logits stay O(1).
inline std::filesystem::path write_checkpoint(const std::string& name, const json& config_json) {
  const std::filesystem::path directory = std::filesystem::temp_directory_path() / ("rackserve-gqa-" + name + "-" + std::to_string(::getpid()));
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
