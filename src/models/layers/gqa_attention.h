// Grouped-query attention block of GLM-4.x (glm4_moe) and MiniMax-M2 (minimax_m2): q/k/v
// projections (GLM: with biases), RMSNorm of queries and keys (GLM: per head over head_dim;
// MiniMax: over all heads of a token), RoPE in rotate_half form on the leading rotary_dim
// values of every head, the paged key/value cache write, causal attention, o_proj.
// Tensor parallelism: query and KV heads are divided among the ranks (q/k/v and their
// biases and all-heads norm weights by rows, o_proj by columns, its partial sums
// all-reduced); each rank caches its own KV heads. A norm over all heads of a token reads the
// mean of squares all-reduced over the ranks (vLLM's MiniMax-M2 does the same).
#pragma once

#include <string>

#include "config/model_config.h"
#include "models/layers/attention_block.h"
#include "models/layers/linear_weight.h"
#include "models/layers/weight_loader.h"
#include "parallel/communicator.h"

namespace rackserve {

class GqaAttentionBlock final : public AttentionBlock {
 public:
  // `prefix` is e.g. "model.layers.3.self_attn"; `tp` is the rank's group (nullptr: one
  // rank), whose size must be loader.shard().world and divide num_key_value_heads.
  GqaAttentionBlock(const ModelConfig& config, WeightLoader& loader, const std::string& prefix,
                    Communicator* tp = nullptr);

  Tensor forward(Backend& backend, const Activation& x, const StepContext& step,
                 const LayerKvCache& cache) const override;
  std::optional<Fp8ActivationLayout> input_fp8_layout() const override;

  // Values this rank caches per token: 2 x its KV heads x head_dim.
  static int64_t cache_width_per_rank(const GqaConfig& gqa, int world);

 private:
  // x [T, heads * head_dim] of `heads` heads -> normalised as the config says.
  Tensor normalize(Backend& backend, const Tensor& x, const Tensor& weight, int64_t heads) const;

  GqaConfig shape_;
  int64_t local_heads_, local_kv_heads_;
  Communicator* tp_;
  float norm_eps_;
  float softmax_scale_;
  LinearWeight q_proj_, k_proj_, v_proj_, o_proj_;
  // k_proj's rows stacked on v_proj's (both read x): one product instead of two (at decode, one
  // launch with two outputs). Empty (k_proj_, v_proj_ loaded on their own) when the fusion is
  // off or the checkpoint stores the two differently.
  LinearWeight kv_proj_;
  bool fused_kv() const { return !kv_proj_.dense.empty() || kv_proj_.fp8.has_value(); }
  Tensor q_bias_, k_bias_, v_bias_;  // empty without attention_bias
  Tensor q_norm_, k_norm_;           // empty without a q/k norm
};

}  // namespace rackserve
