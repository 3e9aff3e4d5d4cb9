// The FP8 MLA latent cache on the CPU oracle (ops.h: e4m3 values + one f32 scale per entry).
// The write op's bytes and scales equal a quantization written here from the definition
// (amax / 448 floored, nearest e4m3 by search over every code) of the f32 entry the plain
// cache holds; the read dequantizes exactly (attention over the FP8 cache equals attention
// over an f32 cache holding e4m3 * scale); shapes and dtypes are checked at the boundary;
// PagedKvCache allocates and views both kinds. Fresh random inputs every run.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "models/kv_cache.h"
#include "support/e4m3_definition.h"
#include "support/shared_models.h"

namespace rackserve {
namespace {

using testing::error_of;

constexpr int64_t kLora = 512, kRope = 64, kWidth = kLora + kRope, kPages = 6, kPageSize = 16;

class KvCacheFp8 : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = make_cpu_backend(2);
    rng_.seed(std::random_device{}());
    std::vector<float> inv_freq(kRope / 2);
    for (int64_t i = 0; i < kRope / 2; ++i) inv_freq[i] = std::pow(10000.0f, -2.0f * i / kRope);
    rope_.inv_freq = upload(inv_freq, {kRope / 2});
    rope_.dim = kRope;
    rope_.scale = 1.0f;
    rope_.interleaved = true;
  }

  Tensor upload(std::vector<float>& values, const Shape& shape) {
    return backend_->upload_persistent(Tensor{values.data(), DType::F32, shape, Device{}}, DType::F32);
  }
  Tensor upload_ints(std::vector<int32_t> values) {
    const int64_t count = static_cast<int64_t>(values.size());
    return backend_->upload_persistent(Tensor{values.data(), DType::I32, {count}, Device{}}, DType::I32);
  }
  std::vector<float> normal(int64_t count, float scale) {
    std::normal_distribution<float> distribution(0.0f, scale);
    std::vector<float> values(count);
    for (float& v : values) v = distribution(rng_);
    return values;
  }

  // Writes `tokens` random entries (per-token magnitudes from 1e-3 to 1e3, one all-zero
  // token) at shuffled slots into both caches; returns the slots.
  std::vector<int32_t> write_both(const PagedKvCache& plain, const PagedKvCache& fp8, int64_t tokens) {
    std::vector<float> kv = normal(tokens * kWidth, 1.0f);
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t c = 0; c < kWidth; ++c) kv[t * kWidth + c] *= std::pow(10.0f, static_cast<float>(t % 7) - 3.0f);
    std::fill(kv.begin(), kv.begin() + kWidth, 0.0f);  // token 0: the floor scale
    std::vector<float> weight = normal(kLora, 1.0f);
    std::vector<int32_t> slots(kPages * kPageSize), positions(tokens);
    for (size_t i = 0; i < slots.size(); ++i) slots[i] = static_cast<int32_t>(i);
    std::shuffle(slots.begin(), slots.end(), rng_);
    slots.resize(tokens);
    for (int64_t t = 0; t < tokens; ++t) positions[t] = static_cast<int32_t>(rng_() % 4096);
    MlaCacheWrite write;
    write.kv = upload(kv, {tokens, kWidth});
    write.norm_weight = upload(weight, {kLora});
    write.rope = &rope_;
    write.positions = upload_ints(positions);
    write.slots = upload_ints(slots);
    for (const PagedKvCache* cache : {&plain, &fp8}) {
      write.cache_layer = cache->layer(0);
      write.cache_scales = cache->layer_scales(0);
      backend_->mla_write_cache(write);
    }
    return slots;
  }

  std::unique_ptr<Backend> backend_;
  std::mt19937 rng_;
  RopeTable rope_;
};

TEST_F(KvCacheFp8, WrittenBytesAndScalesAreTheDefinitionOfTheF32Entry) {
  PagedKvCache plain(*backend_, 1, kPages, kPageSize, kWidth);
  PagedKvCache fp8(*backend_, 1, kPages, kPageSize, kWidth, KvCacheDtype::Fp8);
  const std::vector<int32_t> slots = write_both(plain, fp8, 40);
  const float* values = plain.layer(0).as<float>();
  const uint8_t* codes = fp8.layer(0).as<uint8_t>();
  const float* scales = fp8.layer_scales(0).as<float>();
  int64_t nonzero_codes = 0;
  for (size_t t = 0; t < slots.size(); ++t) {
    const int64_t slot = slots[t];
    const float* entry = values + slot * kWidth;
    float amax = 0.0f;
    for (int64_t c = 0; c < kWidth; ++c) amax = std::max(amax, std::fabs(entry[c]));
    const float scale = std::max(amax / 448.0f, 1e-10f / 448.0f);
    ASSERT_EQ(scales[slot], scale) << "token " << t;
    EXPECT_NE(scales[slot], 1.0f) << "token " << t << ": a reader that ignored the scale would read the same";
    for (int64_t c = 0; c < kWidth; ++c) {
      const uint8_t expected = testing::e4m3_code_nearest(static_cast<double>(entry[c] / scale));
      ASSERT_EQ(codes[slot * kWidth + c], expected) << "token " << t << " column " << c << " value " << entry[c];
      nonzero_codes += expected != 0 && expected != 0x80;
    }
  }
  EXPECT_EQ(scales[slots[0]], kMlaCacheMinScale) << "an all-zero entry takes the floor";
  EXPECT_GT(nonzero_codes, 30 * kWidth);
  // Slots no token was written to keep their zero bytes and scales.
  for (int64_t slot = 0; slot < kPages * kPageSize; ++slot) {
    if (std::find(slots.begin(), slots.end(), slot) != slots.end()) continue;
    ASSERT_EQ(scales[slot], 0.0f);
    for (int64_t c = 0; c < kWidth; ++c) ASSERT_EQ(codes[slot * kWidth + c], 0);
  }
}

TEST_F(KvCacheFp8, AttentionReadsTheEntriesAsE4m3TimesScale) {
  PagedKvCache plain(*backend_, 1, kPages, kPageSize, kWidth);
  PagedKvCache fp8(*backend_, 1, kPages, kPageSize, kWidth, KvCacheDtype::Fp8);
  const int64_t context = kPages * kPageSize - 5;
  write_both(plain, fp8, context);
  // The plain cache now holds the dequantized FP8 entries instead.
  PagedKvCache dequantized(*backend_, 1, kPages, kPageSize, kWidth);
  for (int64_t slot = 0; slot < kPages * kPageSize; ++slot)
    for (int64_t c = 0; c < kWidth; ++c)
      dequantized.layer(0).as<float>()[slot * kWidth + c] =
          static_cast<float>(testing::e4m3_value(fp8.layer(0).as<uint8_t>()[slot * kWidth + c])) *
          fp8.layer_scales(0).as<float>()[slot];
  // One sequence over every page in a scrambled order: whichever entry a position names,
  // both caches hold the same value there.
  std::vector<int32_t> pages(kPages);
  for (int64_t b = 0; b < kPages; ++b) pages[b] = static_cast<int32_t>((b * 5 + 3) % kPages);
  const int64_t heads = 3, nope = 16, v_dim = 8, tokens = 4;
  std::vector<int32_t> positions(tokens);
  for (int64_t t = 0; t < tokens; ++t) positions[t] = static_cast<int32_t>(context - tokens + t);
  AttentionBatch batch;
  batch.query_start = upload_ints({0, static_cast<int32_t>(tokens)});
  batch.context_length = upload_ints({static_cast<int32_t>(context)});
  batch.block_table = upload_ints(pages).reshaped({1, kPages});
  batch.positions = upload_ints(positions);
  batch.num_sequences = 1;
  batch.num_tokens = tokens;
  batch.max_context_length = context;
  batch.page_size = kPageSize;
  std::vector<float> q = normal(tokens * heads * (nope + kRope), 1.0f), kv_b = normal(heads * (nope + v_dim) * kLora, 0.05f);
  MlaAttention args;
  args.q = upload(q, {tokens, heads, nope + kRope});
  args.kv_b = upload(kv_b, {heads * (nope + v_dim), kLora});
  args.batch = &batch;
  args.heads = heads;
  args.qk_nope_dim = nope;
  args.rope_dim = kRope;
  args.v_dim = v_dim;
  args.kv_lora_rank = kLora;
  args.softmax_scale = 0.1f;
  backend_->begin_step();
  args.cache_layer = fp8.layer(0);
  args.cache_scales = fp8.layer_scales(0);
  const std::vector<float> from_fp8 = backend_->download_f32(backend_->mla_attention(args));
  args.cache_layer = dequantized.layer(0);
  args.cache_scales = Tensor{};
  const std::vector<float> from_f32 = backend_->download_f32(backend_->mla_attention(args));
  ASSERT_EQ(from_fp8.size(), static_cast<size_t>(tokens * heads * v_dim));
  EXPECT_EQ(from_fp8, from_f32);
  for (float v : from_fp8) ASSERT_TRUE(std::isfinite(v));
}

TEST_F(KvCacheFp8, OpsRejectMismatchedCachesAndScales) {
  PagedKvCache plain(*backend_, 2, kPages, kPageSize, kWidth);
  PagedKvCache fp8(*backend_, 2, kPages, kPageSize, kWidth, KvCacheDtype::Fp8);
  std::vector<float> kv = normal(kWidth, 1.0f), weight = normal(kLora, 1.0f);
  MlaCacheWrite write;
  write.kv = upload(kv, {1, kWidth});
  write.norm_weight = upload(weight, {kLora});
  write.rope = &rope_;
  write.positions = upload_ints({0});
  write.slots = upload_ints({3});
  write.cache_layer = fp8.layer(1);
  EXPECT_NE(error_of([&] { backend_->mla_write_cache(write); }).find("needs F32 scales"), std::string::npos);
  write.cache_scales = fp8.layer_scales(1).reshaped({kPages * kPageSize, 1});
  EXPECT_NE(error_of([&] { backend_->mla_write_cache(write); }).find("needs F32 scales"), std::string::npos);
  write.cache_layer = plain.layer(1);
  write.cache_scales = fp8.layer_scales(1);
  EXPECT_NE(error_of([&] { backend_->mla_write_cache(write); }).find("takes no scales"), std::string::npos);
  write.cache_scales = Tensor{};
  EXPECT_EQ(error_of([&] { backend_->mla_write_cache(write); }), "");
  write.cache_layer = fp8.layer(1);
  write.cache_scales = fp8.layer_scales(1);
  EXPECT_EQ(error_of([&] { backend_->mla_write_cache(write); }), "");
  EXPECT_GT(fp8.layer_scales(1).as<float>()[3], 0.0f);
  EXPECT_EQ(fp8.layer_scales(0).as<float>()[3], 0.0f) << "layer 1 only";
}

TEST_F(KvCacheFp8, PagedKvCacheHoldsValuesAndScalesPerLayer) {
  PagedKvCache plain(*backend_, 3, kPages, kPageSize, kWidth);
  EXPECT_FALSE(plain.fp8());
  EXPECT_EQ(plain.value_dtype(), DType::F32);
  EXPECT_TRUE(plain.layer_scales(2).empty());
  EXPECT_TRUE(plain.scale_storage().empty());

  PagedKvCache fp8(*backend_, 3, kPages, kPageSize, kWidth, KvCacheDtype::Fp8);
  EXPECT_TRUE(fp8.fp8());
  EXPECT_EQ(fp8.value_dtype(), DType::F8_E4M3);
  EXPECT_EQ(fp8.storage().bytes(), static_cast<size_t>(3 * kPages * kPageSize * kWidth));
  EXPECT_EQ(fp8.scale_storage().shape, (Shape{3, kPages, kPageSize}));
  EXPECT_EQ(fp8.layer(2).shape, (Shape{kPages, kPageSize, kWidth}));
  EXPECT_EQ(fp8.layer_scales(2).shape, (Shape{kPages, kPageSize}));
  EXPECT_EQ(fp8.layer(2).as<uint8_t>(), fp8.storage().as<uint8_t>() + 2 * kPages * kPageSize * kWidth);
  EXPECT_EQ(fp8.layer_scales(2).as<float>(), fp8.scale_storage().as<float>() + 2 * kPages * kPageSize);

  // The oracle's attention reads f32 or fp8, so a bf16 cache is refused up front.
  EXPECT_NE(error_of([&] { PagedKvCache(*backend_, 1, 1, 1, kWidth, KvCacheDtype::Bf16); }).find("use auto or fp8"),
            std::string::npos);
  EXPECT_EQ(parse_kv_cache_dtype_option("auto"), std::nullopt);
  EXPECT_EQ(parse_kv_cache_dtype_option("fp8"), KvCacheDtype::Fp8);
  EXPECT_EQ(parse_kv_cache_dtype_option("bf16"), KvCacheDtype::Bf16);
  EXPECT_THROW(parse_kv_cache_dtype_option("int4"), Error);
}

}  // namespace
}  // namespace rackserve
