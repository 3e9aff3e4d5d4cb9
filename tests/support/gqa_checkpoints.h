// Configs of tiny grouped-query-attention models (GLM-4.x glm4_moe, MiniMax-M2 minimax_m2) for
// seeded_checkpoint.h: 8 query heads over 4 KV heads of 32, half of each head rotated. For
// tests that need a GQA model beyond the transformers fixtures (their configs, tensor
// parallelism, FP8 variants, the CUDA backend).
#pragma once

#include <nlohmann/json.hpp>

#include "support/seeded_checkpoint.h"

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

}  // namespace rackserve::testing
