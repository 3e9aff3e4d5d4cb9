// QuantConfig against the real quantization configs of the shared models directory: which
// format each linear module gets, with the ignore / exclude lists' own entries as the
// expectations, and the tensors each format adds (shapes worked out by hand below).
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "support/shared_models.h"
#include "weights/quant_config.h"

namespace rackserve {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kModels = testing::kSharedModels;
using testing::error_of;

json read(const std::string& relative) { return testing::read_shared_json(relative); }

WeightFormat format_of(const QuantConfig& quant, const std::string& module) { return quant.linear(module).format; }

TEST(ModulePatterns, FollowTheSemanticsOfEachListKind) {
  ModulePatterns regex({"re:.*gate$"});  // Python re.match: anchored at the start only
  EXPECT_TRUE(regex.matches("model.layers.3.mlp.gate"));
  EXPECT_FALSE(regex.matches("model.layers.3.mlp.gate_proj"));
  ModulePatterns prefix_regex({"re:model\\.layers\\.1"});
  EXPECT_TRUE(prefix_regex.matches("model.layers.17.mlp"));  // re.match does not need a full match
  EXPECT_FALSE(prefix_regex.matches("language_model.model.layers.1.mlp"));

  ModulePatterns kimi({"re:.*mlp\\.(gate|up|gate_up|down)_proj.*"});  // Kimi K2.5's dense-MLP entry
  EXPECT_TRUE(kimi.matches("language_model.model.layers.0.mlp.gate_up_proj"));
  EXPECT_TRUE(kimi.matches("language_model.model.layers.0.mlp.down_proj"));
  EXPECT_FALSE(kimi.matches("language_model.model.layers.1.mlp.experts.0.down_proj"));
  // Quantifiers, classes and alternations (the literal prefilter must not reject these).
  EXPECT_TRUE(ModulePatterns({"re:model\\.layers\\.[0-9]{1,2}\\.mlp"}).matches("model.layers.42.mlp.gate_proj"));
  EXPECT_FALSE(ModulePatterns({"re:model\\.layers\\.[0-9]{1,2}\\.mlp"}).matches("model.layers.420.mlp"));
  EXPECT_TRUE(ModulePatterns({"re:x{2}y"}).matches("xxy"));
  EXPECT_TRUE(ModulePatterns({"re:ab?c"}).matches("ac"));
  EXPECT_TRUE(ModulePatterns({"re:.*lm_head|.*gate$"}).matches("model.layers.3.mlp.gate"));
  EXPECT_TRUE(ModulePatterns({"re:[^.]+\\.head"}).matches("shared.head"));
  EXPECT_TRUE(ModulePatterns({"re:(a|b)c\\d"}).matches("bc7"));

  ModulePatterns glob({"model.layers.1.*", "model.layers.0*"});  // fnmatch over the whole name
  EXPECT_TRUE(glob.matches("model.layers.1.mlp.gate_proj"));
  EXPECT_FALSE(glob.matches("model.layers.10.mlp.gate_proj"));
  EXPECT_TRUE(glob.matches("model.layers.0.self_attn.o_proj"));
  EXPECT_FALSE(glob.matches("language_model.model.layers.0.self_attn.o_proj"));

  ModulePatterns plain({"model.layers.3.mlp.gate", "lm_head"});
  EXPECT_TRUE(plain.matches("model.layers.3.mlp.gate"));
  EXPECT_TRUE(plain.matches("model.layers.3.mlp.gate.e_score_correction_bias"));  // child module
  EXPECT_FALSE(plain.matches("model.layers.3.mlp.gate_proj"));                    // not a child
  EXPECT_FALSE(plain.matches("model.layers.30.mlp.gate"));
  EXPECT_TRUE(plain.matches("language_model.lm_head"));  // trailing module path
  EXPECT_FALSE(plain.matches("model.lm_head_extra"));

  EXPECT_NE(error_of([] { ModulePatterns({"re:(unclosed"}); }).find("\"re:(unclosed\""), std::string::npos);
}

TEST(QuantConfig, UnquantizedCheckpointIsAllDense) {
  QuantConfig quant = QuantConfig::load(kModels / "glm-5");
  EXPECT_EQ(quant.method(), "none");
  EXPECT_EQ(format_of(quant, "model.layers.3.mlp.experts.0.down_proj"), WeightFormat::Dense);
}

TEST(QuantConfig, DeepSeekFp8BlockScalesEvery128By128Block) {
  QuantConfig quant = QuantConfig::load(kModels / "deepseek-v3");
  EXPECT_EQ(quant.method(), "fp8");
  const LinearScheme& expert = quant.linear("model.layers.3.mlp.experts.7.down_proj");
  EXPECT_EQ(expert.format, WeightFormat::Fp8Block);
  EXPECT_EQ(expert.block_out, 128);
  EXPECT_EQ(expert.block_in, 128);
  EXPECT_EQ(format_of(quant, "model.layers.0.self_attn.kv_b_proj"), WeightFormat::Fp8Block);
  EXPECT_EQ(format_of(quant, "model.layers.61.mlp.shared_experts.up_proj"), WeightFormat::Fp8Block);
  // DeepSeek lists nothing, yet ships these in bf16.
  EXPECT_EQ(format_of(quant, "lm_head"), WeightFormat::Dense);
  EXPECT_EQ(format_of(quant, "model.layers.61.eh_proj"), WeightFormat::Dense);
  EXPECT_EQ(format_of(quant, "model.layers.61.shared_head.head"), WeightFormat::Dense);

  // down_proj [7168, 2048]: e4m3 weight, f32 weight_scale_inv [7168/128, 2048/128] = [56, 16].
  auto tensors = quantized_linear_tensors(expert, 7168, 2048);
  ASSERT_EQ(tensors.size(), 2u);
  EXPECT_EQ(tensors[0].suffix, "weight");
  EXPECT_EQ(tensors[0].dtype, DType::F8_E4M3);
  EXPECT_EQ(tensors[0].shape, (Shape{7168, 2048}));
  EXPECT_EQ(tensors[0].parameters, 7168 * 2048);
  EXPECT_EQ(tensors[1].suffix, "weight_scale_inv");
  EXPECT_EQ(tensors[1].dtype, DType::F32);
  EXPECT_EQ(tensors[1].shape, (Shape{56, 16}));
  EXPECT_EQ(tensors[1].parameters, 0);
  // kv_a_proj_with_mqa [576, 7168]: 576 = 4.5 blocks of rows, so ceil gives [5, 56].
  EXPECT_EQ(quantized_linear_tensors(expert, 576, 7168)[1].shape, (Shape{5, 56}));

  // V3.2's ue8m0 scale_fmt keeps the same tensors.
  EXPECT_EQ(format_of(QuantConfig::load(kModels / "deepseek-v3.2"), "model.layers.5.self_attn.indexer.wq_b"),
            WeightFormat::Fp8Block);
  EXPECT_EQ(format_of(QuantConfig::load(kModels / "deepseek-v3.2"), "model.layers.5.self_attn.indexer.weights_proj"),
            WeightFormat::Dense);
}

TEST(QuantConfig, Glm5Fp8HonoursModulesToNotConvert) {
  QuantConfig quant = QuantConfig::load(kModels / "glm-5-fp8");
  EXPECT_EQ(quant.method(), "fp8");
  // Listed: lm_head, model.layers.78.eh_proj, model.layers.N.self_attn.indexers_proj
  // (the checkpoint's self_attn.indexer.weights_proj).
  EXPECT_EQ(format_of(quant, "lm_head"), WeightFormat::Dense);
  EXPECT_EQ(format_of(quant, "model.layers.78.eh_proj"), WeightFormat::Dense);
  EXPECT_EQ(format_of(quant, "model.layers.3.self_attn.indexers_proj"), WeightFormat::Dense);
  EXPECT_EQ(format_of(quant, "model.layers.3.self_attn.indexer.weights_proj"), WeightFormat::Dense);
  // Not listed: quantized.
  EXPECT_EQ(format_of(quant, "model.layers.3.self_attn.indexer.wq_b"), WeightFormat::Fp8Block);
  EXPECT_EQ(format_of(quant, "model.layers.3.self_attn.indexer.wk"), WeightFormat::Fp8Block);
  EXPECT_EQ(format_of(quant, "model.layers.0.self_attn.q_a_proj"), WeightFormat::Fp8Block);
  EXPECT_EQ(format_of(quant, "model.layers.0.mlp.down_proj"), WeightFormat::Fp8Block);
  EXPECT_EQ(format_of(quant, "model.layers.77.mlp.experts.255.gate_proj"), WeightFormat::Fp8Block);
  EXPECT_EQ(format_of(quant, "model.layers.78.mlp.shared_experts.down_proj"), WeightFormat::Fp8Block);
}

TEST(QuantConfig, KimiK25Int4ExpertsOnly) {
  QuantConfig quant = QuantConfig::load(kModels / "kimi-k2.5");  // in text_config
  EXPECT_EQ(quant.method(), "compressed-tensors");
  const std::string layer = "language_model.model.layers.1.";
  const LinearScheme& expert = quant.linear(layer + "mlp.experts.0.down_proj");
  EXPECT_EQ(expert.format, WeightFormat::Int4Group);
  EXPECT_EQ(expert.group_size, 32);
  EXPECT_EQ(expert.scale_dtype, DType::BF16);
  // ignore: "lm_head", "re:.*self_attn.*", "re:.*shared_experts.*", "re:.*mlp\.(gate|up|gate_up|down)_proj.*"
  EXPECT_EQ(format_of(quant, layer + "self_attn.q_b_proj"), WeightFormat::Dense);
  EXPECT_EQ(format_of(quant, layer + "mlp.shared_experts.down_proj"), WeightFormat::Dense);
  EXPECT_EQ(format_of(quant, "language_model.model.layers.0.mlp.gate_proj"), WeightFormat::Dense);
  EXPECT_EQ(format_of(quant, "language_model.lm_head"), WeightFormat::Dense);

  // down_proj [7168, 2048]: 8 int4 per int32 → weight_packed [7168, 256]; one bf16 scale per
  // 32 inputs → weight_scale [7168, 64]; weight_shape holds the two dimensions.
  auto tensors = quantized_linear_tensors(expert, 7168, 2048);
  ASSERT_EQ(tensors.size(), 3u);
  EXPECT_EQ(tensors[0].suffix, "weight_packed");
  EXPECT_EQ(tensors[0].dtype, DType::I32);
  EXPECT_EQ(tensors[0].shape, (Shape{7168, 256}));
  EXPECT_EQ(tensors[0].parameters, 7168 * 2048);
  EXPECT_EQ(tensors[1].suffix, "weight_scale");
  EXPECT_EQ(tensors[1].shape, (Shape{7168, 64}));
  EXPECT_EQ(tensors[2].suffix, "weight_shape");
  EXPECT_EQ(tensors[2].dtype, DType::I32);
  EXPECT_EQ(tensors[2].shape, (Shape{2}));
}

TEST(QuantConfig, Glm51Nvfp4ExcludesAttentionSharedExpertsDenseLayersAndMtp) {
  for (const char* file : {"glm-5.1-nvfp4/hf_quant_config.json", "glm-5.1-nvfp4/config.json"}) {
    SCOPED_TRACE(file);
    QuantConfig quant = QuantConfig::load(kModels / file);
    EXPECT_EQ(quant.method(), "modelopt");
    EXPECT_EQ(quant.kv_cache_hint(), "FP8");
    const LinearScheme& expert = quant.linear("model.layers.3.mlp.experts.0.gate_proj");
    EXPECT_EQ(expert.format, WeightFormat::Nvfp4);
    EXPECT_EQ(expert.group_size, 16);
    EXPECT_EQ(format_of(quant, "model.layers.10.mlp.experts.5.up_proj"), WeightFormat::Nvfp4);  // not "model.layers.1.*"
    EXPECT_EQ(format_of(quant, "model.layers.77.mlp.experts.255.down_proj"), WeightFormat::Nvfp4);
    EXPECT_EQ(format_of(quant, "model.layers.1.mlp.gate_proj"), WeightFormat::Dense);       // model.layers.1.*
    EXPECT_EQ(format_of(quant, "model.layers.0.mlp.down_proj"), WeightFormat::Dense);       // model.layers.0*
    EXPECT_EQ(format_of(quant, "model.layers.3.mlp.shared_experts.gate_proj"), WeightFormat::Dense);
    EXPECT_EQ(format_of(quant, "model.layers.3.self_attn.o_proj"), WeightFormat::Dense);
    EXPECT_EQ(format_of(quant, "model.layers.3.self_attn.indexer.wq_b"), WeightFormat::Dense);
    EXPECT_EQ(format_of(quant, "model.layers.78.mlp.experts.0.up_proj"), WeightFormat::Dense);  // model.layers.78*
    EXPECT_EQ(format_of(quant, "lm_head"), WeightFormat::Dense);
  }
  // The directory has both files; config.json's quantization_config is read first.
  EXPECT_NE(QuantConfig::load(kModels / "glm-5.1-nvfp4").source().find("config.json"), std::string::npos);

  // gate_proj [2048, 6144]: two e2m1 per byte → u8 [2048, 3072]; one e4m3 scale per 16
  // inputs → [2048, 384]; f32 weight_scale_2 and input_scale are scalars.
  QuantConfig quant = QuantConfig::load(kModels / "glm-5.1-nvfp4");
  auto tensors = quantized_linear_tensors(quant.linear("model.layers.3.mlp.experts.0.gate_proj"), 2048, 6144);
  ASSERT_EQ(tensors.size(), 4u);
  EXPECT_EQ(tensors[0].suffix, "weight");
  EXPECT_EQ(tensors[0].dtype, DType::U8);
  EXPECT_EQ(tensors[0].shape, (Shape{2048, 3072}));
  EXPECT_EQ(tensors[1].suffix, "weight_scale");
  EXPECT_EQ(tensors[1].dtype, DType::F8_E4M3);
  EXPECT_EQ(tensors[1].shape, (Shape{2048, 384}));
  EXPECT_EQ(tensors[2].suffix, "weight_scale_2");
  EXPECT_EQ(tensors[2].dtype, DType::F32);
  EXPECT_EQ(tensors[2].shape, Shape{});
  EXPECT_EQ(tensors[3].suffix, "input_scale");
  EXPECT_EQ(tensors[3].shape, Shape{});
}

TEST(QuantConfig, OtherNvfp4Checkpoints) {
  // GLM-5-NVFP4: config.json has no quantization_config, hf_quant_config.json excludes the
  // attention projections, indexer*, lm_head and model.layers.78*; dense MLPs and shared
  // experts are quantized.
  QuantConfig glm5 = QuantConfig::load(kModels / "glm-5-nvfp4");
  EXPECT_EQ(glm5.method(), "modelopt");
  EXPECT_EQ(format_of(glm5, "model.layers.3.self_attn.indexer.wq_b"), WeightFormat::Dense);
  EXPECT_EQ(format_of(glm5, "model.layers.3.self_attn.indexer.weights_proj"), WeightFormat::Dense);
  EXPECT_EQ(format_of(glm5, "model.layers.3.self_attn.o_proj"), WeightFormat::Dense);
  EXPECT_EQ(format_of(glm5, "model.layers.0.mlp.down_proj"), WeightFormat::Nvfp4);
  EXPECT_EQ(format_of(glm5, "model.layers.3.mlp.shared_experts.down_proj"), WeightFormat::Nvfp4);

  // DeepSeek-V3.1-NVFP4 keeps o_proj in NVFP4 (only q_a/q_b/kv_a/kv_b are excluded).
  QuantConfig v31 = QuantConfig::load(kModels / "deepseek-v3.1-nvfp4");
  EXPECT_EQ(format_of(v31, "model.layers.5.self_attn.o_proj"), WeightFormat::Nvfp4);
  EXPECT_EQ(format_of(v31, "model.layers.5.self_attn.kv_b_proj"), WeightFormat::Dense);
  EXPECT_EQ(format_of(v31, "model.layers.61.eh_proj"), WeightFormat::Dense);

  // Kimi-K2.6-NVFP4 names its modules under the language_model wrapper.
  QuantConfig k26 = QuantConfig::load(kModels / "kimi-k2.6-nvfp4");
  EXPECT_EQ(format_of(k26, "language_model.model.layers.0.mlp.gate_proj"), WeightFormat::Dense);
  EXPECT_EQ(format_of(k26, "language_model.model.layers.1.mlp.shared_experts.up_proj"), WeightFormat::Dense);
  EXPECT_EQ(format_of(k26, "language_model.model.layers.1.mlp.experts.3.down_proj"), WeightFormat::Nvfp4);
  EXPECT_EQ(format_of(k26, "language_model.lm_head"), WeightFormat::Dense);
}

TEST(QuantConfig, CompressedTensorsFp8PerChannel) {
  // GLM-4.x-FP8 style: fp8 weights with one scale per output row, dynamic per-token activations.
  json file = {{"quantization_config",
                {{"quant_method", "compressed-tensors"},
                 {"format", "float-quantized"},
                 {"ignore", {"lm_head", "re:.*mlp\\.gate$"}},
                 {"config_groups",
                  {{"group_0",
                    {{"targets", {"Linear"}},
                     {"weights", {{"num_bits", 8}, {"type", "float"}, {"strategy", "channel"}, {"symmetric", true}}},
                     {"input_activations",
                      {{"num_bits", 8}, {"type", "float"}, {"strategy", "token"}, {"dynamic", true}}}}}}}}}};
  QuantConfig quant = QuantConfig::from_config_json(file);
  const LinearScheme& scheme = quant.linear("model.layers.5.mlp.experts.3.down_proj");
  EXPECT_EQ(scheme.format, WeightFormat::Fp8Channel);
  EXPECT_FALSE(scheme.static_input_scale);
  EXPECT_EQ(format_of(quant, "model.layers.5.mlp.gate"), WeightFormat::Dense);
  auto tensors = quantized_linear_tensors(scheme, 5120, 1536);
  ASSERT_EQ(tensors.size(), 2u);
  EXPECT_EQ(tensors[0].dtype, DType::F8_E4M3);
  EXPECT_EQ(tensors[1].suffix, "weight_scale");
  EXPECT_EQ(tensors[1].shape, (Shape{5120, 1}));

  // Static activation scales add an input_scale.
  file["quantization_config"]["config_groups"]["group_0"]["input_activations"]["dynamic"] = false;
  QuantConfig static_quant = QuantConfig::from_config_json(file);
  const LinearScheme& static_scheme = static_quant.linear("model.layers.5.self_attn.o_proj");
  EXPECT_TRUE(static_scheme.static_input_scale);
  EXPECT_EQ(quantized_linear_tensors(static_scheme, 5120, 1536).back().suffix, "input_scale");
}

TEST(QuantConfig, BadConfigsNameTheField) {
  auto with = [](json config) { return json{{"quantization_config", std::move(config)}}; };
  struct Case {
    const char* what;
    json file;
    const char* expected;
  };
  json asymmetric = read("kimi-k2.5/config.json");
  asymmetric["text_config"]["quantization_config"]["config_groups"]["group_0"]["weights"]["symmetric"] = false;
  json int8 = read("kimi-k2.5/config.json");
  int8["text_config"]["quantization_config"]["config_groups"]["group_0"]["weights"]["num_bits"] = 8;
  const Case cases[] = {
      {"unknown method", with({{"quant_method", "gptq"}}), "quant_method \"gptq\" is not supported"},
      {"no method", with({{"fmt", "e4m3"}}), "\"quant_method\" is missing"},
      {"e5m2", with({{"quant_method", "fp8"}, {"fmt", "e5m2"}}), "fmt \"e5m2\""},
      {"static fp8", with({{"quant_method", "fp8"}, {"activation_scheme", "static"}}), "activation_scheme \"static\""},
      {"bad block", with({{"quant_method", "fp8"}, {"weight_block_size", "128"}}), "\"weight_block_size\" must be"},
      {"list of numbers", with({{"quant_method", "fp8"}, {"modules_to_not_convert", {1, 2}}}),
       "\"modules_to_not_convert\" must be a list of module names"},
      {"AWQ", with({{"quant_method", "modelopt"}, {"quant_algo", "W4A16_AWQ"}}), "quant_algo \"W4A16_AWQ\""},
      {"asymmetric int4", asymmetric, "asymmetric weights"},
      {"int8 pack", int8, "8-bit int weights in format \"pack-quantized\""},
  };
  for (const auto& test : cases) {
    std::string message = error_of([&] { QuantConfig::from_config_json(test.file, "x/config.json"); });
    EXPECT_NE(message.find(test.expected), std::string::npos) << test.what << ": " << message;
    EXPECT_EQ(message.rfind("x/config.json", 0), 0u) << test.what << ": " << message;
  }
  std::string message = error_of([] { QuantConfig::from_hf_quant_config(json{{"producer", {}}}, "q.json"); });
  EXPECT_NE(message.find("q.json: required object \"quantization\""), std::string::npos) << message;
}

}  // namespace
}  // namespace rackserve
