#include "models/layers/mla_attention.h"

#include <string>
#include <tuple>
#include <vector>

#include "models/layers/tensor_parallel.h"

namespace rackserve {

MlaAttentionBlock::MlaAttentionBlock(const ModelConfig& config, WeightLoader& loader, const std::string& prefix,
                                     Communicator* tp)
    : shape_(config.mla),
      local_heads_(per_rank("num_attention_heads", config.mla.num_heads, loader.shard())),
      tp_(tp),
      norm_eps_(static_cast<float>(config.rms_norm_eps)),
      softmax_scale_(static_cast<float>(config.attention_softmax_scale())) {
  const MlaConfig& m = shape_;
  const int64_t hidden = config.hidden_size;
  const std::vector<std::string> compressions = {prefix + ".q_a_proj", prefix + ".kv_a_proj_with_mqa"};
  const std::vector<int64_t> compression_rows = {m.q_lora_rank, m.latent_width()};
  if (m.q_lora_rank > 0) {
    if (loader.fusions().qkv_a && loader.can_concat_linear(compressions, compression_rows, hidden, TpSplit::Replicated))
      qkv_a_proj_ = loader.load_linear_concat(compressions, compression_rows, hidden, TpSplit::Replicated);
    else
      q_a_proj_ = loader.load_linear(compressions[0], m.q_lora_rank, hidden, TpSplit::Replicated);
    q_a_norm_ = loader.load(prefix + ".q_a_layernorm.weight", {m.q_lora_rank}, WeightRole::Norm);
    q_b_proj_ = loader.load_linear(prefix + ".q_b_proj", m.num_heads * m.qk_head_dim(), m.q_lora_rank, TpSplit::Column);
  } else {
    q_proj_ = loader.load_linear(prefix + ".q_proj", m.num_heads * m.qk_head_dim(), hidden, TpSplit::Column);
  }
  if (!fused_qkv_a())
    kv_a_proj_ = loader.load_linear(compressions[1], m.latent_width(), hidden, TpSplit::Replicated);
  kv_a_norm_ = loader.load(prefix + ".kv_a_layernorm.weight", {m.kv_lora_rank}, WeightRole::Norm);
  // Absorbed into attention, so always dense: an FP8 checkpoint's kv_b_proj is dequantized at
  // load, as DeepSeek's reference (weight_dequant) and vLLM's MLA do.
  kv_b_proj_ = loader.load(prefix + ".kv_b_proj.weight", {m.num_heads * (m.qk_nope_head_dim + m.v_head_dim),
                                                          m.kv_lora_rank},
                           WeightRole::MlaKvB, {TpSplit::Column});
  o_proj_ = loader.load_linear(prefix + ".o_proj", hidden, m.num_heads * m.v_head_dim, TpSplit::Row);
  if (config.indexer) indexer_ = std::make_unique<DsaIndexer>(config, loader, prefix + ".indexer");
}

std::optional<Fp8ActivationLayout> MlaAttentionBlock::input_fp8_layout() const {
  if (fused_qkv_a()) return qkv_a_proj_.input_fp8_layout();
  const LinearWeight& q_in = shape_.q_lora_rank > 0 ? q_a_proj_ : q_proj_;
  return first_fp8_layout({kv_a_proj_.input_fp8_layout(), q_in.input_fp8_layout()});
}

Tensor MlaAttentionBlock::forward(Backend& backend, const Activation& x, const StepContext& step,
                                  const LayerKvCache& cache) const {
  const MlaConfig& m = shape_;
  const int64_t tokens = x.tensor.dim(0);
  // The compressions of x: q_a (with query compression) and kv_a, in one product when stacked.
  Tensor q_compressed, kv;
  if (fused_qkv_a()) {
    std::tie(q_compressed, kv) = qkv_a_proj_.apply_split(backend, x, m.q_lora_rank);
  } else {
    if (m.q_lora_rank > 0) q_compressed = q_a_proj_.apply(backend, x);
    kv = kv_a_proj_.apply(backend, x);
  }
  Tensor q;
  Activation q_latent;
  if (m.q_lora_rank > 0) {
    // q_a_layernorm's output feeds q_b_proj (and the indexer's wq_b): quantized by the norm
    // when q_b_proj is FP8.
    q_latent = rms_norm_activation(backend, q_compressed, q_a_norm_, norm_eps_, q_b_proj_.input_fp8_layout());
    q = q_b_proj_.apply(backend, q_latent);
  } else {
    q = q_proj_.apply(backend, x);
  }
  q = q.reshaped({tokens, local_heads_, m.qk_head_dim()});
  backend.rope_inplace(q, m.qk_nope_head_dim, *step.rope, step.attention.positions);

  MlaCacheWrite write;
  write.kv = kv;
  write.norm_weight = kv_a_norm_;
  write.norm_eps = norm_eps_;
  write.rope = step.rope;
  write.positions = step.attention.positions;
  write.slots = step.attention.slots;
  write.cache_layer = cache.entries;
  write.cache_scales = cache.scales;
  backend.mla_write_cache(write);

  MlaAttention attention;
  attention.q = q;
  attention.kv_b = kv_b_proj_;
  attention.cache_layer = cache.entries;
  attention.cache_scales = cache.scales;
  attention.batch = &step.attention;
  attention.heads = local_heads_;
  attention.qk_nope_dim = m.qk_nope_head_dim;
  attention.rope_dim = m.qk_rope_head_dim;
  attention.v_dim = m.v_head_dim;
  attention.kv_lora_rank = m.kv_lora_rank;
  attention.softmax_scale = softmax_scale_;
  if (indexer_) attention.key_positions = indexer_->select(backend, x, q_latent, step, cache);
  Tensor heads = backend.mla_attention(attention);
  Tensor out = o_proj_.apply(backend, heads.reshaped({tokens, local_heads_ * m.v_head_dim}));
  all_reduce_partial_sums(tp_, out);
  return out;
}

}  // namespace rackserve
