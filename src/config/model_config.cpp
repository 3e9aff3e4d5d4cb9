#include "config/model_config.h"

#include <cmath>
#include <fstream>

#include "core/error.h"

namespace rackserve {

namespace {

using nlohmann::json;

// Reads a required integer field, naming the file and field when it is absent or mistyped.
struct FieldReader {
  const json& object;
  const std::string& source;

  const json& field(const char* name) const {
    auto it = object.find(name);
    RS_CHECK(it != object.end() && !it->is_null(), "{}: required field \"{}\" is missing", source, name);
    return *it;
  }
  int64_t integer(const char* name) const {
    const json& value = field(name);
    RS_CHECK(value.is_number_integer() || (value.is_number_float() && std::floor(value.get<double>()) ==
                                                                          value.get<double>()),
             "{}: field \"{}\" must be an integer, got {}", source, name, value.dump());
    return value.get<int64_t>();
  }
  int64_t integer_or(const char* name, int64_t fallback) const {
    auto it = object.find(name);
    return it == object.end() || it->is_null() ? fallback : integer(name);
  }
  double number(const char* name) const {
    const json& value = field(name);
    RS_CHECK(value.is_number(), "{}: field \"{}\" must be a number, got {}", source, name, value.dump());
    return value.get<double>();
  }
  double number_or(const char* name, double fallback) const {
    auto it = object.find(name);
    return it == object.end() || it->is_null() ? fallback : number(name);
  }
  bool boolean_or(const char* name, bool fallback) const {
    auto it = object.find(name);
    if (it == object.end() || it->is_null()) return fallback;
    RS_CHECK(it->is_boolean(), "{}: field \"{}\" must be true or false, got {}", source, name, it->dump());
    return it->get<bool>();
  }
  std::string string_or(const char* name, const std::string& fallback) const {
    auto it = object.find(name);
    if (it == object.end() || it->is_null()) return fallback;
    RS_CHECK(it->is_string(), "{}: field \"{}\" must be a string, got {}", source, name, it->dump());
    return it->get<std::string>();
  }
};

constexpr const char* kSupportedTypes =
    "deepseek_v3, deepseek_v32, kimi_k2, kimi_k25, glm_moe_dsa (MLA); glm4_moe, minimax_m2 (GQA)";

bool is_mla_type(const std::string& type) {
  return type == "deepseek_v3" || type == "deepseek_v32" || type == "kimi_k2" || type == "glm_moe_dsa";
}
bool is_gqa_type(const std::string& type) { return type == "glm4_moe" || type == "minimax_m2"; }

// rope_parameters (transformers 5) or rope_scaling + rope_theta (earlier files).
RopeConfig parse_rope(const json& text, const FieldReader& reader) {
  RopeConfig rope;
  rope.interleaved = reader.boolean_or("rope_interleave", true);
  const char* key = nullptr;
  for (const char* candidate : {"rope_parameters", "rope_scaling"})
    if (auto it = text.find(candidate); it != text.end() && it->is_object()) {
      key = candidate;
      break;
    }
  rope.theta = reader.number_or("rope_theta", 10000.0);
  if (!key) return rope;

  const json& parameters = text.at(key);
  std::string scope = reader.source + " " + key;
  FieldReader params{parameters, scope};
  rope.theta = params.number_or("rope_theta", rope.theta);
  std::string type = params.string_or("rope_type", params.string_or("type", "default"));
  if (type == "default") return rope;
  RS_CHECK(type == "yarn", "{}: rope type \"{}\" is not supported (default, yarn)", scope, type);
  rope.type = RopeConfig::Type::Yarn;
  rope.factor = params.number("factor");
  RS_CHECK(rope.factor >= 1.0, "{}: YaRN factor must be >= 1, got {}", scope, rope.factor);
  rope.original_max_position_embeddings =
      params.integer_or("original_max_position_embeddings", reader.integer("max_position_embeddings"));
  rope.beta_fast = params.number_or("beta_fast", 32.0);
  rope.beta_slow = params.number_or("beta_slow", 1.0);
  rope.mscale = params.number_or("mscale", 0.0);
  rope.mscale_all_dim = params.number_or("mscale_all_dim", 0.0);
  if (parameters.contains("attention_factor") && !parameters.at("attention_factor").is_null())
    rope.attention_factor = params.number("attention_factor");
  rope.truncate = params.boolean_or("truncate", true);
  return rope;
}

std::vector<int64_t> parse_token_ids(const json& text, const char* name, const std::string& source) {
  std::vector<int64_t> ids;
  auto it = text.find(name);
  if (it == text.end() || it->is_null()) return ids;
  if (it->is_number_integer()) return {it->get<int64_t>()};
  RS_CHECK(it->is_array(), "{}: field \"{}\" must be an integer or a list of integers", source, name);
  for (const auto& id : *it) {
    RS_CHECK(id.is_number_integer(), "{}: field \"{}\" must be an integer or a list of integers", source, name);
    ids.push_back(id.get<int64_t>());
  }
  return ids;
}

// transformers-5 files may also list per-layer kinds. Only what the scalar fields already say
// is supported: an MLP kind list that disagrees with first_k_dense_replace / moe_layer_freq,
// or an indexer kind other than "full" (a layer that reuses another layer's top-k), is an error
// rather than a silently different model.
void check_layer_types(const json& text, const ModelConfig& config, const std::string& source) {
  if (auto it = text.find("mlp_layer_types"); it != text.end() && !it->is_null()) {
    RS_CHECK(it->is_array() && static_cast<int64_t>(it->size()) == config.num_layers,
             "{}: field \"mlp_layer_types\" must list one entry per layer ({})", source, config.num_layers);
    for (int64_t layer = 0; layer < config.num_layers; ++layer) {
      const json& kind = (*it)[layer];
      RS_CHECK(kind.is_string() && (kind == "dense" || kind == "sparse"),
               "{}: mlp_layer_types[{}] must be \"dense\" or \"sparse\", got {}", source, layer, kind.dump());
      RS_CHECK((kind == "sparse") == config.is_moe_layer(layer),
               "{}: mlp_layer_types[{}] is {} but first_k_dense_replace/moe_layer_freq make it {}", source, layer,
               kind.dump(), config.is_moe_layer(layer) ? "sparse" : "dense");
    }
  }
  // The same schedule in transformers' older spellings: a pattern of F(ull) / S(hared), or every
  // index_topk_freq-th layer full.
  if (auto it = text.find("index_topk_pattern"); it != text.end() && it->is_string())
    RS_CHECK(it->get<std::string>().find('S') == std::string::npos,
             "{}: index_topk_pattern has shared (S) layers; only full indexers are supported", source);
  if (auto it = text.find("index_topk_freq"); it != text.end() && !it->is_null())
    RS_CHECK(it->is_number_integer() && it->get<int64_t>() <= 1,
             "{}: index_topk_freq {} shares indexer choices between layers; only full indexers are supported", source,
             it->dump());
  if (auto it = text.find("indexer_types"); it != text.end() && !it->is_null()) {
    RS_CHECK(it->is_array(), "{}: field \"indexer_types\" must be a list", source);
    for (size_t layer = 0; layer < it->size(); ++layer)
      RS_CHECK((*it)[layer] == "full", "{}: indexer_types[{}] is {}; only \"full\" indexers are supported", source,
               layer, (*it)[layer].dump());
  }
}

// Multi-head latent attention (the DeepSeek-V3 family), and the DSA indexer where present.
void parse_mla(ModelConfig& config, const FieldReader& reader) {
  const std::string& source = reader.source;
  RS_CHECK(!reader.boolean_or("attention_bias", false), "{}: attention_bias=true is not supported for MLA", source);
  MlaConfig& mla = config.mla;
  config.attention_kind = AttentionKind::Mla;
  mla.num_heads = reader.integer("num_attention_heads");
  mla.q_lora_rank = reader.integer_or("q_lora_rank", 0);
  mla.kv_lora_rank = reader.integer("kv_lora_rank");
  mla.qk_nope_head_dim = reader.integer("qk_nope_head_dim");
  mla.qk_rope_head_dim = reader.integer("qk_rope_head_dim");
  mla.v_head_dim = reader.integer("v_head_dim");
  RS_CHECK(mla.qk_rope_head_dim % 2 == 0, "{}: qk_rope_head_dim must be even, got {}", source, mla.qk_rope_head_dim);
  // GLM-5 also states qk_head_dim; it must be the sum the attention is built from.
  if (int64_t stated = reader.integer_or("qk_head_dim", mla.qk_head_dim()); stated != mla.qk_head_dim())
    RS_FAIL("{}: qk_head_dim {} is not qk_nope_head_dim + qk_rope_head_dim = {} + {}", source, stated,
            mla.qk_nope_head_dim, mla.qk_rope_head_dim);
  if (config.raw.contains("index_n_heads") || config.raw.contains("index_topk")) {
    DsaIndexerConfig indexer;
    indexer.num_heads = reader.integer("index_n_heads");
    indexer.head_dim = reader.integer("index_head_dim");
    indexer.top_k = reader.integer("index_topk");
    // DeepSeek-V3.2 rotates its indexer's keys half-split (transformers' DeepseekV32Indexer,
    // DeepSeek's reference); GLM-5 states indexer_rope_interleave (true in its files).
    indexer.rope_interleaved = reader.boolean_or("indexer_rope_interleave", config.model_type != "deepseek_v32");
    config.indexer = indexer;
  }
}

// The heads of grouped-query attention, common to the GQA families.
void parse_gqa_heads(GqaConfig& gqa, const FieldReader& reader) {
  gqa.num_heads = reader.integer("num_attention_heads");
  gqa.num_kv_heads = reader.integer("num_key_value_heads");
  gqa.head_dim = reader.integer("head_dim");
  RS_CHECK(gqa.num_heads > 0 && gqa.num_kv_heads > 0 && gqa.num_heads % gqa.num_kv_heads == 0,
           "{}: num_key_value_heads {} must divide num_attention_heads {}", reader.source, gqa.num_kv_heads,
           gqa.num_heads);
  RS_CHECK(gqa.head_dim > 0 && gqa.head_dim % 2 == 0, "{}: head_dim must be positive and even, got {}", reader.source,
           gqa.head_dim);
}

// partial_rotary_factor as the file states it: inside rope_parameters (transformers 5) or at the
// top level (transformers 4); nullopt when absent.
std::optional<double> stated_partial_rotary_factor(const ModelConfig& config, const FieldReader& reader) {
  if (auto it = config.raw.find("rope_parameters"); it != config.raw.end() && it->is_object())
    if (it->contains("partial_rotary_factor"))
      return FieldReader{*it, reader.source + " rope_parameters"}.number("partial_rotary_factor");
  if (config.raw.contains("partial_rotary_factor")) return reader.number("partial_rotary_factor");
  return std::nullopt;
}

// transformers' default where a GQA family's file states no rotary fraction (Glm4MoeConfig,
// and MiniMaxM2Config's rotary_dim = head_dim / 2).
constexpr double kDefaultPartialRotaryFactor = 0.5;

void check_rotary_dim(const GqaConfig& gqa, const std::string& source) {
  RS_CHECK(gqa.rotary_dim > 0 && gqa.rotary_dim <= gqa.head_dim && gqa.rotary_dim % 2 == 0,
           "{}: the rotated width {} must be even and in (0, head_dim={}]", source, gqa.rotary_dim, gqa.head_dim);
}

// GLM-4.5 / 4.6 / 4.7 (glm4_moe): GQA with q/k/v biases (attention_bias), optional per-head
// q/k RMSNorm (use_qk_norm), RoPE in rotate_half form on the leading partial_rotary_factor of
// each head.
void parse_glm4_moe_attention(ModelConfig& config, const FieldReader& reader) {
  GqaConfig& gqa = config.gqa;
  config.attention_kind = AttentionKind::Gqa;
  config.rope.interleaved = false;
  parse_gqa_heads(gqa, reader);
  const double factor = stated_partial_rotary_factor(config, reader).value_or(kDefaultPartialRotaryFactor);
  gqa.rotary_dim = static_cast<int64_t>(static_cast<double>(gqa.head_dim) * factor);
  check_rotary_dim(gqa, reader.source);
  gqa.qk_norm = reader.boolean_or("use_qk_norm", false) ? GqaConfig::QkNorm::PerHead : GqaConfig::QkNorm::None;
  gqa.qkv_bias = reader.boolean_or("attention_bias", false);
}

// MoE fields named as DeepSeek-V3 names them (also glm4_moe's).
void parse_deepseek_style_moe(MoeConfig& moe, const FieldReader& reader) {
  const std::string& source = reader.source;
  moe.num_routed_experts = reader.integer_or("n_routed_experts", 0);
  moe.num_shared_experts = reader.integer_or("n_shared_experts", 0);
  moe.experts_per_token = reader.integer_or("num_experts_per_tok", 0);
  moe.expert_intermediate_size = reader.integer_or("moe_intermediate_size", 0);
  moe.num_groups = reader.integer_or("n_group", 1);
  moe.top_k_groups = reader.integer_or("topk_group", 1);
  moe.normalize_top_k = reader.boolean_or("norm_topk_prob", true);
  moe.routed_scaling_factor = reader.number_or("routed_scaling_factor", 1.0);
  moe.first_dense_layers = reader.integer_or("first_k_dense_replace", 0);
  moe.layer_frequency = reader.integer_or("moe_layer_freq", 1);
  std::string scoring = reader.string_or("scoring_func", "sigmoid");
  RS_CHECK(scoring == "sigmoid" || scoring == "softmax", "{}: scoring_func \"{}\" is not supported (sigmoid, softmax)",
           source, scoring);
  moe.scoring = scoring == "sigmoid" ? MoeConfig::Scoring::Sigmoid : MoeConfig::Scoring::Softmax;
  std::string topk_method = reader.string_or("topk_method", "noaux_tc");
  RS_CHECK(topk_method == "noaux_tc" || topk_method == "greedy" || topk_method == "group_limited_greedy",
           "{}: topk_method \"{}\" is not supported", source, topk_method);
  moe.has_score_correction_bias = topk_method == "noaux_tc";
}

// MiniMax-M2 / M2.5 / M2.7 (minimax_m2): every layer full GQA attention (attn_type_list all 1)
// with q/k RMSNorm over all heads of a token (qk_norm_type "per_layer"), RoPE in rotate_half
// form on the leading rotary_dim values of each head; every layer a routed MoE
// (num_local_experts, intermediate_size per expert) with sigmoid scores, the routing bias
// for selection only, normalised top-k weights and no shared expert.
void parse_minimax_m2(ModelConfig& config, const FieldReader& reader) {
  const std::string& source = reader.source;
  GqaConfig& gqa = config.gqa;
  config.attention_kind = AttentionKind::Gqa;
  config.rope.interleaved = false;
  parse_gqa_heads(gqa, reader);
  // rotary_dim (MiniMax's files); transformers 5 turns it into partial_rotary_factor (default
  // 0.5). A file with both must agree, or the two would rotate different widths.
  const std::optional<double> stated = stated_partial_rotary_factor(config, reader);
  const int64_t from_factor =
      static_cast<int64_t>(static_cast<double>(gqa.head_dim) * stated.value_or(kDefaultPartialRotaryFactor));
  gqa.rotary_dim = reader.integer_or("rotary_dim", from_factor);
  RS_CHECK(!stated || gqa.rotary_dim == from_factor,
           "{}: rotary_dim {} disagrees with partial_rotary_factor (head_dim {} x factor = {})", source, gqa.rotary_dim,
           gqa.head_dim, from_factor);
  check_rotary_dim(gqa, source);
  // What transformers' MiniMax-M2 always does, whatever these fields say: no biases, q/k norms
  // over all heads, the routing bias, no routed scaling. Other values would be another model.
  RS_CHECK(!reader.boolean_or("attention_bias", false), "{}: attention_bias=true is not supported for minimax_m2",
           source);
  RS_CHECK(reader.boolean_or("use_qk_norm", true), "{}: use_qk_norm=false is not supported for minimax_m2", source);
  std::string type = reader.string_or("qk_norm_type", "per_layer");
  RS_CHECK(type == "per_layer", "{}: qk_norm_type \"{}\" is not supported (per_layer)", source, type);
  gqa.qk_norm = GqaConfig::QkNorm::AllHeads;
  if (auto it = config.raw.find("attn_type_list"); it != config.raw.end() && !it->is_null()) {
    RS_CHECK(it->is_array(), "{}: field \"attn_type_list\" must be a list", source);
    for (size_t layer = 0; layer < it->size(); ++layer)
      RS_CHECK((*it)[layer] == 1, "{}: attn_type_list[{}] is {}; only full attention (1) is supported", source, layer,
               (*it)[layer].dump());
  }

  MoeConfig& moe = config.moe;
  moe.num_routed_experts = reader.integer("num_local_experts");
  moe.experts_per_token = reader.integer("num_experts_per_tok");
  moe.expert_intermediate_size = reader.integer("intermediate_size");
  RS_CHECK(reader.integer_or("shared_intermediate_size", 0) == 0, "{}: shared experts (shared_intermediate_size) "
           "are not supported for minimax_m2", source);
  std::string scoring = reader.string_or("scoring_func", "sigmoid");
  RS_CHECK(scoring == "sigmoid", "{}: scoring_func \"{}\" is not supported for minimax_m2 (sigmoid)", source, scoring);
  moe.scoring = MoeConfig::Scoring::Sigmoid;
  RS_CHECK(reader.boolean_or("use_routing_bias", true), "{}: use_routing_bias=false is not supported for minimax_m2",
           source);
  RS_CHECK(reader.number_or("routed_scaling_factor", 1.0) == 1.0,
           "{}: routed_scaling_factor is not supported for minimax_m2 (its router does not scale)", source);
  moe.has_score_correction_bias = true;
  moe.normalize_top_k = true;
}

void check_moe(const MoeConfig& moe, const std::string& source) {
  if (moe.num_routed_experts == 0) return;
  RS_CHECK(moe.experts_per_token > 0 && moe.experts_per_token <= moe.num_routed_experts,
           "{}: num_experts_per_tok {} must be in [1, n_routed_experts={}]", source, moe.experts_per_token,
           moe.num_routed_experts);
  RS_CHECK(moe.expert_intermediate_size > 0, "{}: the experts' intermediate size must be positive", source);
  RS_CHECK(moe.num_groups >= 1 && moe.num_routed_experts % moe.num_groups == 0,
           "{}: n_group {} must divide n_routed_experts {}", source, moe.num_groups, moe.num_routed_experts);
  RS_CHECK(moe.top_k_groups >= 1 && moe.top_k_groups <= moe.num_groups, "{}: topk_group {} must be in [1, n_group={}]",
           source, moe.top_k_groups, moe.num_groups);
  RS_CHECK(moe.num_groups == 1 || moe.num_routed_experts / moe.num_groups >= 2,
           "{}: group-limited routing needs at least 2 experts per group", source);
  RS_CHECK(moe.layer_frequency >= 1, "{}: moe_layer_freq must be >= 1", source);
}

}  // namespace

double yarn_mscale(double scale, double mscale) {
  return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

bool ModelConfig::is_moe_layer(int64_t layer) const {
  return moe.num_routed_experts > 0 && layer >= moe.first_dense_layers && layer % moe.layer_frequency == 0;
}

double ModelConfig::attention_softmax_scale() const {
  double scale = 1.0 / std::sqrt(static_cast<double>(attention_qk_dim()));
  if (is_mla() && rope.type == RopeConfig::Type::Yarn && rope.mscale_all_dim != 0.0) {  // DeepSeek's YaRN only
    double mscale = yarn_mscale(rope.factor, rope.mscale_all_dim);
    scale *= mscale * mscale;
  }
  return scale;
}

ModelConfig ModelConfig::from_json(const json& file, const std::string& source) {
  RS_CHECK(file.is_object(), "{}: expected a JSON object", source);
  ModelConfig config;
  FieldReader top{file, source};
  std::string file_type = top.string_or("model_type", "");
  if (auto it = file.find("architectures"); it != file.end() && it->is_array() && !it->empty() &&
                                             it->front().is_string())
    config.architecture = it->front().get<std::string>();

  const json* text = &file;
  std::string text_source = source;
  if (file_type == "kimi_k25") {
    auto it = file.find("text_config");
    RS_CHECK(it != file.end() && it->is_object(), "{}: kimi_k25 config has no \"text_config\" object", source);
    text = &*it;
    text_source = source + " text_config";
    config.checkpoint_prefix = "language_model.";
  }
  FieldReader reader{*text, text_source};
  config.model_type = reader.string_or("model_type", file_type == "kimi_k25" ? "deepseek_v3" : file_type);
  // Name the language model's own type: under a kimi_k25 wrapper that is text_config's.
  RS_CHECK(is_mla_type(config.model_type) || is_gqa_type(config.model_type),
           "{}: model_type \"{}\" (architecture {}) is not supported yet; supported model types: {}", text_source,
           config.model_type.empty() ? "<missing>" : config.model_type,
           config.architecture.empty() ? "<none>" : config.architecture, kSupportedTypes);
  config.raw = *text;

  config.vocab_size = reader.integer("vocab_size");
  config.hidden_size = reader.integer("hidden_size");
  config.num_layers = reader.integer("num_hidden_layers");
  config.max_position_embeddings = reader.integer("max_position_embeddings");
  config.rms_norm_eps = reader.number_or("rms_norm_eps", 1e-6);
  config.tie_word_embeddings = reader.boolean_or("tie_word_embeddings", top.boolean_or("tie_word_embeddings", false));
  config.eos_token_ids = parse_token_ids(*text, "eos_token_id", text_source);
  if (config.eos_token_ids.empty()) config.eos_token_ids = parse_token_ids(file, "eos_token_id", source);
  auto bos = parse_token_ids(*text, "bos_token_id", text_source);
  if (!bos.empty()) config.bos_token_id = bos.front();
  config.rope = parse_rope(*text, reader);

  if (config.model_type == "minimax_m2") {
    parse_minimax_m2(config, reader);
  } else {
    config.intermediate_size = reader.integer("intermediate_size");
    config.num_mtp_layers = reader.integer_or("num_nextn_predict_layers", 0);
    if (config.model_type == "glm4_moe")
      parse_glm4_moe_attention(config, reader);
    else
      parse_mla(config, reader);
    parse_deepseek_style_moe(config.moe, reader);
  }
  check_moe(config.moe, text_source);
  check_layer_types(*text, config, text_source);

  RS_CHECK(config.vocab_size > 0 && config.hidden_size > 0 && config.num_layers > 0 &&
               config.num_attention_heads() > 0,
           "{}: vocab_size, hidden_size, num_hidden_layers and num_attention_heads must be positive", text_source);
  return config;
}

ModelConfig ModelConfig::load(const std::filesystem::path& path) {
  std::filesystem::path file = std::filesystem::is_directory(path) ? path / "config.json" : path;
  std::ifstream stream(file);
  RS_CHECK(stream.good(), "cannot open {}", file.string());
  json parsed = json::parse(stream, nullptr, /*allow_exceptions=*/false);
  RS_CHECK(!parsed.is_discarded(), "{}: not valid JSON", file.string());
  return from_json(parsed, file.string());
}

}  // namespace rackserve
