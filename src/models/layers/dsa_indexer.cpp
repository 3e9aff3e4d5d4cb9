#include "models/layers/dsa_indexer.h"

#include <cmath>

#include "core/error.h"

namespace rackserve {

namespace {
// transformers' DeepseekV32Indexer: nn.LayerNorm(index_head_dim, eps=1e-6), whatever the
// model's rms_norm_eps.
constexpr float kKeyNormEps = 1e-6f;
}  // namespace

DsaIndexer::DsaIndexer(const ModelConfig& config, WeightLoader& loader, const std::string& prefix)
    : shape_(config.indexer.value()) {
  const DsaIndexerConfig& index = shape_;
  RS_CHECK(config.mla.q_lora_rank > 0, "the DSA indexer reads the compressed query: q_lora_rank must be > 0");
  RS_CHECK(config.mla.qk_rope_head_dim <= index.head_dim, "the DSA indexer rotates {} of its {} key values",
           config.mla.qk_rope_head_dim, index.head_dim);
  wq_b_ = loader.load_linear(prefix + ".wq_b", index.num_heads * index.head_dim, config.mla.q_lora_rank,
                             TpSplit::Replicated);
  wk_ = loader.load_linear(prefix + ".wk", index.head_dim, config.hidden_size, TpSplit::Replicated);
  k_norm_weight_ = loader.load(prefix + ".k_norm.weight", {index.head_dim}, WeightRole::Norm);
  k_norm_bias_ = loader.load(prefix + ".k_norm.bias", {index.head_dim}, WeightRole::Bias);
  weights_proj_ = loader.load(prefix + ".weights_proj.weight", {index.num_heads, config.hidden_size},
                              WeightRole::RouterGate);
}

Tensor DsaIndexer::select(Backend& backend, const Activation& x, const Activation& q_latent, const StepContext& step,
                          const LayerKvCache& cache) const {
  const DsaIndexerConfig& index = shape_;
  RS_CHECK(!cache.index_keys.empty(), "a DSA layer needs the KV cache's indexer keys");
  RS_CHECK(!x.tensor.empty(), "the DSA indexer needs its input unquantized (its head weights are f32 products)");
  const int64_t tokens = x.tensor.dim(0);
  RopeTable rope = *step.rope;
  rope.interleaved = index.rope_interleaved;

  DsaKeyWrite write;
  write.k = wk_.apply(backend, x);
  write.norm_weight = k_norm_weight_;
  write.norm_bias = k_norm_bias_;
  write.norm_eps = kKeyNormEps;
  write.rope = &rope;
  write.positions = step.attention.positions;
  write.slots = step.attention.slots;
  write.cache_layer = cache.index_keys;
  write.cache_scales = cache.index_key_scales;
  backend.dsa_write_keys(write);

  Tensor q = wq_b_.apply(backend, q_latent).reshaped({tokens, index.num_heads, index.head_dim});
  backend.rope_inplace(q, 0, rope, step.attention.positions);

  DsaTopK top_k;
  top_k.q = q;
  top_k.head_weights = backend.linear_f32(x.tensor, weights_proj_);
  top_k.cache_layer = cache.index_keys;
  top_k.cache_scales = cache.index_key_scales;
  top_k.batch = &step.attention;
  top_k.top_k = index.top_k;
  top_k.softmax_scale = 1.0f / std::sqrt(static_cast<float>(index.head_dim));
  top_k.head_scale = 1.0f / std::sqrt(static_cast<float>(index.num_heads));
  return backend.dsa_top_k(top_k);
}

}  // namespace rackserve
