// WeightManifest and footprint numbers against hand calculations from the architectures
// (the derivations are written out next to each expectation), using the real config files.
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "config/model_config.h"
#include "core/error.h"
#include "models/footprint.h"
#include "models/weight_manifest.h"
#include "weights/quant_config.h"

namespace rackserve {
namespace {

namespace fs = std::filesystem;
const fs::path kModels = RACKSERVE_SHARED_MODELS_DIR;

struct Model {
  ModelConfig config;
  QuantConfig quant;
  WeightManifest manifest;
};

Model load(const std::string& directory) {
  ModelConfig config = ModelConfig::load(kModels / directory);
  QuantConfig quant = QuantConfig::load(kModels / directory);
  WeightManifest manifest = WeightManifest::build(config, quant);
  return {std::move(config), std::move(quant), std::move(manifest)};
}

const ManifestEntry& entry(const Model& model, const std::string& name) {
  const ManifestEntry* found = model.manifest.find(name);
  if (!found) throw Error("no manifest entry " + name);
  return *found;
}

// ---------------------------------------------------------------------------------------
// Parameter counts

// DeepSeek-V3: H = 7168, V = 129,280, 61 layers (first 3 dense), 128 heads.
//   attention per layer
//     q_a_proj            1536 × 7168             =  11,010,048
//     q_a_layernorm       1536                    =       1,536
//     q_b_proj            128·(128+64) × 1536     =  37,748,736
//     kv_a_proj_with_mqa  (512+64) × 7168         =   4,128,768
//     kv_a_layernorm      512                     =         512
//     kv_b_proj           128·(128+128) × 512     =  16,777,216
//     o_proj              7168 × 128·128          = 117,440,512
//                                                   187,107,328
//   input/post-attention norms  2 × 7168          =      14,336
//   dense MLP            3 × 7168 × 18,432        = 396,361,728
//   MoE: 256 routed + 1 shared expert of 3 × 7168 × 2048 = 44,040,192 each
//        257 × 44,040,192 = 11,318,329,344; router 256 × 7168 = 1,835,008; bias 256
//        = 11,320,164,608
//   dense layer = 187,107,328 + 14,336 + 396,361,728     =    583,483,392
//   MoE layer   = 187,107,328 + 14,336 + 11,320,164,608  = 11,507,286,272
//   embed_tokens and lm_head 129,280 × 7168 = 926,679,040 each; final norm 7168
//   main = 3 × 583,483,392 + 58 × 11,507,286,272 + 2 × 926,679,040 + 7168
//        = 1,750,450,176 + 667,422,603,776 + 1,853,358,080 + 7168 = 671,026,419,200   ("671B")
//   MTP layer 61 = MoE layer 11,507,286,272 + eh_proj 7168 × 14,336 = 102,760,448
//        + enorm, hnorm, shared_head.norm 3 × 7168 = 21,504                 (11.61B unique)
//        + its embed_tokens and shared_head.head copies 2 × 926,679,040     (1.85B shared)
//        = 13,463,426,304
//   with MTP = 684,489,845,504. The HF card's "671B + 14B = 685B" counts the checkpoint's
//   elements, which also include 41,540,496 f32 scales (see the bytes test): 684.53B.
TEST(Footprint, DeepSeekV3Parameters) {
  Model v3 = load("deepseek-v3");
  EXPECT_EQ(weight_totals(v3.manifest, false).parameters, 671'026'419'200);
  EXPECT_EQ(weight_totals(v3.manifest, true).parameters, 684'489'845'504);
}

// Kimi-K2: H = 7168, V = 163,840, 61 layers (first 1 dense), 64 heads, 384 experts, no MTP.
//   attention: q_a 11,010,048 + q_a_norm 1536 + q_b 64·192 × 1536 = 18,874,368
//     + kv_a 4,128,768 + kv_a_norm 512 + kv_b 64·256 × 512 = 8,388,608
//     + o_proj 7168 × 64·128 = 58,720,256                           = 101,124,096
//   dense layer = 101,124,096 + 14,336 + 396,361,728                 =    497,500,160
//   MoE = 385 × 44,040,192 = 16,955,473,920 + router 384 × 7168 = 2,752,512 + bias 384
//       = 16,958,226,816; MoE layer = 101,124,096 + 14,336 + 16,958,226,816 = 17,059,365,248
//   embed + lm_head 2 × 163,840 × 7168 = 2,348,810,240; final norm 7168
//   total = 497,500,160 + 60 × 17,059,365,248 + 2,348,810,240 + 7168 = 1,026,408,232,448
//   = 1.026T, Moonshot's "1T total" (1.03T to three figures).
TEST(Footprint, KimiK2Parameters) {
  Model k2 = load("kimi-k2");
  EXPECT_EQ(weight_totals(k2.manifest, false).parameters, 1'026'408'232'448);
  EXPECT_EQ(weight_totals(k2.manifest, true).parameters, 1'026'408'232'448);  // num_nextn_predict_layers 0
  // Kimi-K2.5 has the same language model (text_config) under language_model.*.
  EXPECT_EQ(weight_totals(load("kimi-k2.5").manifest, false).parameters, 1'026'408'232'448);
}

// GLM-5: H = 6144, V = 154,880, 78 layers (first 3 dense), 64 heads, qk 192+64, v 256,
// q_lora 2048, 256 experts of 2048, DSA indexer 32 heads × 128.
//   attention: q_a 2048 × 6144 = 12,582,912 + 2048 + q_b 64·256 × 2048 = 33,554,432
//     + kv_a 576 × 6144 = 3,538,944 + 512 + kv_b 64·448 × 512 = 14,680,064
//     + o_proj 6144 × 64·256 = 100,663,296                        = 165,022,208
//   indexer: wq_b 32·128 × 2048 = 8,388,608 + wk 128 × 6144 = 786,432
//     + k_norm weight and bias 256 + weights_proj 32 × 6144 = 196,608 =   9,371,904
//   dense layer = 174,394,112 + 12,288 + 3 × 6144 × 12,288 (226,492,416) = 400,898,816
//   MoE = 257 × 3 × 6144 × 2048 = 9,701,425,152 + router 1,572,864 + bias 256 = 9,702,998,272
//   MoE layer = 174,394,112 + 12,288 + 9,702,998,272 = 9,877,404,672
//   main = 3 × 400,898,816 + 75 × 9,877,404,672 + 2 × 154,880 × 6144 + 6144 = 743,911,218,432
//   MTP layer 78 = 9,877,404,672 + eh_proj 6144 × 12,288 = 75,497,472 + 3 × 6144
//        (no embedding or head copies in GLM-5) = 9,952,920,576 → 753,864,139,008
TEST(Footprint, Glm5Parameters) {
  Model glm = load("glm-5");
  EXPECT_EQ(weight_totals(glm.manifest, false).parameters, 743'911'218'432);
  EXPECT_EQ(weight_totals(glm.manifest, true).parameters, 753'864'139'008);
  // Quantization changes bytes, never the parameter count.
  EXPECT_EQ(weight_totals(load("glm-5.1-nvfp4").manifest, true).parameters, 753'864'139'008);
  EXPECT_EQ(weight_totals(load("glm-5-fp8").manifest, true).parameters, 753'864'139'008);
}

// MiniMax-M2.7: H = 3072, V = 200,064, 62 layers, all MoE; 48 query heads and 8 KV heads of 128.
//   attention per layer
//     q_proj   6144 × 3072 = 18,874,368     k_proj, v_proj  1024 × 3072 = 3,145,728 each
//     o_proj   3072 × 6144 = 18,874,368     q_norm 6144 + k_norm 1024 (over all heads)
//                                          = 44,047,360
//   input/post-attention norms 2 × 3072    =      6,144
//   MoE: 256 experts of 3 × 3072 × 1536 = 14,155,776 each = 3,623,878,656; router 256 × 3072
//        = 786,432; correction bias 256    = 3,624,665,344
//   layer = 3,668,718,848; × 62 = 227,460,568,576
//   embed_tokens + lm_head 2 × 200,064 × 3072 = 1,229,193,216; final norm 3072
//   total 228,689,764,864 (MiniMax's "230B"; the MTP modules are not counted)
TEST(Footprint, MiniMaxM27Parameters) {
  Model m2 = load("minimax-m2.7");
  EXPECT_EQ(weight_totals(m2.manifest, false).parameters, 228'689'764'864);
  EXPECT_EQ(entry(m2, "model.layers.7.block_sparse_moe.experts.255.w2.weight").shape, (Shape{3072, 1536}));
  EXPECT_EQ(entry(m2, "model.layers.7.block_sparse_moe.e_score_correction_bias").shape, (Shape{256}));
  EXPECT_EQ(entry(m2, "model.layers.7.self_attn.q_norm.weight").split, TpSplit::Column);
  EXPECT_EQ(entry(m2, "model.layers.7.self_attn.k_proj.weight").storage, "fp8-block");  // quantization_config
  EXPECT_EQ(entry(m2, "model.layers.7.block_sparse_moe.gate.weight").storage, "bf16");  // modules_to_not_convert
}

// GLM-4.7 (abridged file: no attention_bias, no use_qk_norm): H = 5120, V = 151,552, 92 layers
// (first 3 dense), 96 query heads and 8 KV heads of 128.
//   attention per layer
//     q_proj 12,288 × 5120 = 62,914,560     k_proj, v_proj 1024 × 5120 = 5,242,880 each
//     o_proj 5120 × 12,288 = 62,914,560     = 136,314,880; + norms 2 × 5120 = 10,240
//   dense MLP 3 × 5120 × 12,288             = 188,743,680
//   MoE: 160 routed + 1 shared expert of 3 × 5120 × 1536 = 23,592,960 each = 3,798,466,560;
//        router 160 × 5120 = 819,200; bias 160 = 3,799,285,920
//   92 × 136,325,120 + 3 × 188,743,680 + 89 × 3,799,285,920 = 351,244,588,960
//   embed_tokens + lm_head 2 × 151,552 × 5120 = 1,551,892,480; final norm 5120
//   total 352,796,486,560 (GLM's "355B" counts the MTP layer too)
// With the full files' q/k/v biases (12,288 + 2 × 1024) and q/k norms (2 × 128) per layer:
//   + 92 × 14,592 = 1,342,464.
TEST(Footprint, Glm47Parameters) {
  Model glm = load("glm-4.7-fp8/config.abridged.json");
  EXPECT_EQ(weight_totals(glm.manifest, false).parameters, 352'796'486'560);
  nlohmann::json file = nlohmann::json::parse(std::ifstream(kModels / "glm-4.7-fp8" / "config.abridged.json"));
  file["attention_bias"] = true;
  file["use_qk_norm"] = true;
  const ModelConfig full = ModelConfig::from_json(file);
  const WeightManifest manifest = WeightManifest::build(full, QuantConfig{});
  EXPECT_EQ(weight_totals(manifest, false).parameters, 352'796'486'560 + 1'342'464);
  ASSERT_NE(manifest.find("model.layers.0.self_attn.q_proj.bias"), nullptr);
  EXPECT_EQ(manifest.find("model.layers.0.self_attn.q_norm.weight")->shape, (Shape{128}));
  EXPECT_EQ(manifest.find("model.layers.0.self_attn.k_proj.bias")->split, TpSplit::Column);
}

// ---------------------------------------------------------------------------------------
// Bytes

// DeepSeek-V3 FP8 block checkpoint, main model. Every projection except lm_head is e4m3
// (1 byte) with one f32 per 128 × 128 block (ceil on both axes).
//   scales per layer: q_a 12 × 56 = 672, q_b 192 × 12 = 2304, kv_a 5 × 56 = 280,
//     kv_b 256 × 4 = 1024, o_proj 56 × 128 = 7168                     → 11,448
//   dense MLP: gate, up 144 × 56 and down 56 × 144 = 3 × 8064          → 24,192
//   expert (routed or shared): gate, up 16 × 56, down 56 × 16 = 3 × 896 → 2,688; × 257 = 690,816
//   main: 3 × (11,448 + 24,192) + 58 × (11,448 + 690,816) = 40,838,232 scales; MTP: 702,264
//   fp8-block = e4m3 weights 3 × (187,105,280 + 396,361,728) + 58 × (187,105,280 + 11,318,329,344)
//             + 4 × 40,838,232 = 1,750,401,024 + 667,315,208,192 + 163,352,928 = 669,228,962,144
//     (attention weights without its two norms: 187,107,328 − 2048 = 187,105,280)
//   bf16 = 2 × (61 × 16,384 norms + 58 × 1,835,008 routers + 2 × 926,679,040 + 7168)
//        = 2 × 1,960,795,136 = 3,921,590,272
//   f32 = 58 × 256 × 4 bias = 59,392
//   main total 673,150,611,808; the MTP layer adds fp8-block 187,105,280 + 11,318,329,344
//   + 4 × 702,264 = 11,508,243,680, bf16 2 × (16,384 + 1,835,008 + 21,504 + 102,760,448 +
//   1,853,358,080) = 3,915,982,848 and f32 1024: 688,574,839,360 bytes, the 688.6 GB the
//   published checkpoint occupies.
TEST(Footprint, DeepSeekV3Fp8CheckpointBytes) {
  Model v3 = load("deepseek-v3");
  WeightTotals main = weight_totals(v3.manifest, false);
  EXPECT_EQ(main.bytes_by_storage.at("fp8-block"), 669'228'962'144u);
  EXPECT_EQ(main.bytes_by_storage.at("bf16"), 3'921'590'272u);
  EXPECT_EQ(main.bytes_by_storage.at("f32"), 59'392u);
  EXPECT_EQ(main.bytes_by_storage.size(), 3u);
  EXPECT_EQ(main.bytes, 673'150'611'808u);
  WeightTotals all = weight_totals(v3.manifest, true);
  EXPECT_EQ(all.bytes_by_storage.at("fp8-block"), 669'228'962'144u + 11'508'243'680u);
  EXPECT_EQ(all.bytes, 688'574'839'360u);
}

// Per GPU at TP=4: split tensors divide by 4 (every split extent here is divisible: vocab
// 129,280, heads, 144 and 16 scale blocks, ...); replicated tensors count whole on each GPU:
//   per layer q_a 11,010,048 + 2,688 scale bytes, kv_a 4,128,768 + 1,120, norms 32,768 bytes
//     = 15,175,392 × 61 = 925,698,912
//   routers 3,670,016 + bias 1,024 = 3,671,040 × 58 = 212,920,320; final norm 14,336
//   replicated = 1,138,633,568
//   checkpoint bytes per GPU = (673,150,611,808 − 1,138,633,568) / 4 + 1,138,633,568 = 169,141,628,128
//     TP=8: 672,011,978,240 / 8 + 1,138,633,568 = 85,140,130,848
// Loaded, kv_b_proj ([128 × 256, 512], split by heads) is BF16 and its scales are folded in:
//   per layer 2 × 16,777,216 − (16,777,216 + 1,024 × 4) = 16,773,120 more, × 61 = 1,023,160,320
//   TP=1: 674,173,772,128; TP=4: 169,141,628,128 + 255,790,080 = 169,397,418,208;
//   TP=8: 85,140,130,848 + 127,895,040 = 85,268,025,888
TEST(Footprint, DeepSeekV3BytesPerGpu) {
  Model v3 = load("deepseek-v3");
  EXPECT_EQ(weight_bytes_per_rank(v3.manifest, 1, false), 674'173'772'128u);
  EXPECT_EQ(weight_bytes_per_rank(v3.manifest, 4, false), 169'397'418'208u);
  EXPECT_EQ(weight_bytes_per_rank(v3.manifest, 8, false), 85'268'025'888u);
  std::string message;
  try {
    v3.manifest.check_divisible(3);
  } catch (const Error& error) {
    message = error.what();
  }
  EXPECT_NE(message.find("TP=3 does not divide model.embed_tokens.weight"), std::string::npos) << message;
}

// ---------------------------------------------------------------------------------------
// KV cache

TEST(Footprint, KvBytesPerTokenPerGpu) {
  Model v3 = load("deepseek-v3");
  // 61 layers × (512 + 64) values × 2 bytes = 70,272; fp8: 61 × (576 + a 4-byte scale) = 35,380.
  EXPECT_EQ(kv_cache_layout(v3.config, KvCacheDtype::Bf16, false).bytes_per_token(), 70'272);
  EXPECT_EQ(kv_cache_layout(v3.config, KvCacheDtype::Fp8, false).bytes_per_token(), 35'380);
  // The MTP layer caches one more latent: 62 × 1152 = 71,424.
  EXPECT_EQ(kv_cache_layout(v3.config, KvCacheDtype::Bf16, true).bytes_per_token(), 71'424);

  // GLM-5 adds the indexer key in the cache's dtype: 128 e4m3 values + one f32 scale = 132 bytes
  // per layer, or 128 bf16 values = 256 bytes.
  Model glm = load("glm-5.1-nvfp4");
  EXPECT_EQ(kv_cache_layout(glm.config, KvCacheDtype::Fp8, false).bytes_per_token(), 78 * (580 + 132));   // 55,536
  EXPECT_EQ(kv_cache_layout(glm.config, KvCacheDtype::Bf16, false).bytes_per_token(), 78 * (1152 + 256));  // 109,824

  // GQA caches K and V of the rank's KV heads: MiniMax-M2 62 layers × 2 × 8 heads × 128 × 2
  // bytes = 253,952 on one GPU, a quarter at TP 4 (2 heads each); TP 16 does not divide 8 heads.
  Model m2 = load("minimax-m2.7");
  EXPECT_EQ(kv_cache_layout(m2.config, KvCacheDtype::Bf16, false).bytes_per_token(), 253'952);
  const KvCacheLayout tp4 = kv_cache_layout(m2.config, KvCacheDtype::Bf16, false, 4);
  EXPECT_EQ(tp4.bytes_per_token(), 63'488);
  EXPECT_TRUE(tp4.split_by_heads);
  EXPECT_THROW(kv_cache_layout(m2.config, KvCacheDtype::Bf16, false, 16), Error);
  // fp8: 1 byte per value and one f32 scale per entry (the rank's keys and values of a token):
  // 62 × (2048 + 4) = 127,224; at TP 4 62 × (512 + 4) = 31,992.
  EXPECT_EQ(kv_cache_layout(m2.config, KvCacheDtype::Fp8, false).bytes_per_token(), 127'224);
  EXPECT_EQ(kv_cache_layout(m2.config, KvCacheDtype::Fp8, false, 4).bytes_per_token(), 31'992);
}

// serve's KV pool on a GPU: GLM-4.7 at TP 4 (2 KV heads of 128 per GPU, 92 layers: 94,208 B per
// token in bf16, 6,029,312 B per 64-token page) on a 96 GiB card with 30 GiB free after the
// weights, utilization 0.9, reserve 4 GiB: 30 GiB - 9.6 GiB - 4 GiB = 16.4 GiB
// = 17,609,365,913.6 B -> 2,920 pages (186,880 tokens).
TEST(Footprint, KvPagesThatFitAGpuAfterItsWeights) {
  const double gib = 1024.0 * 1024.0 * 1024.0;
  nlohmann::json file = nlohmann::json::parse(std::ifstream(kModels / "glm-4.7-fp8" / "config.abridged.json"));
  const ModelConfig glm = ModelConfig::from_json(file);
  const int64_t per_token = kv_cache_layout(glm, KvCacheDtype::Bf16, false, 4).bytes_per_token();
  ASSERT_EQ(per_token, 92 * 2 * 2 * 128 * 2);
  KvPagesRequest request;
  request.free_bytes = static_cast<uint64_t>(30 * gib);
  request.total_bytes = static_cast<uint64_t>(96 * gib);
  request.utilization = 0.9;
  request.reserve_bytes = static_cast<uint64_t>(4 * gib);
  request.bytes_per_page = per_token * 64;
  request.max_pages = 1'000'000;
  EXPECT_EQ(kv_pages_that_fit(request), 2'920);
  request.max_pages = 100;  // no more than max_running_requests full-length sequences need
  EXPECT_EQ(kv_pages_that_fit(request), 100);
  request.free_bytes = static_cast<uint64_t>(12 * gib);  // 12 - 9.6 - 4 < 0: the weights took it all
  try {
    kv_pages_that_fit(request);
    ADD_FAILURE() << "no error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("no room for the KV cache: 12.00 GiB of 96.00 GiB free"),
              std::string::npos)
        << error.what();
  }
}

// DeepSeek-V3 FP8 at TP=8 on 96 GiB, utilization 0.9, reserve 4 GiB:
//   usable = floor(103,079,215,104 × 0.9) = 92,771,293,593
//   budget = 92,771,293,593 − 85,268,025,888 (loaded weights) − 4,294,967,296 = 3,208,300,409
//   fp8 page = 35,380 × 64 = 2,264,320 bytes → 1,416 pages = 90,624 tokens;
//   32,768-token sequences need 512 pages → 2 of them.
//   bf16 page = 4,497,408 → 713 pages = 45,632 tokens.
TEST(Footprint, DeepSeekV3MemoryPlanAtTp8) {
  Model v3 = load("deepseek-v3");
  MemoryPlanOptions options;
  options.tp = 8;
  options.kv_dtype = KvCacheDtype::Fp8;
  options.context_tokens = 32'768;
  MemoryPlan plan = plan_memory(v3.config, v3.manifest, options);
  EXPECT_EQ(plan.usable_bytes, 92'771'293'593u);
  EXPECT_EQ(plan.weight_bytes, 85'268'025'888u);
  EXPECT_EQ(plan.kv_budget_bytes, 3'208'300'409);
  EXPECT_EQ(plan.kv_tokens, 90'624);
  EXPECT_EQ(plan.sequences_at_context, 2);
  options.kv_dtype = KvCacheDtype::Bf16;
  EXPECT_EQ(plan_memory(v3.config, v3.manifest, options).kv_tokens, 45'632);
}

// GLM-5.1-NVFP4 (routed experts NVFP4; attention, indexer, shared experts, dense layers 0-2,
// MTP layer 78 and lm_head bf16). One expert linear 2048 × 6144: u8 6,291,456 + e4m3 scales
// 786,432 = 7,077,888 split; as loaded (Fp4Weight) each row also holds its module's
// weight_scale_2 as an f32 (input_scale is not read): gate and up rows split (2 × 2048 × 4 =
// 16,384 split), down's 6144 rows on every GPU (24,576 replicated).
//   replicated per layer (bf16): q_a 12,582,912 + kv_a 3,538,944 + norms 2048 + 512 + 12,288
//     + indexer 8,388,608 + 786,432 + 256 + 196,608 = 25,508,608 values → 51,017,216 × 78
//     = 3,979,342,848; per MoE layer router 3,145,728 + bias 1,024 + 256 × 24,576 row scales
//     = 9,438,208 × 75 = 707,865,600; final norm 12,288 → 4,687,220,736
//   split: attention (q_b 33,554,432 + kv_b 14,680,064 + o 100,663,296) × 2 × 78 = 23,228,055,552
//     + dense MLPs 3 × 452,984,832 = 1,358,954,496 + shared experts 75 × 75,497,472 = 5,662,310,400
//     + experts 75 × 256 × (3 × 7,077,888 + 16,384) = 408,000,921,600 + embed/lm_head 3,806,330,880
//     = 442,056,572,928
//   TP=4: 110,514,143,232 + 4,687,220,736 = 115,201,363,968 > 92,771,293,593 usable: no fit.
//   TP=8: 55,257,071,616 + 4,687,220,736 = 59,944,292,352; fp8 KV budget
//     92,771,293,593 − 59,944,292,352 − 4,294,967,296 = 28,532,033,945; page 55,536 × 64
//     = 3,554,304 → 8,027 pages = 513,728 tokens; 200,000 tokens = 3,125 pages → 2 sequences.
TEST(Footprint, Glm51Nvfp4DoesNotFitOnFourGpus) {
  Model glm = load("glm-5.1-nvfp4");
  MemoryPlanOptions options;
  options.tp = 4;
  options.kv_dtype = KvCacheDtype::Fp8;
  options.context_tokens = 200'000;
  MemoryPlan four = plan_memory(glm.config, glm.manifest, options);
  EXPECT_EQ(four.weight_bytes, 115'201'363'968u);
  EXPECT_FALSE(four.weights_fit());
  EXPECT_EQ(four.kv_tokens, 0);
  EXPECT_EQ(four.sequences_at_context, 0);

  options.tp = 8;
  MemoryPlan eight = plan_memory(glm.config, glm.manifest, options);
  EXPECT_EQ(eight.weight_bytes, 59'944'292'352u);
  EXPECT_EQ(eight.kv_budget_bytes, 28'532'033'945);
  EXPECT_EQ(eight.kv_tokens, 513'728);
  EXPECT_EQ(eight.sequences_at_context, 2);
}

// ---------------------------------------------------------------------------------------
// Manifest contents

// Entries of the DeepSeek-V3 FP8 checkpoint. Each fp8 linear is 2 tensors (weight, scale).
//   attention: q_a, q_b, kv_a, kv_b, o_proj (10) + 2 norms = 12; layer norms 2; dense MLP 6
//   dense layer 20; MoE layer 14 + router + bias + 256 × 3 × 2 + shared 6 = 1,558
//   main: embed + 3 × 20 + 58 × 1,558 + norm + lm_head = 90,427
//   MTP: embed, enorm, hnorm, eh_proj, shared_head.norm, shared_head.head + 1,558 = 1,564
TEST(WeightManifest, DeepSeekV3NamesShapesAndSplits) {
  Model v3 = load("deepseek-v3");
  EXPECT_EQ(v3.manifest.entries().size(), 90'427u + 1'564u);

  const ManifestEntry& gate = entry(v3, "model.layers.0.mlp.gate_proj.weight");
  EXPECT_EQ(gate.shape, (Shape{18432, 7168}));
  EXPECT_EQ(gate.dtype, DType::F8_E4M3);
  EXPECT_EQ(gate.split, TpSplit::Column);
  const ManifestEntry& down_scale = entry(v3, "model.layers.3.mlp.experts.255.down_proj.weight_scale_inv");
  EXPECT_EQ(down_scale.shape, (Shape{56, 16}));
  EXPECT_EQ(down_scale.split, TpSplit::ExpertIntermediate);
  EXPECT_EQ(down_scale.split_axis, 1);
  EXPECT_EQ(entry(v3, "model.layers.3.mlp.experts.0.up_proj.weight").split_axis, 0);
  EXPECT_EQ(entry(v3, "model.layers.7.self_attn.o_proj.weight").split, TpSplit::Row);
  EXPECT_EQ(entry(v3, "model.layers.7.self_attn.kv_b_proj.weight").split, TpSplit::Column);
  EXPECT_EQ(entry(v3, "model.layers.7.self_attn.kv_a_proj_with_mqa.weight").shape, (Shape{576, 7168}));
  EXPECT_EQ(entry(v3, "model.layers.7.self_attn.kv_a_proj_with_mqa.weight").split, TpSplit::Replicated);
  EXPECT_EQ(entry(v3, "model.layers.7.mlp.shared_experts.down_proj.weight").split, TpSplit::Row);
  EXPECT_EQ(entry(v3, "model.layers.7.mlp.gate.e_score_correction_bias").dtype, DType::F32);
  EXPECT_EQ(entry(v3, "model.embed_tokens.weight").split, TpSplit::Vocab);
  EXPECT_EQ(entry(v3, "lm_head.weight").dtype, DType::BF16);
  EXPECT_EQ(entry(v3, "model.layers.61.eh_proj.weight").shape, (Shape{7168, 14336}));
  EXPECT_TRUE(entry(v3, "model.layers.61.embed_tokens.weight").optional);
  EXPECT_TRUE(entry(v3, "model.layers.61.shared_head.head.weight").optional);
  EXPECT_TRUE(entry(v3, "model.layers.61.mlp.experts.9.gate_proj.weight").optional);
  EXPECT_FALSE(entry(v3, "model.layers.60.mlp.experts.9.gate_proj.weight").optional);
  EXPECT_EQ(v3.manifest.find("model.layers.2.mlp.experts.0.gate_proj.weight"), nullptr);  // dense layer
}

TEST(WeightManifest, Glm5IndexerAndMtpLayer) {
  Model glm = load("glm-5-fp8");
  EXPECT_EQ(entry(glm, "model.layers.5.self_attn.indexer.wq_b.weight").shape, (Shape{4096, 2048}));
  EXPECT_EQ(entry(glm, "model.layers.5.self_attn.indexer.wq_b.weight").dtype, DType::F8_E4M3);
  EXPECT_EQ(entry(glm, "model.layers.5.self_attn.indexer.wk.weight_scale_inv").shape, (Shape{1, 48}));
  EXPECT_EQ(entry(glm, "model.layers.5.self_attn.indexer.k_norm.bias").shape, Shape{128});
  const ManifestEntry& weights_proj = entry(glm, "model.layers.5.self_attn.indexer.weights_proj.weight");
  EXPECT_EQ(weights_proj.shape, (Shape{32, 6144}));
  EXPECT_EQ(weights_proj.dtype, DType::BF16);  // modules_to_not_convert: indexers_proj
  EXPECT_EQ(weights_proj.split, TpSplit::Replicated);
  EXPECT_EQ(glm.manifest.find("model.layers.5.self_attn.indexer.weights_proj.weight_scale_inv"), nullptr);
  EXPECT_EQ(entry(glm, "model.layers.5.self_attn.q_b_proj.weight").shape, (Shape{64 * 256, 2048}));
  EXPECT_EQ(entry(glm, "model.layers.5.self_attn.kv_b_proj.weight").shape, (Shape{64 * 448, 512}));
  EXPECT_EQ(entry(glm, "model.layers.5.self_attn.o_proj.weight").shape, (Shape{6144, 64 * 256}));
  EXPECT_EQ(entry(glm, "model.layers.78.eh_proj.weight").dtype, DType::BF16);
  EXPECT_TRUE(entry(glm, "model.layers.78.self_attn.indexer.wk.weight").optional);
  EXPECT_EQ(glm.manifest.find("model.layers.78.shared_head.head.weight"), nullptr);
  EXPECT_EQ(glm.manifest.find("model.layers.78.embed_tokens.weight"), nullptr);
}

TEST(WeightManifest, KimiK25PrefixedInt4Experts) {
  Model k25 = load("kimi-k2.5");
  const ManifestEntry& packed = entry(k25, "language_model.model.layers.1.mlp.experts.383.down_proj.weight_packed");
  EXPECT_EQ(packed.shape, (Shape{7168, 256}));
  EXPECT_EQ(packed.split_axis, 1);
  EXPECT_EQ(entry(k25, "language_model.model.layers.1.mlp.experts.383.down_proj.weight_shape").split,
            TpSplit::Replicated);
  EXPECT_EQ(entry(k25, "language_model.model.layers.1.self_attn.q_b_proj.weight").dtype, DType::BF16);
  EXPECT_EQ(entry(k25, "language_model.lm_head.weight").dtype, DType::BF16);
  EXPECT_EQ(k25.manifest.find("model.embed_tokens.weight"), nullptr);
  // Routed experts 60 × 384 × 3 × 7168 × 2048 values at 4 bits + bf16 scales per 32:
  // 0.5 + 2/32 = 0.5625 bytes per value, plus 8 bytes of weight_shape per linear.
  const uint64_t expert_linears = 60ull * 384 * 3;
  EXPECT_EQ(weight_totals(k25.manifest, false).bytes_by_storage.at("int4-group"),
            expert_linears * (7168ull * 2048 * 9 / 16 + 8));
  // As loaded on one of 8 GPUs: down's codes and scales split on the inputs (2048 / 8), its
  // weight_shape not read.
  EXPECT_EQ(loaded_bytes_per_rank(packed, 8), 7168ull * 256 / 8 * 4);
  EXPECT_EQ(loaded_bytes_per_rank(entry(k25, "language_model.model.layers.1.mlp.experts.383.down_proj.weight_shape"), 8),
            0u);
}

// A 4-bit layer outside the routed experts is dequantized to BF16 at load: 2 bytes per value on
// its rank, its scales folded in (Kimi-K2.5's quantization with attention not ignored).
TEST(Footprint, FourBitLayersOutsideTheExpertsLoadAsBf16) {
  std::ifstream stream(kModels / "kimi-k2.5" / "config.json");
  nlohmann::json file = nlohmann::json::parse(stream);
  nlohmann::json& ignore = file["text_config"]["quantization_config"]["ignore"];
  ignore.erase(std::remove(ignore.begin(), ignore.end(), "re:.*self_attn.*"), ignore.end());
  const ModelConfig config = ModelConfig::from_json(file);
  const WeightManifest manifest = WeightManifest::build(config, QuantConfig::from_config_json(file));
  const ManifestEntry* q_b = manifest.find("language_model.model.layers.1.self_attn.q_b_proj.weight_packed");
  ASSERT_NE(q_b, nullptr);
  EXPECT_EQ(loaded_bytes_per_rank(*q_b, 4), 64ull * 192 * 1536 / 4 * 2);  // q_b [64 x 192, 1536], column split
  const ManifestEntry* scales = manifest.find("language_model.model.layers.1.self_attn.q_b_proj.weight_scale");
  ASSERT_NE(scales, nullptr);
  EXPECT_EQ(loaded_bytes_per_rank(*scales, 4), 0u);
}

TEST(WeightManifest, QueryProjectionWithoutLowRank) {
  std::ifstream stream(kModels / "deepseek-v3" / "config.json");
  nlohmann::json file = nlohmann::json::parse(stream);
  file["q_lora_rank"] = nullptr;  // DeepSeek-V2-Lite style
  ModelConfig config = ModelConfig::from_json(file);
  WeightManifest manifest = WeightManifest::build(config, QuantConfig{});
  const ManifestEntry* q = manifest.find("model.layers.0.self_attn.q_proj.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->shape, (Shape{128 * 192, 7168}));
  EXPECT_EQ(q->split, TpSplit::Column);
  EXPECT_EQ(manifest.find("model.layers.0.self_attn.q_a_proj.weight"), nullptr);
  EXPECT_EQ(manifest.find("model.layers.0.self_attn.q_a_layernorm.weight"), nullptr);
}

}  // namespace
}  // namespace rackserve
