// ModelConfig: everything the forward pass needs from a Hugging Face config.json, parsed and
// validated once, then immutable. Two attention families:
//   multi-head latent attention, the DeepSeek-V3 family: deepseek_v3, kimi_k2, kimi_k25's
//     text part, glm_moe_dsa, deepseek_v32;
//   grouped-query attention: glm4_moe (GLM-4.5 / 4.6 / 4.7), minimax_m2 (MiniMax-M2.x).
// Both run routed MoE feed-forwards with sigmoid (or softmax) scores.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace rackserve {

// Rotary embedding on the rope part of queries and keys. `interleaved` means the checkpoint
// stores rotation pairs as (x0, x1), (x2, x3), ... (DeepSeek `rope_interleave`, the MLA
// default); otherwise pairs are (x[i], x[i + dim/2]) (rotate_half, every GQA family here).
struct RopeConfig {
  enum class Type { Default, Yarn };
  Type type = Type::Default;
  double theta = 10000.0;
  bool interleaved = true;
  // YaRN (type == Yarn only).
  double factor = 1.0;
  int64_t original_max_position_embeddings = 0;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 0.0;          // 0 when absent
  double mscale_all_dim = 0.0;  // 0 when absent; when set it scales the softmax by mscale^2
  std::optional<double> attention_factor;  // explicit cos/sin scale, overrides the mscale ratio
  bool truncate = true;         // round the correction range to whole dimensions
};

// Multi-head latent attention shapes (per model, before any tensor-parallel split).
struct MlaConfig {
  int64_t num_heads = 0;
  int64_t q_lora_rank = 0;  // 0: no query compression, q_proj maps hidden -> heads * qk_head_dim
  int64_t kv_lora_rank = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t v_head_dim = 0;
  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  int64_t latent_width() const { return kv_lora_rank + qk_rope_head_dim; }  // cached values per token per layer
};

// Grouped-query attention shapes (per model, before any tensor-parallel split): num_heads
// query heads of head_dim share num_kv_heads key/value heads; RoPE rotates the leading
// rotary_dim values of every query and key head (partial rotary).
struct GqaConfig {
  // RMSNorm of queries and keys before RoPE: none; per head over head_dim (glm4_moe
  // use_qk_norm, weights [head_dim]); or over all heads of a token together (minimax_m2
  // qk_norm_type "per_layer", weights [heads * head_dim] and [kv_heads * head_dim]).
  enum class QkNorm { None, PerHead, AllHeads };
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t rotary_dim = 0;
  QkNorm qk_norm = QkNorm::None;
  bool qkv_bias = false;  // q/k/v projections carry biases (attention_bias); o_proj never does
  // Cached values per token per layer: its key then its value for every KV head.
  int64_t cache_width() const { return 2 * num_kv_heads * head_dim; }
};

enum class AttentionKind { Mla, Gqa };

struct MoeConfig {
  enum class Scoring { Sigmoid, Softmax };
  int64_t num_routed_experts = 0;
  int64_t num_shared_experts = 0;
  int64_t experts_per_token = 0;
  int64_t expert_intermediate_size = 0;
  int64_t num_groups = 1;       // n_group
  int64_t top_k_groups = 1;     // topk_group
  bool normalize_top_k = true;  // norm_topk_prob
  double routed_scaling_factor = 1.0;
  Scoring scoring = Scoring::Sigmoid;
  bool has_score_correction_bias = true;  // topk_method noaux_tc
  int64_t first_dense_layers = 0;         // first_k_dense_replace (minimax_m2: none)
  int64_t layer_frequency = 1;            // moe_layer_freq
};

// DeepSeek sparse attention indexer (GLM-5, DeepSeek-V3.2): every layer runs its own (GLM's
// "shared" layers, which reuse an earlier layer's choice, are refused).
struct DsaIndexerConfig {
  int64_t num_heads = 0;   // index_n_heads
  int64_t head_dim = 0;    // index_head_dim
  int64_t top_k = 0;       // index_topk: key positions each query attends to
  bool rope_interleaved = true;  // pair layout of the indexer's RoPE (DeepSeek-V3.2: half-split)
};

struct ModelConfig {
  std::string model_type;    // of the language model (text_config's for kimi_k25)
  std::string architecture;  // architectures[0] of the file
  // Prepended to every checkpoint tensor name: "language_model." when the language model
  // is wrapped (kimi_k25 stores language_model.model.layers.N...), else empty.
  std::string checkpoint_prefix;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;  // dense MLP layers
  int64_t num_layers = 0;
  int64_t num_mtp_layers = 0;  // num_nextn_predict_layers, stored after the main layers
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  std::vector<int64_t> eos_token_ids;
  std::optional<int64_t> bos_token_id;
  AttentionKind attention_kind = AttentionKind::Mla;
  MlaConfig mla;  // attention_kind == Mla
  GqaConfig gqa;  // attention_kind == Gqa
  MoeConfig moe;
  RopeConfig rope;
  std::optional<DsaIndexerConfig> indexer;
  // The language model's JSON object as read (quantization_config and the like).
  nlohmann::json raw;

  bool is_moe_layer(int64_t layer) const;
  bool is_mla() const { return attention_kind == AttentionKind::Mla; }
  int64_t num_attention_heads() const { return is_mla() ? mla.num_heads : gqa.num_heads; }
  // Width of a query-key dot product: qk_head_dim (MLA) or head_dim (GQA).
  int64_t attention_qk_dim() const { return is_mla() ? mla.qk_head_dim() : gqa.head_dim; }
  // The width RoPE rotates: qk_rope_head_dim (MLA) or rotary_dim (GQA).
  int64_t rotary_dim() const { return is_mla() ? mla.qk_rope_head_dim : gqa.rotary_dim; }
  // Values the KV cache holds per token per layer, summed over tensor-parallel ranks: the MLA
  // latent and rope key (every rank holds all of them), or GQA's keys and values (split by heads).
  int64_t kv_cache_values() const { return is_mla() ? mla.latent_width() : gqa.cache_width(); }
  // Softmax scale of attention: attention_qk_dim()^-0.5, times mscale(factor, mscale_all_dim)^2
  // for the YaRN of MLA models (DeepSeek's softmax correction; GQA families have none).
  double attention_softmax_scale() const;

  // `source` names the file in error messages.
  static ModelConfig from_json(const nlohmann::json& json, const std::string& source = "config.json");
  // Accepts a model directory (reads its config.json) or the path of a config file.
  static ModelConfig load(const std::filesystem::path& path);
};

// YaRN's attention temperature: 0.1 * mscale * ln(scale) + 1 for scale > 1, else 1.
double yarn_mscale(double scale, double mscale);

}  // namespace rackserve
