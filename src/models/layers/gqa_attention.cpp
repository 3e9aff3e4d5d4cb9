#include "models/layers/gqa_attention.h"

#include <string>
#include <tuple>
#include <vector>

#include "models/layers/tensor_parallel.h"

namespace rackserve {

GqaAttentionBlock::GqaAttentionBlock(const ModelConfig& config, WeightLoader& loader, const std::string& prefix,
                                     Communicator* tp)
    : shape_(config.gqa),
      local_heads_(per_rank("num_attention_heads", config.gqa.num_heads, loader.shard())),
      local_kv_heads_(per_rank("num_key_value_heads", config.gqa.num_kv_heads, loader.shard())),
      tp_(tp),
      norm_eps_(static_cast<float>(config.rms_norm_eps)),
      softmax_scale_(static_cast<float>(config.attention_softmax_scale())) {
  const GqaConfig& g = shape_;
  const int64_t hidden = config.hidden_size;
  const int64_t q_rows = g.num_heads * g.head_dim, kv_rows = g.num_kv_heads * g.head_dim;
  q_proj_ = loader.load_linear(prefix + ".q_proj", q_rows, hidden, TpSplit::Column);
  const std::vector<std::string> kv = {prefix + ".k_proj", prefix + ".v_proj"};
  if (loader.fusions().kv && loader.can_concat_linear(kv, {kv_rows, kv_rows}, hidden, TpSplit::Column)) {
    kv_proj_ = loader.load_linear_concat(kv, {kv_rows, kv_rows}, hidden, TpSplit::Column);
  } else {
    k_proj_ = loader.load_linear(kv[0], kv_rows, hidden, TpSplit::Column);
    v_proj_ = loader.load_linear(kv[1], kv_rows, hidden, TpSplit::Column);
  }
  o_proj_ = loader.load_linear(prefix + ".o_proj", hidden, q_rows, TpSplit::Row);
  if (g.qkv_bias) {
    q_bias_ = loader.load(prefix + ".q_proj.bias", {q_rows}, WeightRole::Bias, {TpSplit::Column});
    k_bias_ = loader.load(prefix + ".k_proj.bias", {kv_rows}, WeightRole::Bias, {TpSplit::Column});
    v_bias_ = loader.load(prefix + ".v_proj.bias", {kv_rows}, WeightRole::Bias, {TpSplit::Column});
  }
  if (g.qk_norm == GqaConfig::QkNorm::PerHead) {
    q_norm_ = loader.load(prefix + ".q_norm.weight", {g.head_dim}, WeightRole::Norm);
    k_norm_ = loader.load(prefix + ".k_norm.weight", {g.head_dim}, WeightRole::Norm);
  } else if (g.qk_norm == GqaConfig::QkNorm::AllHeads) {
    q_norm_ = loader.load(prefix + ".q_norm.weight", {q_rows}, WeightRole::Norm, {TpSplit::Column});
    k_norm_ = loader.load(prefix + ".k_norm.weight", {kv_rows}, WeightRole::Norm, {TpSplit::Column});
  }
}

int64_t GqaAttentionBlock::cache_width_per_rank(const GqaConfig& gqa, int world) {
  RS_CHECK(world >= 1 && gqa.num_kv_heads % world == 0, "--tp {}: num_key_value_heads {} is not divisible by {}",
           world, gqa.num_kv_heads, world);
  return gqa.cache_width() / world;
}

std::optional<Fp8ActivationLayout> GqaAttentionBlock::input_fp8_layout() const {
  if (fused_kv()) return first_fp8_layout({q_proj_.input_fp8_layout(), kv_proj_.input_fp8_layout()});
  return first_fp8_layout({q_proj_.input_fp8_layout(), k_proj_.input_fp8_layout(), v_proj_.input_fp8_layout()});
}

Tensor GqaAttentionBlock::normalize(Backend& backend, const Tensor& x, const Tensor& weight, int64_t heads) const {
  const int64_t tokens = x.dim(0), head_dim = shape_.head_dim;
  switch (shape_.qk_norm) {
    case GqaConfig::QkNorm::None: return x;
    case GqaConfig::QkNorm::PerHead:
      return backend.rms_norm(x.reshaped({tokens * heads, head_dim}), weight, norm_eps_)
          .reshaped({tokens, heads * head_dim});
    case GqaConfig::QkNorm::AllHeads:
      if (tp_ == nullptr || tp_->world_size() == 1) return backend.rms_norm(x, weight, norm_eps_);
      // Each rank's sum of squares over the whole row's width, summed over the ranks: the row's mean.
      Tensor mean_squares = backend.mean_squares(x, x.dim(1) * tp_->world_size());
      tp_->all_reduce_sum(mean_squares);
      return backend.rms_norm_given_mean_squares(x, mean_squares, weight, norm_eps_);
  }
  RS_FAIL("unknown q/k norm");
}

Tensor GqaAttentionBlock::forward(Backend& backend, const Activation& x, const StepContext& step,
                                  const LayerKvCache& cache) const {
  const GqaConfig& g = shape_;
  const int64_t tokens = x.tensor.empty() ? x.fp8->rows() : x.tensor.dim(0);
  Tensor q = q_proj_.apply(backend, x), k, v;
  if (fused_kv())
    std::tie(k, v) = kv_proj_.apply_split(backend, x, local_kv_heads_ * g.head_dim);
  else
    k = k_proj_.apply(backend, x), v = v_proj_.apply(backend, x);
  if (g.qkv_bias) {
    backend.add_bias(q, q_bias_);
    backend.add_bias(k, k_bias_);
    backend.add_bias(v, v_bias_);
  }
  q = normalize(backend, q, q_norm_, local_heads_).reshaped({tokens, local_heads_, g.head_dim});
  k = normalize(backend, k, k_norm_, local_kv_heads_).reshaped({tokens, local_kv_heads_, g.head_dim});
  backend.rope_inplace(q, 0, *step.rope, step.attention.positions);
  backend.rope_inplace(k, 0, *step.rope, step.attention.positions);

  GqaCacheWrite write;
  write.k = k;
  write.v = v.reshaped({tokens, local_kv_heads_, g.head_dim});
  write.slots = step.attention.slots;
  write.cache_layer = cache.entries;
  write.cache_scales = cache.scales;
  backend.gqa_write_cache(write);

  GqaAttention attention;
  attention.q = q;
  attention.cache_layer = cache.entries;
  attention.cache_scales = cache.scales;
  attention.batch = &step.attention;
  attention.heads = local_heads_;
  attention.kv_heads = local_kv_heads_;
  attention.head_dim = g.head_dim;
  attention.softmax_scale = softmax_scale_;
  Tensor heads = backend.gqa_attention(attention);
  Tensor out = o_proj_.apply(backend, heads.reshaped({tokens, local_heads_ * g.head_dim}));
  all_reduce_partial_sums(tp_, out);
  return out;
}

}  // namespace rackserve
