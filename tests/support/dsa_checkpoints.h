// Configs of tiny DeepSeek-sparse-attention models for seeded_checkpoint.h: GLM-5 (glm_moe_dsa:
// interleaved RoPE in the indexer, as transformers 5 saves it) and DeepSeek-V3.2 (deepseek_v32:
// half-split indexer RoPE, expert groups). index_topk is 8, so any prompt longer than 8
// tokens makes the indexer choose; 8 indexer heads keep exact score ties (every head's relu at
// zero) rare.
#pragma once

#include <cstdint>

#include <nlohmann/json.hpp>

#include "support/seeded_checkpoint.h"

namespace rackserve::testing {

inline constexpr int64_t kTinyIndexTopK = 8;

inline json dsa_common_fields() {
  return {{"vocab_size", 384},
          {"hidden_size", 64},
          {"num_hidden_layers", 2},
          {"num_attention_heads", 4},
          {"num_key_value_heads", 4},
          {"q_lora_rank", 32},
          {"kv_lora_rank", 32},
          {"qk_nope_head_dim", 16},
          {"qk_rope_head_dim", 8},
          {"v_head_dim", 16},
          {"intermediate_size", 96},
          {"moe_intermediate_size", 32},
          {"n_routed_experts", 8},
          {"num_experts_per_tok", 2},
          {"n_shared_experts", 1},
          {"first_k_dense_replace", 1},
          {"norm_topk_prob", true},
          {"routed_scaling_factor", 2.5},
          {"topk_method", "noaux_tc"},
          {"scoring_func", "sigmoid"},
          {"index_n_heads", 8},
          {"index_head_dim", 32},
          {"index_topk", kTinyIndexTopK},
          {"max_position_embeddings", 1024},
          {"rms_norm_eps", 1e-5},
          {"tie_word_embeddings", false},
          {"bos_token_id", 0},
          {"eos_token_id", 1}};
}

inline json glm_moe_dsa_config() {
  json c = dsa_common_fields();
  c.update({{"model_type", "glm_moe_dsa"},
            {"architectures", {"GlmMoeDsaForCausalLM"}},
            {"n_group", 1},
            {"topk_group", 1},
            {"rope_interleave", true},
            {"indexer_rope_interleave", true},
            {"rope_parameters", {{"rope_type", "default"}, {"rope_theta", 1e6}}}});
  return c;
}

inline json deepseek_v32_config() {
  json c = dsa_common_fields();
  c.update({{"model_type", "deepseek_v32"},
            {"architectures", {"DeepseekV32ForCausalLM"}},
            {"n_group", 2},
            {"topk_group", 1},
            {"rope_theta", 10000.0}});
  return c;
}

}  // namespace rackserve::testing
