#include "models/decoder_model.h"

#include <fmt/format.h>

#include "core/error.h"
#include "models/layers/gqa_attention.h"
#include "models/layers/mla_attention.h"
#include "models/layers/moe_checkpoint_names.h"
#include "models/layers/step_context.h"

namespace rackserve {

DecoderModel::DecoderModel(ModelConfig config, WeightSource& weights, Backend& backend, const StepGraphOptions& graphs,
                           Communicator* tp, const WeightFusions& fusions)
    : config_(std::move(config)), backend_(backend), graphs_(backend, graphs, config_.max_position_embeddings) {
  const ModelConfig& c = config_;
  WeightLoader loader(weights, fusions);
  const ShardSpec& shard = weights.shard();
  RS_CHECK(tp == nullptr ? shard.world == 1 : tp->rank() == shard.rank && tp->world_size() == shard.world,
           "the weights are loaded for rank {} of {}, the communicator is rank {} of {}", shard.rank, shard.world,
           tp ? tp->rank() : 0, tp ? tp->world_size() : 1);

  kv_entry_width_ = c.is_mla() ? c.mla.latent_width() : GqaAttentionBlock::cache_width_per_rank(c.gqa, shard.world);
  RotaryFrequencies frequencies = rotary_frequencies(c.rope, c.rotary_dim());
  Tensor host_inv_freq{frequencies.inv_freq.data(), DType::F32, {static_cast<int64_t>(frequencies.inv_freq.size())}, Device{}};
  rope_.inv_freq = backend.upload_weight(host_inv_freq, WeightRole::RopeFrequencies);
  rope_.dim = c.rotary_dim();
  rope_.scale = frequencies.scale;
  rope_.interleaved = c.rope.interleaved;

  embed_tokens_ =
      std::make_unique<VocabParallelEmbedding>(loader, "model.embed_tokens.weight", c.vocab_size, c.hidden_size, tp);
  final_norm_ = loader.load("model.norm.weight", {c.hidden_size}, WeightRole::Norm);
  lm_head_ = c.tie_word_embeddings && !loader.contains("lm_head.weight")
                 ? std::make_unique<VocabParallelLmHead>(*embed_tokens_, c.vocab_size, tp)
                 : std::make_unique<VocabParallelLmHead>(loader, "lm_head.weight", c.vocab_size, c.hidden_size, tp);

  const MoeCheckpointNames moe_names = MoeCheckpointNames::of(c);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    std::string prefix = fmt::format("model.layers.{}", i);
    DecoderLayer layer;
    layer.input_norm = loader.load(prefix + ".input_layernorm.weight", {c.hidden_size}, WeightRole::Norm);
    layer.post_attention_norm =
        loader.load(prefix + ".post_attention_layernorm.weight", {c.hidden_size}, WeightRole::Norm);
    if (c.is_mla())
      layer.attention = std::make_unique<MlaAttentionBlock>(c, loader, prefix + ".self_attn", tp);
    else
      layer.attention = std::make_unique<GqaAttentionBlock>(c, loader, prefix + ".self_attn", tp);
    if (c.is_moe_layer(i))
      layer.moe = std::make_unique<MoeBlock>(c, loader, prefix + "." + moe_names.block, moe_names, tp);
    else
      layer.dense_mlp = std::make_unique<DenseMlp>(loader, prefix + ".mlp", c.hidden_size, c.intermediate_size, tp);
    layers_.push_back(std::move(layer));
  }
}

PagedKvCache DecoderModel::allocate_kv_cache(int64_t pages, int64_t page_size,
                                             std::optional<KvCacheDtype> dtype) const {
  return PagedKvCache(backend_, config_.num_layers, pages, page_size, kv_entry_width_, dtype,
                      config_.indexer ? config_.indexer->head_dim : 0);
}

Tensor DecoderModel::forward(const ForwardBatch& batch, PagedKvCache& cache) {
  RS_CHECK(!batch.sequences.empty(), "empty forward batch");
  RS_CHECK(cache.layers() == config_.num_layers && cache.entry_width() == kv_entry_width_ &&
               cache.index_key_width() == (config_.indexer ? config_.indexer->head_dim : 0),
           "KV cache does not match the model");
  FlatBatch flat = flatten(batch, cache.page_size(), cache.pages(), config_.max_position_embeddings, config_.vocab_size);
  const int64_t rows = static_cast<int64_t>(flat.logit_rows.size());
  const std::optional<StepGraphShape> shape = graphs_.shape_for(flat, cache.page_size());
  if (shape) StepGraphs::pad(flat, *shape, cache.page_size());
  embed_tokens_->localize(flat.token_ids);
  backend_.begin_step();
  const StepInputs inputs = upload_step_inputs(backend_, flat, cache.page_size());
  auto run_layers = [&] { return compute(inputs, cache); };
  Tensor logits = shape ? graphs_.run(*shape, cache, run_layers) : run_layers();
  return logits.rows(0, rows);
}

Tensor DecoderModel::compute(const StepInputs& inputs, const PagedKvCache& cache) {
  StepContext step;
  step.rope = &rope_;
  step.attention = inputs.attention;
  const float eps = static_cast<float>(config_.rms_norm_eps);
  Tensor hidden = embed_tokens_->forward(backend_, inputs.token_ids);
  // Each norm also quantizes its output when the projections it feeds are FP8, in their layout
  // (models/layers/activation.h); the final norm feeds the dense lm_head.
  const DecoderLayer& first = layers_.front();
  Activation normed = rms_norm_activation(backend_, hidden, first.input_norm, eps, first.attention->input_fp8_layout());
  for (size_t i = 0; i < layers_.size(); ++i) {
    const DecoderLayer& layer = layers_[i];
    const int64_t index = static_cast<int64_t>(i);
    Tensor attended = layer.attention->forward(backend_, normed, step, cache.layer_views(index));
    const std::optional<Fp8ActivationLayout> mlp_layout =
        layer.moe ? layer.moe->input_fp8_layout() : layer.dense_mlp->input_fp8_layout();
    normed = add_rms_norm_activation(backend_, hidden, attended, layer.post_attention_norm, eps, mlp_layout);
    Tensor mlp_out = layer.moe ? layer.moe->forward(backend_, normed) : layer.dense_mlp->forward(backend_, normed);
    const bool last = i + 1 == layers_.size();
    normed = add_rms_norm_activation(backend_, hidden, mlp_out, last ? final_norm_ : layers_[i + 1].input_norm, eps,
                                     last ? std::nullopt : layers_[i + 1].attention->input_fp8_layout());
  }
  Tensor selected = backend_.gather_rows(normed.tensor, inputs.logit_rows);
  return lm_head_->forward(backend_, selected);
}

}  // namespace rackserve
