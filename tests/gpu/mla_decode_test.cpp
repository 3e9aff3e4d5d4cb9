// Split-KV MLA decode (kernels/attention/mla_decode_split_kv.cu) against the CPU backend on
// decode batches: one query per sequence at its last position, pages scattered over a pool
// in which every row no sequence owns (spare pages, the tail of a last page) is NaN and
// every unused block-table entry names a NaN page, so an out-of-bounds read fails. Fresh
// random inputs each run (the seed is printed); GPU step outputs are poisoned with NaN.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "core/dtype.h"
#include "rackserve/kernels/mla_decode_params.h"
#include "rackserve/kernels/mla_params.h"

namespace rackserve {
namespace {

constexpr int64_t kPageSize = 64;
// bf16 q_latent and softmax weights in the MMA, bf16 output rounding (~2e-3).
constexpr double kTolerance = 1e-2;

struct MlaShape {
  int64_t heads, lora, rope, nope, v;
};
MlaShape deepseek(int64_t heads) { return {heads, 512, 64, 128, 128}; }

class MlaDecodeTest : public ::testing::Test {
 protected:
  struct Pair {
    Tensor cpu, gpu;
  };
  // Sequences s = 0.. of a paged cache: contexts[s] positions in pages table[s * max_blocks + b].
  struct PagedCache {
    std::vector<int32_t> contexts, table;
    int64_t max_blocks = 0, width = 0;
    Pair cache;
    int64_t page_size = kPageSize;
  };
  // One forward call's inputs on both backends, for a batch of sequences of a PagedCache.
  struct DecodeBatch {
    Pair query_start, context, table, slots, positions;
    AttentionBatch cpu, gpu;
  };

  void SetUp() override {
    ASSERT_TRUE(cuda_device_available()) << "the gpu tests need a CUDA device";
    cpu_ = make_cpu_backend(0);
    gpu_ = make_cuda_backend(CudaBackendOptions{0, /*poison_step_allocations=*/true});
    static const uint64_t seed = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    rng_.seed(seed + ::testing::UnitTest::GetInstance()->random_seed());
    std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  }

  std::vector<float> random(int64_t count, float scale = 1.0f) {
    std::normal_distribution<float> normal(0.0f, scale);
    std::vector<float> values(count);
    for (float& value : values) value = bf16_to_f32(f32_to_bf16(normal(rng_)));
    return values;
  }
  Pair upload(std::vector<float>& values, const Shape& shape) {
    Tensor host{values.data(), DType::F32, shape, Device{}};
    return {cpu_->upload_persistent(host, DType::F32), gpu_->upload_persistent(host, DType::BF16)};
  }
  Pair upload_ints(std::vector<int32_t> values, const Shape& shape) {
    Tensor host{values.data(), DType::I32, shape, Device{}};
    return {cpu_->upload_persistent(host, DType::I32), gpu_->upload_persistent(host, DType::I32)};
  }
  double relative_error(const Tensor& cpu, const Tensor& gpu) {
    auto expected = cpu_->download_f32(cpu), actual = gpu_->download_f32(gpu);
    EXPECT_EQ(expected.size(), actual.size());
    double difference = 0.0, reference = 0.0;
    for (size_t i = 0; i < expected.size() && i < actual.size(); ++i) {
      if (std::isnan(actual[i]) || std::isnan(expected[i])) return INFINITY;
      difference += (actual[i] - expected[i]) * double(actual[i] - expected[i]);
      reference += double(expected[i]) * expected[i];
    }
    return std::sqrt(difference / std::max(reference, 1e-30));
  }

  // Pages are a shuffled pool with a quarter spare; every row outside a context stays NaN.
  PagedCache make_cache(const std::vector<int32_t>& contexts, int64_t width, int64_t page_size = kPageSize) {
    PagedCache paged{contexts, {}, 0, width, {}, page_size};
    int64_t needed = 0;
    for (int32_t c : contexts) {
      needed += (c + page_size - 1) / page_size;
      paged.max_blocks = std::max<int64_t>(paged.max_blocks, (c + page_size - 1) / page_size + 1);
    }
    const int64_t pages = needed + needed / 4 + 1;
    std::vector<int32_t> order(pages);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng_);
    const int32_t nan_page = order.back();  // never owned
    std::vector<float> values(pages * page_size * width, NAN);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    int64_t next = 0;
    for (int32_t c : contexts) {
      for (int64_t b = 0; b < paged.max_blocks; ++b)
        paged.table.push_back(b < (c + page_size - 1) / page_size ? order[next++] : nan_page);
      const int32_t* row = paged.table.data() + paged.table.size() - paged.max_blocks;
      for (int64_t position = 0; position < c; ++position) {
        float* entry = values.data() + (row[position / page_size] * page_size + position % page_size) * width;
        for (int64_t i = 0; i < width; ++i) entry[i] = bf16_to_f32(f32_to_bf16(normal(rng_)));
      }
    }
    paged.cache = upload(values, {pages, page_size, width});
    return paged;
  }

  // A decode step for `sequences` of the cache: one token each at position context - 1.
  DecodeBatch make_batch(const PagedCache& paged, const std::vector<int>& sequences, bool set_max_context) {
    std::vector<int32_t> query_start{0}, context, table, slots, positions;
    int32_t longest = 0;
    for (int s : sequences) {
      const int32_t c = paged.contexts[s];
      query_start.push_back(static_cast<int32_t>(positions.size() + 1));
      context.push_back(c);
      table.insert(table.end(), paged.table.begin() + s * paged.max_blocks, paged.table.begin() + (s + 1) * paged.max_blocks);
      positions.push_back(c - 1);
      const int64_t page = paged.page_size;
      slots.push_back(static_cast<int32_t>(paged.table[s * paged.max_blocks + (c - 1) / page] * page + (c - 1) % page));
      longest = std::max(longest, c);
    }
    const int64_t n = static_cast<int64_t>(sequences.size());
    DecodeBatch batch{upload_ints(query_start, {n + 1}), upload_ints(context, {n}),
                      upload_ints(table, {n, paged.max_blocks}), upload_ints(slots, {n}), upload_ints(positions, {n}),
                      {}, {}};
    for (bool on_gpu : {false, true}) {
      AttentionBatch& b = on_gpu ? batch.gpu : batch.cpu;
      b.query_start = on_gpu ? batch.query_start.gpu : batch.query_start.cpu;
      b.context_length = on_gpu ? batch.context.gpu : batch.context.cpu;
      b.block_table = on_gpu ? batch.table.gpu : batch.table.cpu;
      b.slots = on_gpu ? batch.slots.gpu : batch.slots.cpu;
      b.positions = on_gpu ? batch.positions.gpu : batch.positions.cpu;
      b.num_sequences = b.num_tokens = n;
      b.max_context_length = set_max_context ? longest : 0;  // 0: the GPU bounds keys by the block table
      b.page_size = paged.page_size;
    }
    return batch;
  }

  MlaAttention attention_args(const MlaShape& s, const Pair& q, const Pair& kv_b, const PagedCache& paged,
                              const AttentionBatch& batch, bool on_gpu) {
    MlaAttention args;
    args.q = on_gpu ? q.gpu : q.cpu;
    args.kv_b = on_gpu ? kv_b.gpu : kv_b.cpu;
    args.cache_layer = on_gpu ? paged.cache.gpu : paged.cache.cpu;
    args.batch = &batch;
    args.heads = s.heads;
    args.qk_nope_dim = s.nope;
    args.rope_dim = s.rope;
    args.v_dim = s.v;
    args.kv_lora_rank = s.lora;
    args.softmax_scale = 1.0f / std::sqrt(float(s.nope + s.rope));
    return args;
  }

  // CPU vs CUDA backend mla_attention on a decode batch with fresh q and kv_b.
  void expect_backends_agree(const MlaShape& s, const PagedCache& paged, const std::vector<int>& sequences,
                             bool set_max_context) {
    const int64_t n = static_cast<int64_t>(sequences.size());
    DecodeBatch batch = make_batch(paged, sequences, set_max_context);
    auto q_values = random(n * s.heads * (s.nope + s.rope));
    auto kv_b_values = random(s.heads * (s.nope + s.v) * s.lora, 1.0f / std::sqrt(float(s.lora)));
    Pair q = upload(q_values, {n, s.heads, s.nope + s.rope}), kv_b = upload(kv_b_values, {s.heads * (s.nope + s.v), s.lora});
    cpu_->begin_step();
    gpu_->begin_step();
    Tensor cpu_out = cpu_->mla_attention(attention_args(s, q, kv_b, paged, batch.cpu, false));
    Tensor gpu_out = gpu_->mla_attention(attention_args(s, q, kv_b, paged, batch.gpu, true));
    const double error = relative_error(cpu_out, gpu_out);
    std::printf("heads %3lld lora %3lld batch %3lld context[0] %6d: relative error %.2e\n", (long long)s.heads,
                (long long)s.lora, (long long)n, paged.contexts[sequences[0]], error);
    EXPECT_LT(error, kTolerance)
        << "heads " << s.heads << " lora " << s.lora << " batch " << n << " first context " << paged.contexts[sequences[0]];
  }

  std::unique_ptr<Backend> cpu_, gpu_;
  std::mt19937_64 rng_;
};

TEST_F(MlaDecodeTest, BatchOneEveryContextAndHeadCount) {
  const std::vector<int32_t> contexts{1, 63, 64, 65, 1000, 4097, 33000};
  PagedCache paged = make_cache(contexts, 512 + 64);
  for (int64_t heads : {128, 64, 32, 16, 8})
    for (int s = 0; s < static_cast<int>(contexts.size()); ++s)
      expect_backends_agree(deepseek(heads), paged, {s}, /*set_max_context=*/false);
}

// A page size that is not a power of two takes the kernel's division page lookup, and a
// 32-key tile then straddles pages (48 = 32 + 16).
TEST_F(MlaDecodeTest, PageSizeNotPowerOfTwo) {
  const std::vector<int32_t> contexts{1, 47, 48, 49, 1000, 4097};
  PagedCache paged = make_cache(contexts, 512 + 64, 48);
  std::vector<int> all(contexts.size());
  std::iota(all.begin(), all.end(), 0);
  for (int64_t heads : {128, 16}) {
    expect_backends_agree(deepseek(heads), paged, all, /*set_max_context=*/true);
    expect_backends_agree(deepseek(heads), paged, {5}, /*set_max_context=*/false);
  }
}

TEST_F(MlaDecodeTest, Batch128MixedLengths) {
  std::vector<int32_t> contexts{1, 63, 64, 65, 1000, 4097, 33000};
  std::uniform_int_distribution<int32_t> length(1, 600);
  while (contexts.size() < 128) contexts.push_back(length(rng_));
  std::shuffle(contexts.begin(), contexts.end(), rng_);
  PagedCache paged = make_cache(contexts, 512 + 64);
  std::vector<int> all(128);
  std::iota(all.begin(), all.end(), 0);
  for (int64_t heads : {128, 64, 16}) expect_backends_agree(deepseek(heads), paged, all, /*set_max_context=*/true);
}

// Shapes outside the mma fast path decode on the per-head kernel.
TEST_F(MlaDecodeTest, TinyShapeUsesPerHeadKernel) {
  const MlaShape tiny{4, 32, 16, 32, 24};
  EXPECT_FALSE(kernels::mla_decode_supported(tiny.lora, tiny.rope, tiny.nope));
  EXPECT_TRUE(kernels::mla_decode_supported(512, 64, 128));
  const std::vector<int32_t> contexts{1, 63, 64, 65, 1000, 4097};
  PagedCache paged = make_cache(contexts, tiny.lora + tiny.rope);
  std::vector<int> all(contexts.size());
  std::iota(all.begin(), all.end(), 0);
  expect_backends_agree(tiny, paged, all, true);
  expect_backends_agree(tiny, paged, {5}, false);
}

// The launcher with forced configs (what the decode benchmark uses), including plans that
// underestimate the context: the last split of a query takes the remainder.
TEST_F(MlaDecodeTest, ForcedSplitCounts) {
  const std::vector<int32_t> contexts{4097, 65, 1000, 1};
  PagedCache paged = make_cache(contexts, 512 + 64);
  const std::vector<int> all{0, 1, 2, 3};
  const int64_t n = 4;
  DecodeBatch batch = make_batch(paged, all, true);
  for (int64_t heads : {128, 16}) {
    const MlaShape s = deepseek(heads);
    auto q_values = random(n * s.heads * (s.nope + s.rope));
    auto kv_b_values = random(s.heads * (s.nope + s.v) * s.lora, 1.0f / std::sqrt(float(s.lora)));
    Pair q = upload(q_values, {n, s.heads, s.nope + s.rope}), kv_b = upload(kv_b_values, {s.heads * (s.nope + s.v), s.lora});
    cpu_->begin_step();
    Tensor cpu_out = cpu_->mla_attention(attention_args(s, q, kv_b, paged, batch.cpu, false));

    std::vector<kernels::MlaDecodeConfig> configs{{1, 4112}, {2, 2064}, {7, 592}, {256, 16}, {3, 16},
                                                  kernels::plan_mla_decode(n, heads, 4097)};
    for (const kernels::MlaDecodeConfig& config : configs) {
      Tensor q_latent = gpu_->allocate_persistent(DType::F32, {n, s.heads, s.lora});
      Tensor out_latent = gpu_->allocate_persistent(DType::F32, {n, s.heads, s.lora});
      Tensor output = gpu_->allocate_persistent(DType::BF16, {n, s.heads, s.v});
      Tensor workspace = gpu_->allocate_persistent(
          DType::F32, {std::max<int64_t>(1, kernels::mla_decode_workspace_floats(n, s.heads, s.lora, config))});
      for (const Tensor& t : {q_latent, out_latent, output, workspace}) gpu_->fill(t, NAN);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);

      kernels::MlaAttentionParams steps{};
      steps.q = q.gpu.data;
      steps.kv_b = kv_b.gpu.data;
      steps.cache = paged.cache.gpu.data;
      steps.query_start = batch.query_start.gpu.as<int32_t>();
      steps.block_table = batch.table.gpu.as<int32_t>();
      steps.positions = batch.positions.gpu.as<int32_t>();
      steps.q_latent = q_latent.as<float>();
      steps.out_latent = out_latent.as<float>();
      steps.output = output.data;
      steps.tokens = n;
      steps.sequences = n;
      steps.heads = s.heads;
      steps.nope = s.nope;
      steps.rope = s.rope;
      steps.v = s.v;
      steps.lora = s.lora;
      steps.page_size = kPageSize;
      steps.max_blocks = paged.max_blocks;
      steps.softmax_scale = 1.0f / std::sqrt(float(s.nope + s.rope));
      kernels::MlaDecodeParams decode{steps.q_latent, steps.q, steps.cache, steps.query_start, steps.block_table,
                                      steps.positions, steps.out_latent, workspace.as<float>(),
                                      workspace.as<float>() + n * config.splits * s.heads * s.lora,
                                      n, n, s.heads, s.nope, s.rope, s.lora, kPageSize, paged.max_blocks,
                                      steps.softmax_scale, kernels::MlaCacheType::BF16, nullptr, nullptr, 0};
      ASSERT_EQ(kernels::launch_mla_q_latent(steps, nullptr), 0);
      ASSERT_EQ(kernels::launch_mla_decode_split_kv(decode, config, nullptr), 0)
          << "splits " << config.splits << " keys " << config.keys_per_split;
      ASSERT_EQ(kernels::launch_mla_output(steps, nullptr), 0);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      const double error = relative_error(cpu_out, output);
      std::printf("heads %3lld splits %3d keys per split %4d: relative error %.2e\n", (long long)heads, config.splits,
                  config.keys_per_split, error);
      EXPECT_LT(error, kTolerance)
          << "heads " << heads << " splits " << config.splits << " keys per split " << config.keys_per_split;
    }
  }
}

}  // namespace
}  // namespace rackserve
