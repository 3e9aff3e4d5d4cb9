#include "models/weight_manifest.h"

#include <algorithm>
#include <cctype>

#include "core/error.h"
#include "models/layers/moe_checkpoint_names.h"

namespace rackserve {

namespace {

std::string lower(std::string_view text) {
  std::string result(text);
  for (char& c : result) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return result;
}

// Float dtype of unquantized weights: torch_dtype (transformers 4) or dtype (transformers 5).
DType dense_dtype_of(const ModelConfig& config) {
  for (const char* key : {"torch_dtype", "dtype"})
    if (auto it = config.raw.find(key); it != config.raw.end() && it->is_string()) {
      std::string name = it->get<std::string>();
      if (name == "bfloat16") return DType::BF16;
      if (name == "float16") return DType::F16;
      if (name == "float32") return DType::F32;
      RS_FAIL("config.json: {} \"{}\" is not supported (bfloat16, float16, float32)", key, name);
    }
  return DType::BF16;
}

int axis_of(TpSplit split) {
  switch (split) {
    case TpSplit::Replicated: return -1;
    case TpSplit::Column:
    case TpSplit::Vocab: return 0;
    case TpSplit::Row: return 1;
    case TpSplit::ExpertIntermediate: break;  // the caller names the axis
  }
  RS_FAIL("an expert-intermediate split needs an explicit axis");
}

// Appends the tensors of one layer at a time; `layer` and `optional` apply to what follows.
class ManifestBuilder {
 public:
  ManifestBuilder(const ModelConfig& config, const QuantConfig& quant)
      : config_(config), quant_(quant), dense_(dense_dtype_of(config)), model_(config.checkpoint_prefix + "model.") {}

  std::vector<ManifestEntry> build() {
    const int64_t hidden = config_.hidden_size, vocab = config_.vocab_size;
    tensor(model_ + "embed_tokens.weight", dense_, {vocab, hidden}, TpSplit::Vocab);
    for (int64_t layer = 0; layer < config_.num_layers; ++layer) decoder_layer(layer);
    layer_ = -1;
    tensor(model_ + "norm.weight", dense_, {hidden}, TpSplit::Replicated);
    if (!config_.tie_word_embeddings) linear(config_.checkpoint_prefix + "lm_head", vocab, hidden, TpSplit::Vocab);
    optional_ = true;
    for (int64_t i = 0; i < config_.num_mtp_layers; ++i) mtp_layer(config_.num_layers + i);
    return std::move(entries_);
  }

 private:
  std::string layer_prefix(int64_t layer) const { return model_ + "layers." + std::to_string(layer) + "."; }

  // A tensor outside any linear layer: embeddings, norms, the router and its bias.
  void tensor(const std::string& name, DType dtype, Shape shape, TpSplit split, int axis = -2) {
    ManifestEntry entry;
    entry.name = name;
    entry.dtype = dtype;
    entry.parameters = shape_numel(shape);
    entry.shape = std::move(shape);
    entry.split = split;
    entry.split_axis = axis == -2 ? axis_of(split) : axis;
    entry.storage = lower(dtype_name(dtype));
    entry.layer = layer_;
    entry.optional = optional_;
    entries_.push_back(std::move(entry));
  }

  // A linear layer [out, in] named `module`, stored as the quant config says; its scale
  // tensors split along the same axis as the weight, per-tensor scalars are replicated.
  void linear(const std::string& module, int64_t out, int64_t in, TpSplit split, int axis = -2) {
    const LinearScheme& scheme = quant_.linear(module);
    const int weight_axis = axis == -2 ? axis_of(split) : axis;
    for (auto& part : quantized_linear_tensors(scheme, out, in, dense_)) {
      ManifestEntry entry;
      entry.name = module + "." + part.suffix;
      entry.dtype = part.dtype;
      entry.shape = std::move(part.shape);
      bool per_tensor = entry.shape.size() < 2;
      entry.split = per_tensor ? TpSplit::Replicated : split;
      entry.split_axis = per_tensor ? -1 : weight_axis;
      entry.format = scheme.format;
      entry.storage = scheme.format == WeightFormat::Dense ? lower(dtype_name(dense_))
                                                           : std::string(weight_format_name(scheme.format));
      entry.parameters = part.parameters;
      entry.layer = layer_;
      entry.optional = optional_;
      entries_.push_back(std::move(entry));
    }
  }

  void decoder_layer(int64_t layer) {
    layer_ = layer;
    const std::string prefix = layer_prefix(layer);
    tensor(prefix + "input_layernorm.weight", dense_, {config_.hidden_size}, TpSplit::Replicated);
    tensor(prefix + "post_attention_layernorm.weight", dense_, {config_.hidden_size}, TpSplit::Replicated);
    if (config_.is_mla())
      mla_attention(prefix + "self_attn.");
    else
      gqa_attention(prefix + "self_attn.");
    if (config_.is_moe_layer(layer))
      moe(prefix);
    else
      dense_mlp(prefix + "mlp.", config_.intermediate_size);
  }

  // Multi-head latent attention: the compressions (q_a, kv_a) are small and replicated; the
  // per-head expansions split by heads (column) and o_proj by heads on its input (row).
  void mla_attention(const std::string& prefix) {
    const MlaConfig& mla = config_.mla;
    const int64_t hidden = config_.hidden_size, heads = mla.num_heads;
    if (mla.q_lora_rank > 0) {
      linear(prefix + "q_a_proj", mla.q_lora_rank, hidden, TpSplit::Replicated);
      tensor(prefix + "q_a_layernorm.weight", dense_, {mla.q_lora_rank}, TpSplit::Replicated);
      linear(prefix + "q_b_proj", heads * mla.qk_head_dim(), mla.q_lora_rank, TpSplit::Column);
    } else {
      linear(prefix + "q_proj", heads * mla.qk_head_dim(), hidden, TpSplit::Column);
    }
    linear(prefix + "kv_a_proj_with_mqa", mla.latent_width(), hidden, TpSplit::Replicated);
    tensor(prefix + "kv_a_layernorm.weight", dense_, {mla.kv_lora_rank}, TpSplit::Replicated);
    linear(prefix + "kv_b_proj", heads * (mla.qk_nope_head_dim + mla.v_head_dim), mla.kv_lora_rank, TpSplit::Column);
    linear(prefix + "o_proj", hidden, heads * mla.v_head_dim, TpSplit::Row);
    if (config_.indexer) indexer(prefix + "indexer.");
  }

  // Grouped-query attention: q/k/v split by heads (column, with their biases and, for norms
  // over all heads of a token, their norm weights), o_proj by heads on its input (row).
  void gqa_attention(const std::string& prefix) {
    const GqaConfig& gqa = config_.gqa;
    const int64_t hidden = config_.hidden_size;
    const int64_t q_rows = gqa.num_heads * gqa.head_dim, kv_rows = gqa.num_kv_heads * gqa.head_dim;
    for (const auto& [name, rows] : {std::pair{"q_proj", q_rows}, {"k_proj", kv_rows}, {"v_proj", kv_rows}}) {
      linear(prefix + name, rows, hidden, TpSplit::Column);
      if (gqa.qkv_bias) tensor(prefix + name + ".bias", dense_, {rows}, TpSplit::Column);
    }
    linear(prefix + "o_proj", hidden, q_rows, TpSplit::Row);
    if (gqa.qk_norm == GqaConfig::QkNorm::PerHead) {
      tensor(prefix + "q_norm.weight", dense_, {gqa.head_dim}, TpSplit::Replicated);
      tensor(prefix + "k_norm.weight", dense_, {gqa.head_dim}, TpSplit::Replicated);
    } else if (gqa.qk_norm == GqaConfig::QkNorm::AllHeads) {
      tensor(prefix + "q_norm.weight", dense_, {q_rows}, TpSplit::Column);
      tensor(prefix + "k_norm.weight", dense_, {kv_rows}, TpSplit::Column);
    }
  }

  // DeepSeek sparse attention indexer (GLM-5, V3.2): its heads score key positions for the
  // top-k selection; small, and replicated on every rank so each rank selects locally.
  void indexer(const std::string& prefix) {
    const DsaIndexerConfig& index = *config_.indexer;
    RS_CHECK(config_.mla.q_lora_rank > 0, "the DSA indexer reads the compressed query: q_lora_rank must be > 0");
    linear(prefix + "wq_b", index.num_heads * index.head_dim, config_.mla.q_lora_rank, TpSplit::Replicated);
    linear(prefix + "wk", index.head_dim, config_.hidden_size, TpSplit::Replicated);
    // k_norm is a LayerNorm (weight and bias), not an RMSNorm.
    tensor(prefix + "k_norm.weight", dense_, {index.head_dim}, TpSplit::Replicated);
    tensor(prefix + "k_norm.bias", dense_, {index.head_dim}, TpSplit::Replicated);
    linear(prefix + "weights_proj", index.num_heads, config_.hidden_size, TpSplit::Replicated);
  }

  void dense_mlp(const std::string& prefix, int64_t intermediate) {
    linear(prefix + "gate_proj", intermediate, config_.hidden_size, TpSplit::Column);
    linear(prefix + "up_proj", intermediate, config_.hidden_size, TpSplit::Column);
    linear(prefix + "down_proj", config_.hidden_size, intermediate, TpSplit::Row);
  }

  // The routed MoE block of the decoder layer at `layer_prefix`, named as its family names it.
  void moe(const std::string& layer_prefix) {
    const MoeConfig& moe = config_.moe;
    const MoeCheckpointNames names = MoeCheckpointNames::of(config_);
    const std::string prefix = layer_prefix + names.block + ".";
    const int64_t hidden = config_.hidden_size, inner = moe.expert_intermediate_size;
    // The router is a bare weight (not a quantizable linear); the correction bias is f32.
    tensor(prefix + "gate.weight", dense_, {moe.num_routed_experts, hidden}, TpSplit::Replicated);
    if (moe.has_score_correction_bias)
      tensor(prefix + names.router_bias, DType::F32, {moe.num_routed_experts}, TpSplit::Replicated);
    for (int64_t expert = 0; expert < moe.num_routed_experts; ++expert) {
      const std::string name = prefix + "experts." + std::to_string(expert) + ".";
      linear(name + names.gate_proj, inner, hidden, TpSplit::ExpertIntermediate, 0);
      linear(name + names.up_proj, inner, hidden, TpSplit::ExpertIntermediate, 0);
      linear(name + names.down_proj, hidden, inner, TpSplit::ExpertIntermediate, 1);
    }
    if (moe.num_shared_experts > 0) dense_mlp(prefix + "shared_experts.", inner * moe.num_shared_experts);
  }

  // Multi-token prediction layer, stored after the main layers: its own input norms and
  // projection around a full decoder layer. DeepSeek and Kimi checkpoints also carry a copy
  // of the embedding and output head there; GLM-5's share the main model's (absent).
  void mtp_layer(int64_t layer) {
    layer_ = layer;
    const std::string prefix = layer_prefix(layer);
    const int64_t hidden = config_.hidden_size, vocab = config_.vocab_size;
    const bool own_head = config_.model_type != "glm_moe_dsa";
    if (own_head) tensor(prefix + "embed_tokens.weight", dense_, {vocab, hidden}, TpSplit::Vocab);
    tensor(prefix + "enorm.weight", dense_, {hidden}, TpSplit::Replicated);
    tensor(prefix + "hnorm.weight", dense_, {hidden}, TpSplit::Replicated);
    linear(prefix + "eh_proj", hidden, 2 * hidden, TpSplit::Replicated);
    tensor(prefix + "shared_head.norm.weight", dense_, {hidden}, TpSplit::Replicated);
    if (own_head) linear(prefix + "shared_head.head", vocab, hidden, TpSplit::Vocab);
    decoder_layer(layer);
  }

  const ModelConfig& config_;
  const QuantConfig& quant_;
  const DType dense_;
  const std::string model_;  // "model." or "language_model.model."
  int64_t layer_ = -1;
  bool optional_ = false;
  std::vector<ManifestEntry> entries_;
};

}  // namespace

std::string_view tp_split_name(TpSplit split) {
  switch (split) {
    case TpSplit::Replicated: return "replicated";
    case TpSplit::Column: return "column";
    case TpSplit::Row: return "row";
    case TpSplit::Vocab: return "vocab";
    case TpSplit::ExpertIntermediate: return "expert-intermediate";
  }
  return "?";
}

Shape ManifestEntry::shape_per_rank(int64_t tp) const {
  Shape result = shape;
  if (split_axis >= 0) result[split_axis] = (result[split_axis] + tp - 1) / tp;
  return result;
}

WeightManifest WeightManifest::build(const ModelConfig& config, const QuantConfig& quant) {
  WeightManifest manifest;
  manifest.entries_ = ManifestBuilder(config, quant).build();
  return manifest;
}

const ManifestEntry* WeightManifest::find(const std::string& name) const {
  auto it = std::find_if(entries_.begin(), entries_.end(), [&](const ManifestEntry& e) { return e.name == name; });
  return it == entries_.end() ? nullptr : &*it;
}

void WeightManifest::check_divisible(int64_t tp) const {
  RS_CHECK(tp >= 1, "tensor parallel size must be >= 1, got {}", tp);
  for (const auto& entry : entries_)
    if (entry.split_axis >= 0)
      RS_CHECK(entry.shape[entry.split_axis] % tp == 0,
               "TP={} does not divide {} ({} split of axis {} in {}; for quantized weights the extent counts scale "
               "blocks or packed groups)",
               tp, entry.name, tp_split_name(entry.split), entry.split_axis, shape_string(entry.shape));
}

}  // namespace rackserve
