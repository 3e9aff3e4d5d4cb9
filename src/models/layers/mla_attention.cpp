#include "models/layers/mla_attention.h"

namespace rackserve {

MlaAttentionBlock::MlaAttentionBlock(const ModelConfig& config, WeightLoader& loader, const std::string& prefix)
    : shape_(config.mla),
      norm_eps_(static_cast<float>(config.rms_norm_eps)),
      softmax_scale_(static_cast<float>(config.attention_softmax_scale())) {
  const MlaConfig& m = shape_;
  const int64_t hidden = config.hidden_size;
  RS_CHECK(!config.attention_bias, "attention_bias=true is not supported");
  if (m.q_lora_rank > 0) {
    q_a_proj_ = loader.load(prefix + ".q_a_proj.weight", {m.q_lora_rank, hidden}, WeightRole::Linear);
    q_a_norm_ = loader.load(prefix + ".q_a_layernorm.weight", {m.q_lora_rank}, WeightRole::Norm);
    q_b_proj_ = loader.load(prefix + ".q_b_proj.weight", {m.num_heads * m.qk_head_dim(), m.q_lora_rank},
                            WeightRole::Linear);
  } else {
    q_proj_ = loader.load(prefix + ".q_proj.weight", {m.num_heads * m.qk_head_dim(), hidden}, WeightRole::Linear);
  }
  kv_a_proj_ = loader.load(prefix + ".kv_a_proj_with_mqa.weight", {m.latent_width(), hidden}, WeightRole::Linear);
  kv_a_norm_ = loader.load(prefix + ".kv_a_layernorm.weight", {m.kv_lora_rank}, WeightRole::Norm);
  kv_b_proj_ = loader.load(prefix + ".kv_b_proj.weight", {m.num_heads * (m.qk_nope_head_dim + m.v_head_dim),
                                                          m.kv_lora_rank},
                           WeightRole::MlaKvB);
  o_proj_ = loader.load(prefix + ".o_proj.weight", {hidden, m.num_heads * m.v_head_dim}, WeightRole::Linear);
}

Tensor MlaAttentionBlock::forward(Backend& backend, const Tensor& x, const StepContext& step,
                                  const Tensor& cache_layer) const {
  const MlaConfig& m = shape_;
  const int64_t tokens = x.dim(0);
  Tensor q = m.q_lora_rank > 0
                 ? backend.linear(backend.rms_norm(backend.linear(x, q_a_proj_), q_a_norm_, norm_eps_), q_b_proj_)
                 : backend.linear(x, q_proj_);
  q = q.reshaped({tokens, m.num_heads, m.qk_head_dim()});
  backend.rope_inplace(q, m.qk_nope_head_dim, *step.rope, step.attention.positions);

  MlaCacheWrite write;
  write.kv = backend.linear(x, kv_a_proj_);
  write.norm_weight = kv_a_norm_;
  write.norm_eps = norm_eps_;
  write.rope = step.rope;
  write.positions = step.attention.positions;
  write.slots = step.attention.slots;
  write.cache_layer = cache_layer;
  backend.mla_write_cache(write);

  MlaAttention attention;
  attention.q = q;
  attention.kv_b = kv_b_proj_;
  attention.cache_layer = cache_layer;
  attention.batch = &step.attention;
  attention.heads = m.num_heads;
  attention.qk_nope_dim = m.qk_nope_head_dim;
  attention.rope_dim = m.qk_rope_head_dim;
  attention.v_dim = m.v_head_dim;
  attention.kv_lora_rank = m.kv_lora_rank;
  attention.softmax_scale = softmax_scale_;
  Tensor heads = backend.mla_attention(attention);
  return backend.linear(heads.reshaped({tokens, m.num_heads * m.v_head_dim}), o_proj_);
}

}  // namespace rackserve
