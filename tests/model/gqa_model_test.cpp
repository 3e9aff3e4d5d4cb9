// The grouped-query-attention families (GLM-4.x glm4_moe, MiniMax-M2 minimax_m2) on the CPU,
// on tiny checkpoints this test writes from the weight manifest with seeded random values:
// every tensor the manifest names loads by its checkpoint name, decoding through the paged
// cache equals the full forward, batched sequences equal separate ones, and tensor-parallel
// ranks (heads, biases and all-heads q/k norms split, KV heads cached per rank) give the
// single rank's logits and greedy tokens.
// The transformers reference for these families comes from tests/reference/make_gqa_fixtures.py
// (fixtures under tests/data/models, picked up by reference_logits_test and the others).
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <unistd.h>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "core/error.h"
#include "engine/sequence_runner.h"
#include "models/model.h"
#include "models/weight_manifest.h"
#include "support/cpu_tensor_parallel.h"
#include "support/safetensors_writer.h"
#include "support/similarity.h"
#include "weights/quant_config.h"

namespace rackserve {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json common_fields() {
  return {{"vocab_size", 384},        {"hidden_size", 64},   {"num_attention_heads", 8}, {"num_key_value_heads", 4},
          {"head_dim", 32},           {"max_position_embeddings", 256}, {"tie_word_embeddings", false},
          {"bos_token_id", 0},        {"eos_token_id", 1}};
}

// GLM-4.5/4.6/4.7 as transformers 5 saves it: q/k/v biases, per-head q/k norm, half of each
// head rotated, one dense first layer, a shared expert, routed scaling.
json glm4_moe_config() {
  json c = common_fields();
  c.update({{"model_type", "glm4_moe"},
            {"architectures", {"Glm4MoeForCausalLM"}},
            {"num_hidden_layers", 3},
            {"intermediate_size", 96},
            {"moe_intermediate_size", 32},
            {"n_routed_experts", 8},
            {"num_experts_per_tok", 2},
            {"n_shared_experts", 1},
            {"routed_scaling_factor", 2.5},
            {"first_k_dense_replace", 1},
            {"attention_bias", true},
            {"use_qk_norm", true},
            {"rms_norm_eps", 1e-5},
            {"rope_parameters", {{"rope_type", "default"}, {"rope_theta", 1e6}, {"partial_rotary_factor", 0.5}}}});
  return c;
}

// MiniMax-M2 as its checkpoints ship it: q/k norm over all heads, rotary_dim, every layer MoE.
json minimax_m2_config() {
  json c = common_fields();
  c.update({{"model_type", "minimax_m2"},
            {"architectures", {"MiniMaxM2ForCausalLM"}},
            {"num_hidden_layers", 2},
            {"intermediate_size", 32},
            {"num_local_experts", 8},
            {"num_experts_per_tok", 2},
            {"rotary_dim", 16},
            {"rope_theta", 5e6},
            {"use_qk_norm", true},
            {"qk_norm_type", "per_layer"},
            {"scoring_func", "sigmoid"},
            {"use_routing_bias", true},
            {"rms_norm_eps", 1e-6}});
  return c;
}

// config.json and a model.safetensors (F32) holding every required tensor of the manifest:
// norms 1 ± 0.1, biases ± 0.1, correction biases ± 0.05, embeddings ± 1, matrices with
// variance 1 / fan_in, so activations and logits stay O(1).
fs::path write_checkpoint(const std::string& name, const json& config_json) {
  const fs::path directory = fs::temp_directory_path() / ("rackserve-gqa-" + name + "-" + std::to_string(::getpid()));
  fs::create_directories(directory);
  std::ofstream(directory / "config.json") << config_json.dump(1);
  const ModelConfig config = ModelConfig::from_json(config_json);
  const WeightManifest manifest = WeightManifest::build(config, QuantConfig{});
  std::mt19937 generator(1234);
  std::vector<testing::OutTensor> tensors;
  for (const ManifestEntry& entry : manifest.entries()) {
    if (entry.optional) continue;
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    std::vector<float> values(static_cast<size_t>(shape_numel(entry.shape)));
    const bool norm = entry.name.ends_with("norm.weight");
    const float scale = norm                                                 ? 0.1f
                        : entry.name.ends_with("e_score_correction_bias")    ? 0.05f
                        : entry.name.ends_with(".bias")                      ? 0.1f
                        : entry.name.find("embed_tokens") != std::string::npos ? 1.0f
                                                                              : std::sqrt(3.0f / entry.shape.back());
    for (float& value : values) value = (norm ? 1.0f : 0.0f) + scale * uniform(generator);
    tensors.push_back({entry.name, "F32", entry.shape, testing::bytes_of(values)});
  }
  testing::write_safetensors(directory / "model.safetensors", tensors);
  return directory;
}

std::vector<int32_t> prompt_of(int64_t length, uint32_t seed, int64_t vocab) {
  std::mt19937 generator(seed);
  std::uniform_int_distribution<int32_t> token(2, static_cast<int32_t>(vocab) - 1);
  std::vector<int32_t> tokens(static_cast<size_t>(length));
  for (int32_t& t : tokens) t = token(generator);
  return tokens;
}

float max_abs_difference(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b) {
  float worst = 0.0f;
  for (size_t r = 0; r < a.size(); ++r)
    for (size_t v = 0; v < a[r].size(); ++v) {
      const float difference = std::fabs(a[r][v] - b[r][v]);
      worst = std::isnan(difference) ? INFINITY : std::max(worst, difference);
    }
  return worst;
}

struct Family {
  std::string name;
  json config;
};

class GqaModel : public ::testing::TestWithParam<Family> {
 protected:
  static void TearDownTestSuite() {
    for (const fs::path& directory : written_) fs::remove_all(directory);
    written_.clear();
  }
  fs::path checkpoint() const {
    const fs::path directory = write_checkpoint(GetParam().name, GetParam().config);
    written_.push_back(directory);
    return directory;
  }
  static inline std::vector<fs::path> written_;
};

TEST_P(GqaModel, DecodeThroughCacheEqualsFullForward) {
  const fs::path directory = checkpoint();
  auto backend = make_cpu_backend(2);
  auto model = load_model(directory, *backend);
  const std::vector<int32_t> prompt = prompt_of(70, 7, model->config().vocab_size);  // two 64-token pages
  SequenceRunner full(*model, 70);
  const auto expected = full.append(prompt, true);
  double spread = 0.0;
  for (float value : expected.back()) spread += value * value;
  EXPECT_GT(std::sqrt(spread / static_cast<double>(expected.back().size())), 0.1) << "logits collapsed";
  for (int64_t chunk : {1, 7, 64}) {
    SequenceRunner stepped(*model, 70);
    EXPECT_LE(max_abs_difference(stepped.append(prompt, true, chunk), expected), 1e-4f) << "chunk " << chunk;
  }
}

TEST_P(GqaModel, BatchedSequencesEqualSeparateOnes) {
  const fs::path directory = checkpoint();
  auto backend = make_cpu_backend(2);
  auto model = load_model(directory, *backend);
  const int64_t page_size = 16, vocab = model->config().vocab_size;
  PagedKvCache cache = model->allocate_kv_cache(32, page_size);
  ForwardBatch batch;
  std::vector<std::vector<int32_t>> prompts;
  for (int s = 0; s < 3; ++s) {
    prompts.push_back(prompt_of(std::vector<int64_t>{45, 17, 3}[s], 100 + s, vocab));
    std::vector<int32_t> pages;
    for (int64_t b = 0; b < (static_cast<int64_t>(prompts[s].size()) + page_size - 1) / page_size; ++b)
      pages.push_back(static_cast<int32_t>(b * 3 + s));  // interleaved pages
    batch.sequences.push_back({prompts[s], 0, pages, false});
  }
  const std::vector<float> rows = backend->download_f32(model->forward(batch, cache));
  for (int s = 0; s < 3; ++s) {
    SequenceRunner alone(*model, static_cast<int64_t>(prompts[s].size()));
    const auto expected = alone.append(prompts[s], false);
    const std::vector<std::vector<float>> row = {{rows.begin() + s * vocab, rows.begin() + (s + 1) * vocab}};
    EXPECT_LE(max_abs_difference(row, expected), 1e-4f) << "sequence " << s;
  }
}

TEST_P(GqaModel, TensorParallelRanksGiveTheSingleRanksLogitsAndGreedy) {
  const fs::path directory = checkpoint();
  auto backend = make_cpu_backend(2);
  auto single = load_model(directory, *backend);
  const std::vector<int32_t> prompt = prompt_of(70, 11, single->config().vocab_size);
  SequenceRunner one(*single, 70);
  const auto expected = one.append(prompt, true);
  SequenceRunner one_greedy(*single, 80);
  const std::vector<int32_t> greedy = one_greedy.generate_greedy(prompt, 8);
  for (int world : {2, 4}) {  // 4 KV heads: 2 and 1 per rank
    testing::CpuTensorParallelModel split(directory, world, {});
    SequenceRunner runner(*split.model, 70);
    const auto logits = runner.append(prompt, true, 16);
    EXPECT_LE(max_abs_difference(logits, expected), 1e-4f) << "TP " << world;
    for (size_t r = 0; r < logits.size(); ++r)
      ASSERT_GE(testing::cosine(logits[r], expected[r]), 0.99999) << "TP " << world << " position " << r;
    SequenceRunner split_greedy(*split.model, 80);
    EXPECT_EQ(split_greedy.generate_greedy(prompt, 8), greedy) << "TP " << world;
  }
  // 8 heads over 4 KV heads: TP 8 would split a KV head.
  EXPECT_THROW(testing::CpuTensorParallelModel(directory, 8, {}), Error);
}

TEST_P(GqaModel, RefusesAnFp8KvCacheNamingTheFamily) {
  const fs::path directory = checkpoint();
  auto backend = make_cpu_backend(1);
  auto model = load_model(directory, *backend);
  try {
    model->allocate_kv_cache(4, 16, KvCacheDtype::Fp8);
    ADD_FAILURE() << "no error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("MLA models only"), std::string::npos) << error.what();
  }
  EXPECT_EQ(model->allocate_kv_cache(4, 16).entry_width(), 2 * 4 * 32);  // K and V of 4 KV heads of 32
}

INSTANTIATE_TEST_SUITE_P(Families, GqaModel,
                         ::testing::Values(Family{"glm4_moe", glm4_moe_config()},
                                           Family{"minimax_m2", minimax_m2_config()}),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace rackserve
