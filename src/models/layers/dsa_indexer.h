// DsaIndexer: the lightning indexer of DeepSeek sparse attention (DeepSeek-V3.2, GLM-5), which
// picks for every query token the index_topk cached positions its MLA attention reads.
//   q_idx = wq_b(q_latent)                  [T, index_heads, index_head_dim], q_latent being
//                                           q_a_layernorm(q_a_proj(x)), the MLA's own
//   k_idx = LayerNorm(wk(x))                [T, index_head_dim], cached per layer (DsaKeyWrite)
//   RoPE on the first qk_rope_head_dim values of both: interleaved pairs for GLM-5, half-split
//   for DeepSeek-V3.2 (DsaIndexerConfig::rope_interleaved)
//   score(t, j) = sum_h weights_proj(x)[t, h] / sqrt(index_heads) * relu(q_idx[t, h] . k_idx[j] / sqrt(index_head_dim))
// and the top_k positions by score (DsaTopK in ops.h). Hugging Face computes the scores in f32
// from bf16 keys; DeepSeek's own inference code quantizes q and k to e4m3 after a Hadamard
// rotation. The scores are a ranking, not attention weights, so either keeps the model's choice
// except near ties; rackserve follows transformers (the cache's own dtype, f32 scores).
// Tensor parallelism: the indexer is small and replicated; every rank scores and chooses the
// same positions from the same inputs, so no collective is needed.
#pragma once

#include <string>

#include "backend/backend.h"
#include "config/model_config.h"
#include "models/kv_cache.h"
#include "models/layers/activation.h"
#include "models/layers/linear_weight.h"
#include "models/layers/step_context.h"
#include "models/layers/weight_loader.h"

namespace rackserve {

class DsaIndexer {
 public:
  // `prefix` is e.g. "model.layers.3.self_attn.indexer"; config.indexer must be set.
  DsaIndexer(const ModelConfig& config, WeightLoader& loader, const std::string& prefix);

  // Caches this step's indexer keys into cache.index_keys and returns the key positions each
  // token attends to: [T, index_topk] int32 (DsaTopK's rows). x is the attention's normalised
  // input, q_latent the normalised query compression.
  Tensor select(Backend& backend, const Activation& x, const Activation& q_latent, const StepContext& step,
                const LayerKvCache& cache) const;

 private:
  DsaIndexerConfig shape_;
  LinearWeight wq_b_, wk_;
  Tensor k_norm_weight_, k_norm_bias_;
  Tensor weights_proj_;  // [index_heads, hidden]; its product is taken in f32, as transformers keeps it
};

}  // namespace rackserve
