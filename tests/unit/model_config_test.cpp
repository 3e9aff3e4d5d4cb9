// ModelConfig against the real config.json files in the shared models directory: every file
// parses or is rejected naming its model_type, the parsed fields equal the files' values,
// and malformed inputs fail naming the field at fault.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "config/model_config.h"
#include "core/error.h"
#include "support/shared_models.h"

namespace rackserve {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kModels = testing::kSharedModels;
using testing::error_of;

json read(const std::string& relative) { return testing::read_shared_json(relative); }

// Model types rackserve serves (the DeepSeek-V3 family with MLA, GLM-4.x and MiniMax-M2 with
// GQA); everything else must be refused.
const std::set<std::string> kSupported = {"deepseek_v3", "deepseek_v32", "kimi_k2",   "kimi_k25",
                                          "glm_moe_dsa", "glm4_moe",     "minimax_m2"};

TEST(ModelConfig, EveryConfigInTheSharedDirectoryParsesOrIsRejectedByModelType) {
  int parsed = 0, rejected = 0;
  for (const auto& entry : fs::recursive_directory_iterator(kModels)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_regular_file() || name.rfind("config", 0) != 0 || entry.path().extension() != ".json") continue;
    std::ifstream stream(entry.path());
    json file = json::parse(stream);
    const std::string type = file.value("model_type", "");
    if (kSupported.count(type)) {
      EXPECT_NO_THROW(ModelConfig::load(entry.path())) << entry.path();
      ++parsed;
    } else {
      std::string message = error_of([&] { ModelConfig::load(entry.path()); });
      EXPECT_NE(message.find("model_type \"" + type + "\""), std::string::npos) << message;
      EXPECT_NE(message.find("is not supported"), std::string::npos) << message;
      EXPECT_NE(message.find(entry.path().string()), std::string::npos) << message;
      ++rejected;
    }
  }
  // As of SOURCES.md: 16 MLA configs (deepseek-*, glm-5*, kimi-*), 4 GQA ones (glm-4.7-fp8,
  // minimax-m2.5, -m2.5-nvfp4, -m2.7) and glm4_moe_lite (GLM-4.7-Flash, refused); lower
  // bounds, so added files do not break it.
  EXPECT_GE(parsed, 20);
  EXPECT_GE(rejected, 1);
}

TEST(ModelConfig, DeepSeekV3MatchesItsConfigFile) {
  ModelConfig config = ModelConfig::load(kModels / "deepseek-v3");
  EXPECT_EQ(config.model_type, "deepseek_v3");
  EXPECT_EQ(config.architecture, "DeepseekV3ForCausalLM");
  EXPECT_EQ(config.checkpoint_prefix, "");
  EXPECT_EQ(config.num_layers, 61);
  EXPECT_EQ(config.num_mtp_layers, 1);
  EXPECT_EQ(config.hidden_size, 7168);
  EXPECT_EQ(config.intermediate_size, 18432);
  EXPECT_EQ(config.vocab_size, 129280);
  EXPECT_EQ(config.max_position_embeddings, 163840);
  EXPECT_EQ(config.mla.num_heads, 128);
  EXPECT_EQ(config.mla.q_lora_rank, 1536);
  EXPECT_EQ(config.mla.kv_lora_rank, 512);
  EXPECT_EQ(config.mla.qk_nope_head_dim, 128);
  EXPECT_EQ(config.mla.qk_rope_head_dim, 64);
  EXPECT_EQ(config.mla.v_head_dim, 128);
  EXPECT_EQ(config.mla.latent_width(), 576);
  EXPECT_EQ(config.moe.num_routed_experts, 256);
  EXPECT_EQ(config.moe.num_shared_experts, 1);
  EXPECT_EQ(config.moe.experts_per_token, 8);
  EXPECT_EQ(config.moe.expert_intermediate_size, 2048);
  EXPECT_EQ(config.moe.num_groups, 8);
  EXPECT_EQ(config.moe.top_k_groups, 4);
  EXPECT_EQ(config.moe.first_dense_layers, 3);
  EXPECT_DOUBLE_EQ(config.moe.routed_scaling_factor, 2.5);
  EXPECT_TRUE(config.moe.has_score_correction_bias);
  EXPECT_EQ(config.moe.scoring, MoeConfig::Scoring::Sigmoid);
  EXPECT_FALSE(config.is_moe_layer(2));
  EXPECT_TRUE(config.is_moe_layer(3));
  EXPECT_EQ(config.eos_token_ids, std::vector<int64_t>{1});
  EXPECT_EQ(config.bos_token_id, 0);
  EXPECT_FALSE(config.indexer.has_value());

  // rope_scaling form: {"type": "yarn", "factor": 40, "mscale": 1.0, "mscale_all_dim": 1.0, ...}
  EXPECT_EQ(config.rope.type, RopeConfig::Type::Yarn);
  EXPECT_DOUBLE_EQ(config.rope.theta, 10000.0);
  EXPECT_DOUBLE_EQ(config.rope.factor, 40.0);
  EXPECT_DOUBLE_EQ(config.rope.mscale, 1.0);
  EXPECT_DOUBLE_EQ(config.rope.mscale_all_dim, 1.0);
  EXPECT_EQ(config.rope.original_max_position_embeddings, 4096);
  EXPECT_DOUBLE_EQ(config.rope.beta_fast, 32.0);
  EXPECT_DOUBLE_EQ(config.rope.beta_slow, 1.0);
  EXPECT_TRUE(config.rope.interleaved);

  // Softmax scale = qk_head_dim^-0.5 · mscale², mscale = 0.1 · mscale_all_dim · ln(factor) + 1:
  //   192^-0.5           = 0.0721687836487032
  //   0.1 · ln 40 + 1    = 0.1 · 3.6888794541139363 + 1 = 1.3688879454113936
  //   1.36888794541139²  = 1.8738542070926265
  //   product            = 0.1352337788608801
  EXPECT_NEAR(config.attention_softmax_scale(), 0.1352337788608801, 1e-15);
}

TEST(ModelConfig, Glm5UsesRopeParametersAndTheIndexer) {
  ModelConfig config = ModelConfig::load(kModels / "glm-5" / "config.json");
  EXPECT_EQ(config.model_type, "glm_moe_dsa");
  EXPECT_EQ(config.num_layers, 78);
  EXPECT_EQ(config.num_mtp_layers, 1);
  EXPECT_EQ(config.hidden_size, 6144);
  EXPECT_EQ(config.intermediate_size, 12288);
  EXPECT_EQ(config.vocab_size, 154880);
  EXPECT_EQ(config.mla.num_heads, 64);
  EXPECT_EQ(config.mla.q_lora_rank, 2048);
  EXPECT_EQ(config.mla.kv_lora_rank, 512);
  EXPECT_EQ(config.mla.qk_nope_head_dim, 192);
  EXPECT_EQ(config.mla.qk_rope_head_dim, 64);
  EXPECT_EQ(config.mla.qk_head_dim(), 256);  // the file's own qk_head_dim
  EXPECT_EQ(config.mla.v_head_dim, 256);
  EXPECT_EQ(config.moe.num_groups, 1);
  EXPECT_EQ(config.moe.first_dense_layers, 3);
  EXPECT_DOUBLE_EQ(config.rms_norm_eps, 1e-5);
  EXPECT_EQ(config.eos_token_ids, (std::vector<int64_t>{154820, 154827, 154829}));
  EXPECT_FALSE(config.bos_token_id.has_value());

  // rope_parameters form: {"rope_theta": 1000000, "rope_type": "default"}, no top-level rope_theta.
  EXPECT_EQ(config.rope.type, RopeConfig::Type::Default);
  EXPECT_DOUBLE_EQ(config.rope.theta, 1e6);
  EXPECT_TRUE(config.rope.interleaved);
  EXPECT_DOUBLE_EQ(config.attention_softmax_scale(), 1.0 / 16.0);  // 256^-0.5, no YaRN

  ASSERT_TRUE(config.indexer.has_value());
  EXPECT_EQ(config.indexer->num_heads, 32);
  EXPECT_EQ(config.indexer->head_dim, 128);
  EXPECT_EQ(config.indexer->top_k, 2048);
  EXPECT_TRUE(config.indexer->rope_interleaved);
}

TEST(ModelConfig, Glm51PerLayerKindListsAgreeWithTheScalarFields) {
  // glm-5.1-nvfp4 (transformers 5) adds mlp_layer_types and indexer_types.
  ModelConfig config = ModelConfig::load(kModels / "glm-5.1-nvfp4");
  EXPECT_EQ(config.num_layers, 78);
  EXPECT_TRUE(config.indexer.has_value());

  json file = read("glm-5.1-nvfp4/config.json");
  file["mlp_layer_types"][3] = "dense";
  std::string message = error_of([&] { ModelConfig::from_json(file); });
  EXPECT_NE(message.find("mlp_layer_types[3]"), std::string::npos) << message;

  file = read("glm-5.1-nvfp4/config.json");
  file["indexer_types"][5] = "shared";
  message = error_of([&] { ModelConfig::from_json(file); });
  EXPECT_NE(message.find("indexer_types[5]"), std::string::npos) << message;

  // transformers' older spellings of the same schedule (GlmMoeDsaConfig.__post_init__).
  file = read("glm-5.1/config.json");
  file["index_topk_pattern"] = "FFSF";
  message = error_of([&] { ModelConfig::from_json(file); });
  EXPECT_NE(message.find("index_topk_pattern"), std::string::npos) << message;
  file = read("glm-5.1/config.json");
  file["index_topk_freq"] = 2;
  message = error_of([&] { ModelConfig::from_json(file); });
  EXPECT_NE(message.find("index_topk_freq"), std::string::npos) << message;
  file["index_topk_freq"] = 1;
  EXPECT_TRUE(ModelConfig::from_json(file).indexer.has_value());
}

TEST(ModelConfig, DeepseekV32IndexerRotatesHalfSplit) {
  // transformers' DeepseekV32Indexer applies the non-interleaved RoPE (GLM-5's interleaves);
  // the main MLA RoPE stays interleaved in both.
  ModelConfig config = ModelConfig::load(kModels / "deepseek-v3.2");
  ASSERT_TRUE(config.indexer.has_value());
  EXPECT_EQ(config.indexer->num_heads, 64);
  EXPECT_EQ(config.indexer->head_dim, 128);
  EXPECT_EQ(config.indexer->top_k, 2048);
  EXPECT_FALSE(config.indexer->rope_interleaved);
  EXPECT_TRUE(config.rope.interleaved);
}

TEST(ModelConfig, KimiK25ReadsItsTextConfig) {
  ModelConfig config = ModelConfig::load(kModels / "kimi-k2.5");
  EXPECT_EQ(config.model_type, "kimi_k2");  // text_config's type, not the wrapper's kimi_k25
  EXPECT_EQ(config.architecture, "KimiK25ForConditionalGeneration");
  EXPECT_EQ(config.checkpoint_prefix, "language_model.");
  EXPECT_EQ(config.num_layers, 61);
  EXPECT_EQ(config.num_mtp_layers, 0);
  EXPECT_EQ(config.vocab_size, 163840);
  EXPECT_EQ(config.max_position_embeddings, 262144);
  EXPECT_EQ(config.mla.num_heads, 64);
  EXPECT_EQ(config.moe.num_routed_experts, 384);
  EXPECT_EQ(config.moe.first_dense_layers, 1);
  EXPECT_DOUBLE_EQ(config.moe.routed_scaling_factor, 2.827);
  EXPECT_EQ(config.rope.type, RopeConfig::Type::Yarn);
  EXPECT_DOUBLE_EQ(config.rope.factor, 64.0);
  EXPECT_DOUBLE_EQ(config.rope.theta, 50000.0);
  EXPECT_EQ(config.eos_token_ids, std::vector<int64_t>{163585});
  EXPECT_EQ(config.raw.at("quantization_config").at("format"), "pack-quantized");
}

TEST(ModelConfig, BothRopeFormsGiveTheSameYarn) {
  json legacy = read("deepseek-v3/config.json");
  json modern = legacy;
  modern.erase("rope_scaling");
  modern.erase("rope_theta");
  modern["rope_parameters"] = {{"rope_type", "yarn"},          {"rope_theta", 10000},
                               {"factor", 40},                 {"original_max_position_embeddings", 4096},
                               {"beta_fast", 32},              {"beta_slow", 1},
                               {"mscale", 1.0},                {"mscale_all_dim", 1.0}};
  RopeConfig a = ModelConfig::from_json(legacy).rope, b = ModelConfig::from_json(modern).rope;
  EXPECT_EQ(a.type, b.type);
  EXPECT_EQ(a.theta, b.theta);
  EXPECT_EQ(a.factor, b.factor);
  EXPECT_EQ(a.original_max_position_embeddings, b.original_max_position_embeddings);
  EXPECT_EQ(a.beta_fast, b.beta_fast);
  EXPECT_EQ(a.beta_slow, b.beta_slow);
  EXPECT_EQ(a.mscale_all_dim, b.mscale_all_dim);

  // rope_scaling may spell the type "rope_type" too; rope_theta then stays top-level.
  json spelled = legacy;
  spelled["rope_scaling"].erase("type");
  spelled["rope_scaling"]["rope_type"] = "yarn";
  EXPECT_EQ(ModelConfig::from_json(spelled).rope.type, RopeConfig::Type::Yarn);
  EXPECT_EQ(ModelConfig::from_json(spelled).rope.theta, 10000.0);

  // No rope object at all (kimi-k2-thinking's abridged copy): default rope, top-level theta.
  ModelConfig abridged = ModelConfig::load(kModels / "kimi-k2-thinking" / "config.abridged.json");
  EXPECT_EQ(abridged.rope.type, RopeConfig::Type::Default);
}

// A malformed variant of a config file and a substring its error must contain.
struct BadInput {
  const char* what;
  std::function<void(json&)> edit;
  const char* expected;
};

// Every edit of `base` fails to parse with its expected text, the message starting with the
// file's name.
void expect_each_rejected(const json& base, const std::vector<BadInput>& cases) {
  for (const auto& test : cases) {
    json file = base;
    test.edit(file);
    std::string message = error_of([&] { ModelConfig::from_json(file, "some/config.json"); });
    EXPECT_NE(message.find(test.expected), std::string::npos) << test.what << ": " << message;
    EXPECT_EQ(message.rfind("some/config.json", 0), 0u) << test.what << ": " << message;
  }
}

TEST(ModelConfig, BadInputsNameTheField) {
  expect_each_rejected(read("deepseek-v3/config.json"), {
      {"missing kv_lora_rank", [](json& f) { f.erase("kv_lora_rank"); }, "\"kv_lora_rank\" is missing"},
      {"layers as a string", [](json& f) { f["num_hidden_layers"] = "61"; }, "\"num_hidden_layers\" must be an integer"},
      {"fractional hidden size", [](json& f) { f["hidden_size"] = 7168.5; }, "\"hidden_size\" must be an integer"},
      {"eps as a string", [](json& f) { f["rms_norm_eps"] = "1e-6"; }, "\"rms_norm_eps\" must be a number"},
      {"tie as a number", [](json& f) { f["tie_word_embeddings"] = 0; }, "\"tie_word_embeddings\" must be true or false"},
      {"YaRN without factor", [](json& f) { f["rope_scaling"].erase("factor"); }, "rope_scaling: required field \"factor\""},
      {"YaRN factor as a string", [](json& f) { f["rope_scaling"]["factor"] = "40"; }, "\"factor\" must be a number"},
      {"linear rope", [](json& f) { f["rope_scaling"]["type"] = "linear"; }, "rope type \"linear\" is not supported"},
      {"odd rope dim", [](json& f) { f["qk_rope_head_dim"] = 63; }, "qk_rope_head_dim must be even"},
      {"qk_head_dim disagrees", [](json& f) { f["qk_head_dim"] = 128; }, "qk_head_dim 128 is not"},
      {"too many experts per token", [](json& f) { f["num_experts_per_tok"] = 300; }, "num_experts_per_tok 300"},
      {"group does not divide", [](json& f) { f["n_group"] = 7; }, "n_group 7 must divide n_routed_experts 256"},
      {"softmax-free scoring", [](json& f) { f["scoring_func"] = "relu"; }, "scoring_func \"relu\""},
      {"eos as a string", [](json& f) { f["eos_token_id"] = "1"; }, "\"eos_token_id\" must be an integer"},
      {"other family", [](json& f) { f["model_type"] = "qwen3_moe"; }, "model_type \"qwen3_moe\""},
      {"no model_type", [](json& f) { f.erase("model_type"); }, "model_type \"<missing>\""},
  });
}

TEST(ModelConfig, KimiWrapperErrorsNameTheTextConfig) {
  json file = read("kimi-k2.5/config.json");
  file["text_config"]["model_type"] = "qwen3_moe";
  std::string message = error_of([&] { ModelConfig::from_json(file, "k25.json"); });
  EXPECT_NE(message.find("k25.json text_config"), std::string::npos) << message;
  EXPECT_NE(message.find("model_type \"qwen3_moe\""), std::string::npos) << message;

  file.erase("text_config");
  message = error_of([&] { ModelConfig::from_json(file, "k25.json"); });
  EXPECT_NE(message.find("no \"text_config\""), std::string::npos) << message;
}

TEST(ModelConfig, MiniMaxM27MatchesItsConfigFile) {
  ModelConfig config = ModelConfig::load(kModels / "minimax-m2.7");
  EXPECT_EQ(config.model_type, "minimax_m2");
  EXPECT_EQ(config.attention_kind, AttentionKind::Gqa);
  EXPECT_EQ(config.hidden_size, 3072);
  EXPECT_EQ(config.num_layers, 62);
  EXPECT_EQ(config.vocab_size, 200064);
  EXPECT_EQ(config.gqa.num_heads, 48);
  EXPECT_EQ(config.gqa.num_kv_heads, 8);
  EXPECT_EQ(config.gqa.head_dim, 128);
  EXPECT_EQ(config.gqa.rotary_dim, 64);
  EXPECT_EQ(config.gqa.qk_norm, GqaConfig::QkNorm::AllHeads);
  EXPECT_FALSE(config.gqa.qkv_bias);
  EXPECT_EQ(config.gqa.cache_width(), 2 * 8 * 128);
  EXPECT_FALSE(config.rope.interleaved);
  EXPECT_DOUBLE_EQ(config.rope.theta, 5e6);
  EXPECT_DOUBLE_EQ(config.attention_softmax_scale(), 1.0 / std::sqrt(128.0));
  // Every layer a routed MoE of 256 experts (intermediate_size is the expert's), no shared one.
  EXPECT_EQ(config.moe.num_routed_experts, 256);
  EXPECT_EQ(config.moe.experts_per_token, 8);
  EXPECT_EQ(config.moe.expert_intermediate_size, 1536);
  EXPECT_EQ(config.moe.num_shared_experts, 0);
  EXPECT_EQ(config.moe.scoring, MoeConfig::Scoring::Sigmoid);
  EXPECT_TRUE(config.moe.has_score_correction_bias);
  EXPECT_TRUE(config.moe.normalize_top_k);
  EXPECT_DOUBLE_EQ(config.moe.routed_scaling_factor, 1.0);
  EXPECT_TRUE(config.is_moe_layer(0));
  EXPECT_TRUE(config.is_moe_layer(61));
  EXPECT_EQ(config.num_mtp_layers, 0);  // MiniMax's MTP modules are not layers of the checkpoint's stack
}

TEST(ModelConfig, Glm47FollowsTransformersDefaultsWhereTheAbridgedFileIsSilent) {
  ModelConfig config = ModelConfig::load(kModels / "glm-4.7-fp8" / "config.abridged.json");
  EXPECT_EQ(config.model_type, "glm4_moe");
  EXPECT_EQ(config.attention_kind, AttentionKind::Gqa);
  EXPECT_EQ(config.gqa.num_heads, 96);
  EXPECT_EQ(config.gqa.num_kv_heads, 8);
  EXPECT_EQ(config.gqa.head_dim, 128);  // not hidden / heads (5120 / 96)
  EXPECT_EQ(config.gqa.rotary_dim, 64);  // Glm4MoeConfig's partial_rotary_factor 0.5
  EXPECT_EQ(config.gqa.qk_norm, GqaConfig::QkNorm::None);  // use_qk_norm absent: false
  EXPECT_EQ(config.intermediate_size, 12288);
  EXPECT_EQ(config.moe.num_routed_experts, 160);
  EXPECT_EQ(config.moe.num_shared_experts, 1);
  EXPECT_EQ(config.moe.expert_intermediate_size, 1536);
  EXPECT_DOUBLE_EQ(config.moe.routed_scaling_factor, 2.5);
  EXPECT_FALSE(config.is_moe_layer(2));
  EXPECT_TRUE(config.is_moe_layer(3));

  // The fields the full files carry, and the transformers-5 spelling of the rotary fraction.
  json file = read("glm-4.7-fp8/config.abridged.json");
  file["attention_bias"] = true;
  file["use_qk_norm"] = true;
  file["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 1e6}, {"partial_rotary_factor", 0.25}};
  config = ModelConfig::from_json(file);
  EXPECT_TRUE(config.gqa.qkv_bias);
  EXPECT_EQ(config.gqa.qk_norm, GqaConfig::QkNorm::PerHead);
  EXPECT_EQ(config.gqa.rotary_dim, 32);
  EXPECT_DOUBLE_EQ(config.rope.theta, 1e6);
}

TEST(ModelConfig, GqaBadInputsNameTheField) {
  expect_each_rejected(read("glm-4.7-fp8/config.abridged.json"), {
      {"no head_dim", [](json& f) { f.erase("head_dim"); }, "\"head_dim\" is missing"},
      {"KV heads do not divide", [](json& f) { f["num_key_value_heads"] = 7; },
       "num_key_value_heads 7 must divide num_attention_heads 96"},
      {"rotary past the head", [](json& f) { f["partial_rotary_factor"] = 1.5; },
       "rotated width 192 must be even and in (0, head_dim=128]"},
  });
  expect_each_rejected(read("minimax-m2.7/config.json"), {
      {"per-head norm", [](json& f) { f["qk_norm_type"] = "per_head"; }, "qk_norm_type \"per_head\" is not supported"},
      {"linear attention layer", [](json& f) { f["attn_type_list"][5] = 0; },
       "attn_type_list[5] is 0; only full attention (1) is supported"},
      {"shared expert", [](json& f) { f["shared_intermediate_size"] = 512; }, "shared experts"},
      {"attention bias", [](json& f) { f["attention_bias"] = true; }, "attention_bias=true"},
      {"no experts", [](json& f) { f.erase("num_local_experts"); }, "\"num_local_experts\" is missing"},
      {"no routing bias", [](json& f) { f["use_routing_bias"] = false; }, "use_routing_bias=false"},
      {"no q/k norm", [](json& f) { f["use_qk_norm"] = false; }, "use_qk_norm=false"},
      {"routed scaling", [](json& f) { f["routed_scaling_factor"] = 2.0; }, "routed_scaling_factor"},
      {"rotary disagrees", [](json& f) { f["partial_rotary_factor"] = 1.0; },
       "rotary_dim 64 disagrees with partial_rotary_factor (head_dim 128 x factor = 128)"},
  });
}

TEST(ModelConfig, LoadNamesAMissingFile) {
  std::string message = error_of([] { ModelConfig::load(kModels / "deepseek-v3" / "no-such.json"); });
  EXPECT_NE(message.find("cannot open"), std::string::npos) << message;
}

}  // namespace
}  // namespace rackserve
