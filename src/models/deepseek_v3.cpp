#include "models/deepseek_v3.h"

#include <fmt/format.h>

#include "core/error.h"
#include "models/layers/step_context.h"

namespace rackserve {

DeepseekV3Model::DeepseekV3Model(ModelConfig config, WeightSource& weights, Backend& backend)
    : config_(std::move(config)), backend_(backend) {
  const ModelConfig& c = config_;
  WeightLoader loader(weights);
  RS_CHECK(!c.indexer, "model_type {}: DeepSeek sparse attention (the indexer) is not implemented yet", c.model_type);

  RotaryFrequencies frequencies = rotary_frequencies(c.rope, c.mla.qk_rope_head_dim);
  Tensor host_inv_freq{frequencies.inv_freq.data(), DType::F32, {static_cast<int64_t>(frequencies.inv_freq.size())}, Device{}};
  rope_.inv_freq = backend.upload_weight(host_inv_freq, WeightRole::RopeFrequencies);
  rope_.dim = c.mla.qk_rope_head_dim;
  rope_.scale = frequencies.scale;
  rope_.interleaved = c.rope.interleaved;

  embed_tokens_ = loader.load("model.embed_tokens.weight", {c.vocab_size, c.hidden_size}, WeightRole::Embedding);
  final_norm_ = loader.load("model.norm.weight", {c.hidden_size}, WeightRole::Norm);
  lm_head_ = c.tie_word_embeddings && !loader.contains("lm_head.weight")
                 ? embed_tokens_
                 : loader.load("lm_head.weight", {c.vocab_size, c.hidden_size}, WeightRole::Linear);

  for (int64_t i = 0; i < c.num_layers; ++i) {
    std::string prefix = fmt::format("model.layers.{}", i);
    DecoderLayer layer;
    layer.input_norm = loader.load(prefix + ".input_layernorm.weight", {c.hidden_size}, WeightRole::Norm);
    layer.post_attention_norm =
        loader.load(prefix + ".post_attention_layernorm.weight", {c.hidden_size}, WeightRole::Norm);
    layer.attention = std::make_unique<MlaAttentionBlock>(c, loader, prefix + ".self_attn");
    if (c.is_moe_layer(i))
      layer.moe = std::make_unique<MoeBlock>(c, loader, prefix + ".mlp");
    else
      layer.dense_mlp = std::make_unique<DenseMlp>(loader, prefix + ".mlp", c.hidden_size, c.intermediate_size);
    layers_.push_back(std::move(layer));
  }
}

PagedKvCache DeepseekV3Model::allocate_kv_cache(int64_t pages, int64_t page_size) const {
  return PagedKvCache(backend_, config_.num_layers, pages, page_size, config_.mla.latent_width());
}

namespace {

// Flattens the batch into the backend's paged-attention metadata and the token ids.
struct FlatBatch {
  std::vector<int32_t> token_ids, positions, slots, query_start{0}, context_length, block_table, logit_rows;
  int64_t max_blocks = 0, max_context = 0;
};

FlatBatch flatten(const ForwardBatch& batch, int64_t page_size, int64_t cache_pages, int64_t max_positions,
                  int64_t vocab) {
  FlatBatch flat;
  for (const auto& sequence : batch.sequences) flat.max_blocks = std::max<int64_t>(flat.max_blocks, sequence.pages.size());
  for (const auto& sequence : batch.sequences) {
    RS_CHECK(!sequence.token_ids.empty(), "a sequence in the batch has no new tokens");
    int64_t end = sequence.start_position + static_cast<int64_t>(sequence.token_ids.size());
    RS_CHECK(sequence.start_position >= 0 && end <= max_positions,
             "positions [{}, {}) exceed max_position_embeddings {}", sequence.start_position, end, max_positions);
    RS_CHECK(static_cast<int64_t>(sequence.pages.size()) * page_size >= end,
             "{} pages of {} tokens cannot hold {} positions", sequence.pages.size(), page_size, end);
    for (int32_t page : sequence.pages)
      RS_CHECK(page >= 0 && page < cache_pages, "page {} outside the cache [0, {})", page, cache_pages);
    for (size_t i = 0; i < sequence.token_ids.size(); ++i) {
      int32_t position = sequence.start_position + static_cast<int32_t>(i);
      if (sequence.all_logits || i + 1 == sequence.token_ids.size())
        flat.logit_rows.push_back(static_cast<int32_t>(flat.token_ids.size()));
      RS_CHECK(sequence.token_ids[i] >= 0 && sequence.token_ids[i] < vocab, "token id {} is outside the vocabulary [0, {})",
               sequence.token_ids[i], vocab);
      flat.token_ids.push_back(sequence.token_ids[i]);
      flat.positions.push_back(position);
      flat.slots.push_back(static_cast<int32_t>(sequence.pages[position / page_size] * page_size + position % page_size));
    }
    flat.query_start.push_back(static_cast<int32_t>(flat.token_ids.size()));
    flat.context_length.push_back(static_cast<int32_t>(end));
    flat.max_context = std::max(flat.max_context, end);
    std::vector<int32_t> row(sequence.pages.begin(), sequence.pages.end());
    row.resize(flat.max_blocks, 0);
    flat.block_table.insert(flat.block_table.end(), row.begin(), row.end());
  }
  return flat;
}

}  // namespace

Tensor DeepseekV3Model::forward(const ForwardBatch& batch, PagedKvCache& cache) {
  RS_CHECK(!batch.sequences.empty(), "empty forward batch");
  RS_CHECK(cache.layers() == config_.num_layers && cache.entry_width() == config_.mla.latent_width(),
           "KV cache does not match the model");
  FlatBatch flat = flatten(batch, cache.page_size(), cache.pages(), config_.max_position_embeddings, config_.vocab_size);
  backend_.begin_step();

  StepContext step;
  step.rope = &rope_;
  AttentionBatch& attention = step.attention;
  attention.query_start = backend_.upload_step_ints(flat.query_start);
  attention.context_length = backend_.upload_step_ints(flat.context_length);
  attention.block_table = backend_.upload_step_ints(flat.block_table)
                              .reshaped({static_cast<int64_t>(batch.sequences.size()), flat.max_blocks});
  attention.slots = backend_.upload_step_ints(flat.slots);
  attention.positions = backend_.upload_step_ints(flat.positions);
  attention.num_sequences = static_cast<int64_t>(batch.sequences.size());
  attention.num_tokens = static_cast<int64_t>(flat.token_ids.size());
  attention.max_context_length = flat.max_context;
  attention.page_size = cache.page_size();

  const float eps = static_cast<float>(config_.rms_norm_eps);
  Tensor hidden = backend_.embedding(embed_tokens_, backend_.upload_step_ints(flat.token_ids));
  Tensor normed = backend_.rms_norm(hidden, layers_.front().input_norm, eps);
  for (size_t i = 0; i < layers_.size(); ++i) {
    const DecoderLayer& layer = layers_[i];
    Tensor attended = layer.attention->forward(backend_, normed, step, cache.layer(static_cast<int64_t>(i)));
    normed = backend_.add_rms_norm(hidden, attended, layer.post_attention_norm, eps);
    Tensor mlp_out = layer.moe ? layer.moe->forward(backend_, normed) : layer.dense_mlp->forward(backend_, normed);
    const Tensor& next_norm = i + 1 < layers_.size() ? layers_[i + 1].input_norm : final_norm_;
    normed = backend_.add_rms_norm(hidden, mlp_out, next_norm, eps);
  }
  Tensor selected = backend_.gather_rows(normed, backend_.upload_step_ints(flat.logit_rows));
  return backend_.linear_f32(selected, lm_head_);
}

}  // namespace rackserve
