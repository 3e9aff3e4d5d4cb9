// DeepSeek sparse attention models (GLM-5 glm_moe_dsa, DeepSeek-V3.2 deepseek_v32) on the CPU,
// on tiny checkpoints written from the weight manifest with seeded random values and
// index_topk = 8, so that every prompt past 8 tokens runs the indexer's choice:
// - the indexer op itself (dsa_write_keys, dsa_top_k) against the contract of ops.h recomputed
//   here in double precision: LayerNorm, RoPE, scores and the top-k set;
// - decoding through the paged cache (latents and indexer keys) equals the full forward,
//   batched sequences equal separate ones, tensor-parallel ranks give the single rank's logits;
// - up to index_topk keys the model is exactly plain MLA (the same weights loaded as
//   deepseek_v3), and past it the choice changes the logits;
// - an FP8 cache stays close to the f32 cache, and e4m3 indexer keys keep most of the choice.
// The transformers reference for the family comes from tests/reference/make_dsa_fixtures.py
// (fixtures under tests/data/models, picked up by reference_logits_test and the others).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <utility>
#include <fstream>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "engine/sequence_runner.h"
#include "models/kv_cache.h"
#include "models/model.h"
#include "support/cpu_tensor_parallel.h"
#include "support/dsa_checkpoints.h"
#include "support/model_consistency.h"
#include "support/similarity.h"

namespace rackserve {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::max_abs_difference;
using testing::random_prompt;
using testing::write_checkpoint;

// ---- the indexer ops against their contract ------------------------------------------------

constexpr int64_t kPageSize = 16, kWidth = 32, kRopeDim = 8, kHeads = 4;

// The cached key of one token as ops.h defines it, in double: LayerNorm, then RoPE on the first
// kRopeDim values, pairs (2i, 2i+1) or (i, i + dim/2), written half-split.
std::vector<double> expected_key(const float* k, const std::vector<float>& weight, const std::vector<float>& bias,
                                 const std::vector<float>& inv_freq, int32_t position, bool interleaved) {
  double mean = 0.0, variance = 0.0;
  for (int64_t c = 0; c < kWidth; ++c) mean += k[c] / double(kWidth);
  for (int64_t c = 0; c < kWidth; ++c) variance += (k[c] - mean) * (k[c] - mean) / double(kWidth);
  std::vector<double> key(kWidth);
  for (int64_t c = 0; c < kWidth; ++c) key[c] = (k[c] - mean) / std::sqrt(variance + 1e-6) * weight[c] + bias[c];
  const std::vector<double> normed = key;
  for (int64_t i = 0; i < kRopeDim / 2; ++i) {
    const double first = interleaved ? normed[2 * i] : normed[i];
    const double second = interleaved ? normed[2 * i + 1] : normed[i + kRopeDim / 2];
    const double angle = double(position) * inv_freq[i];
    key[i] = first * std::cos(angle) - second * std::sin(angle);
    key[i + kRopeDim / 2] = second * std::cos(angle) + first * std::sin(angle);
  }
  return key;
}

// Two sequences of 40 and 7 tokens on interleaved 16-token pages (the first past top_k = 12, the
// second not), random indexer inputs, and the ops run on a cache of either dtype.
class DsaIndexerOps : public ::testing::Test {
 protected:
  static constexpr int64_t kTopK = 12, kTokens = 47;

  void SetUp() override {
    for (int64_t b = 0; b < 3; ++b) table_[b] = static_cast<int32_t>(2 * b);
    table_[3] = 1;
    for (int64_t s = 0; s < 2; ++s)
      for (int32_t j = 0; j < context_[s]; ++j) {
        positions_.push_back(j);
        slots_.push_back(table_[s * 3 + j / kPageSize] * kPageSize + j % kPageSize);
      }
    batch_ = AttentionBatch{upload(query_start_), upload(context_), upload(table_), upload(slots_), upload(positions_),
                            2, kTokens, 40, kPageSize};
    batch_.block_table.shape = {2, 3};
  }

  std::vector<float> random(size_t n, float scale, float offset = 0.0f) {
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> values(n);
    for (float& value : values) value = offset + scale * normal(generator_);
    return values;
  }
  Tensor upload(std::vector<int32_t>& values) {
    return backend_->upload_persistent(Tensor{values.data(), DType::I32, {int64_t(values.size())}, Device{}},
                                       DType::I32);
  }
  Tensor upload(std::vector<float>& values, Shape shape) {
    return backend_->upload_persistent(Tensor{values.data(), DType::F32, shape, Device{}}, DType::F32);
  }
  // A key cache of `dtype` (F32 or F8_E4M3 with its scales) holding every token's key.
  std::pair<Tensor, Tensor> write_keys(DType dtype, bool interleaved) {
    Tensor cache = backend_->allocate_persistent(dtype, {6, kPageSize, kWidth});
    Tensor scales = dtype == DType::F8_E4M3 ? backend_->allocate_persistent(DType::F32, {6, kPageSize}) : Tensor{};
    rope_ = RopeTable{upload(inv_freq_, {kRopeDim / 2}), kRopeDim, 1.0f, interleaved};
    DsaKeyWrite write;
    write.k = upload(k_, {kTokens, kWidth});
    write.norm_weight = upload(weight_, {kWidth});
    write.norm_bias = upload(bias_, {kWidth});
    write.rope = &rope_;
    write.positions = batch_.positions;
    write.slots = batch_.slots;
    write.cache_layer = cache;
    write.cache_scales = scales;
    backend_->dsa_write_keys(write);
    return {cache, scales};
  }
  std::vector<int32_t> top_k(const std::pair<Tensor, Tensor>& cache) {
    DsaTopK args;
    args.q = upload(q_, {kTokens, kHeads, kWidth});
    args.head_weights = upload(head_weights_, {kTokens, kHeads});
    args.cache_layer = cache.first;
    args.cache_scales = cache.second;
    args.batch = &batch_;
    args.top_k = kTopK;
    args.softmax_scale = 1.0f / std::sqrt(float(kWidth));
    args.head_scale = 0.5f;
    const std::vector<float> chosen = backend_->download_f32(backend_->dsa_top_k(args));
    return {chosen.begin(), chosen.end()};
  }
  // The scores ops.h defines for token t over its keys, in double.
  std::vector<double> expected_scores(int64_t t, const std::vector<std::vector<double>>& keys) const {
    const int64_t first_token = t < 40 ? 0 : 40;
    std::vector<double> score(positions_[t] + 1, 0.0);
    for (size_t j = 0; j < score.size(); ++j)
      for (int64_t h = 0; h < kHeads; ++h) {
        double dot = 0.0;
        for (int64_t c = 0; c < kWidth; ++c) dot += q_[(t * kHeads + h) * kWidth + c] * keys[first_token + j][c];
        score[j] += head_weights_[t * kHeads + h] * 0.5 * std::max(dot / std::sqrt(double(kWidth)), 0.0);
      }
    return score;
  }

  std::unique_ptr<Backend> backend_ = make_cpu_backend(2);
  std::mt19937 generator_{99};
  std::vector<int32_t> positions_, slots_, query_start_ = {0, 40, 47}, context_ = {40, 7}, table_ = std::vector<int32_t>(6, 0);
  AttentionBatch batch_;
  RopeTable rope_;
  std::vector<float> k_ = random(kTokens * kWidth, 1.0f, 0.3f), weight_ = random(kWidth, 0.1f, 1.0f),
                     bias_ = random(kWidth, 0.1f), inv_freq_ = {1.0f, 0.1f, 0.01f, 0.001f},
                     q_ = random(kTokens * kHeads * kWidth, 1.0f), head_weights_ = random(kTokens * kHeads, 1.0f);
};

TEST_F(DsaIndexerOps, KeysAndTopKFollowTheContract) {
  for (bool interleaved : {true, false}) {
    const auto cache = write_keys(DType::F32, interleaved);
    std::vector<std::vector<double>> keys;
    for (int64_t t = 0; t < kTokens; ++t) {
      keys.push_back(expected_key(k_.data() + t * kWidth, weight_, bias_, inv_freq_, positions_[t], interleaved));
      for (int64_t c = 0; c < kWidth; ++c)
        ASSERT_NEAR(cache.first.as<float>()[slots_[t] * kWidth + c], keys[t][c], 1e-4) << "token " << t << " value " << c;
    }
    const std::vector<int32_t> chosen = top_k(cache);
    int64_t ranked_rows = 0;
    for (int64_t t = 0; t < kTokens; ++t) {
      const int64_t keys_of_t = positions_[t] + 1;
      const std::vector<int32_t> row(chosen.begin() + t * kTopK, chosen.begin() + (t + 1) * kTopK);
      std::vector<int32_t> expected(static_cast<size_t>(kTopK), -1);
      if (keys_of_t <= kTopK) {
        std::iota(expected.begin(), expected.begin() + keys_of_t, 0);
        EXPECT_EQ(row, expected) << "token " << t;
        continue;
      }
      const std::vector<double> score = expected_scores(t, keys);
      std::vector<int32_t> order(keys_of_t);
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return score[a] > score[b]; });
      // A near tie at the cut could go either way within f32 rounding: skip such rows.
      if (std::fabs(score[order[kTopK - 1]] - score[order[kTopK]]) < 1e-4) continue;
      std::copy(order.begin(), order.begin() + kTopK, expected.begin());
      std::sort(expected.begin(), expected.end());
      EXPECT_EQ(row, expected) << "token " << t;
      ++ranked_rows;
    }
    EXPECT_GE(ranked_rows, 20) << "too few rows ranked: the check would not test the choice";
  }
}

// e4m3 keys keep 3 mantissa bits (each value within 2^-4 of itself), so keys whose scores sit
// near the cut can trade places; the bulk of the choice must stay.
TEST_F(DsaIndexerOps, E4m3KeysMostlyChooseTheSamePositions) {
  const std::vector<int32_t> exact = top_k(write_keys(DType::F32, true));
  const std::vector<int32_t> quantized = top_k(write_keys(DType::F8_E4M3, true));
  int64_t shared = 0, total = 0;
  for (int64_t t = 0; t < kTokens; ++t) {
    if (positions_[t] + 1 <= kTopK) {
      EXPECT_TRUE(std::equal(exact.begin() + t * kTopK, exact.begin() + (t + 1) * kTopK, quantized.begin() + t * kTopK));
      continue;
    }
    for (int64_t i = 0; i < kTopK; ++i)
      shared += std::count(quantized.begin() + t * kTopK, quantized.begin() + (t + 1) * kTopK, exact[t * kTopK + i]);
    total += kTopK;
  }
  const double overlap = double(shared) / double(total);
  std::printf("  e4m3 indexer keys: %.4f of the f32 keys' choice kept over %lld chosen positions\n", overlap,
              static_cast<long long>(total));
  EXPECT_GE(overlap, 0.9);
  EXPECT_LT(shared, total) << "no choice moved: were the keys quantized?";
}

// ---- whole models ---------------------------------------------------------------------------

struct Family {
  std::string name;
  json config;
};

class DsaModel : public ::testing::TestWithParam<Family> {
 protected:
  static void TearDownTestSuite() {
    for (const fs::path& directory : written_) fs::remove_all(directory);
    written_.clear();
  }
  static fs::path checkpoint(const std::string& name, const json& config) {
    const fs::path directory = write_checkpoint(name, config);
    written_.push_back(directory);
    return directory;
  }
  fs::path checkpoint() const { return checkpoint(GetParam().name, GetParam().config); }
  // The weights of `source` under another config.json (tensors its manifest does not name are
  // not read).
  static fs::path same_weights(const fs::path& source, const std::string& name, const json& config) {
    const fs::path directory = source.string() + "-" + name;
    fs::create_directories(directory);
    fs::copy_file(source / "model.safetensors", directory / "model.safetensors", fs::copy_options::overwrite_existing);
    std::ofstream(directory / "config.json") << config.dump(1);
    written_.push_back(directory);
    return directory;
  }
  static inline std::vector<fs::path> written_;
};

TEST_P(DsaModel, DecodeThroughCacheEqualsFullForward) {
  auto backend = make_cpu_backend(2);
  auto model = load_model(checkpoint(), *backend);
  ASSERT_TRUE(model->config().indexer);
  EXPECT_EQ(model->allocate_kv_cache(1, 16).index_key_width(), 32);
  testing::expect_chunked_prefill_equals_full_forward(*model);
}

TEST_P(DsaModel, BatchedSequencesEqualSeparateOnes) {
  auto backend = make_cpu_backend(2);
  auto model = load_model(checkpoint(), *backend);
  testing::expect_batched_sequences_equal_separate_ones(*model);
}

TEST_P(DsaModel, TensorParallelRanksGiveTheSingleRanksLogitsAndGreedy) {
  // 4 heads: 2 and 1 per rank; the indexer is replicated.
  testing::expect_tensor_parallel_ranks_match_one(checkpoint(), {2, 4});
}

// The same weights as plain MLA: the config without its index_* fields (deepseek_v3).
json without_indexer(json config) {
  for (const char* field : {"index_n_heads", "index_head_dim", "index_topk", "indexer_rope_interleave"})
    config.erase(field);
  config["model_type"] = "deepseek_v3";
  config["architectures"] = {"DeepseekV3ForCausalLM"};
  return config;
}

TEST_P(DsaModel, UpToTopKKeysItIsPlainMlaAndPastItTheChoiceMatters) {
  const fs::path directory = checkpoint();
  json all_keys = GetParam().config;
  all_keys["index_topk"] = 1024;
  const fs::path dense_directory = same_weights(directory, "dense", without_indexer(GetParam().config));
  const fs::path all_keys_directory = same_weights(directory, "all-keys", all_keys);
  auto backend = make_cpu_backend(2);
  auto sparse = load_model(directory, *backend);
  auto dense = load_model(dense_directory, *backend);
  auto every_key = load_model(all_keys_directory, *backend);
  ASSERT_FALSE(dense->config().indexer);
  const std::vector<int32_t> prompt = random_prompt(40, 5, sparse->config().vocab_size);
  SequenceRunner sparse_runner(*sparse, 40), dense_runner(*dense, 40), every_key_runner(*every_key, 40);
  const auto sparse_logits = sparse_runner.append(prompt, true, 16);
  const auto dense_logits = dense_runner.append(prompt, true, 16);
  // index_topk past the context: the indexer runs and chooses every key, which is plain MLA.
  EXPECT_LE(max_abs_difference(every_key_runner.append(prompt, true, 16), dense_logits), 1e-5f);
  const int64_t top_k = testing::kTinyIndexTopK;
  // Layer 0's attention sees the same keys either way up to top_k tokens; after that the
  // sparse model's later positions read fewer keys.
  const std::vector<std::vector<float>> sparse_head(sparse_logits.begin(), sparse_logits.begin() + top_k);
  const std::vector<std::vector<float>> dense_head(dense_logits.begin(), dense_logits.begin() + top_k);
  EXPECT_LE(max_abs_difference(sparse_head, dense_head), 1e-5f);
  int64_t changed = 0;
  for (size_t r = top_k; r < sparse_logits.size(); ++r)
    changed += max_abs_difference({sparse_logits[r]}, {dense_logits[r]}) > 1e-3f;
  EXPECT_GE(changed, 30) << "past top_k the sparse choice barely changed the logits";
}

TEST_P(DsaModel, Fp8KvCacheStaysCloseToTheFullPrecisionCache) {
  json config = testing::every_expert(GetParam().config);
  // Every key chosen: this measures the e4m3 latents as kv_cache_fp8_test does for MLA. Where
  // the indexer chooses, e4m3 keys can swap near-tied positions (E4m3KeysMostlyChooseTheSamePositions
  // measures that): on these tiny random models with flat score distributions a swap moves the
  // logits more than the quantization itself (top_k 64 of 300: cosine mean 0.9968, worst 0.91).
  config["index_topk"] = 1024;
  auto backend = make_cpu_backend(2);
  auto model = load_model(checkpoint(GetParam().name + "-all-experts", config), *backend);
  testing::expect_fp8_cache_close_to_full_precision(*model, GetParam().name);
}

INSTANTIATE_TEST_SUITE_P(Families, DsaModel,
                         ::testing::Values(Family{"glm_moe_dsa", testing::glm_moe_dsa_config()},
                                           Family{"deepseek_v32", testing::deepseek_v32_config()}),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace rackserve
