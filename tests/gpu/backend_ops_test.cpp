// Every CUDA op against the CPU backend (the float32 oracle) on fresh random inputs each
// run (the seed is printed), with step allocations poisoned with NaN so an unwritten
// output fails, and NaN in every KV page a sequence does not own so an out-of-bounds
// read fails. Inputs are rounded to bf16 first, so both backends see identical values.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <functional>
#include <random>
#include <tuple>
#include <utility>
#include <vector>

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include "backend/backend.h"
#include "backend/cpu/fp8_linear.h"
#include "backend/cuda/cuda_backend.h"
#include "core/dtype.h"
#include "support/test_random.h"

namespace rackserve {
namespace {

using testing::run_seed;

class OpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(cuda_device_available()) << "the gpu tests need a CUDA device";
    cpu_ = make_cpu_backend(0);
    gpu_ = make_cuda_backend(CudaBackendOptions{0, /*poison_step_allocations=*/true});
    rng_.seed(run_seed() + ::testing::UnitTest::GetInstance()->random_seed());
    std::printf("seed %llu\n", static_cast<unsigned long long>(run_seed()));
  }

  // Random bf16-representable values with the given scale.
  std::vector<float> random(int64_t count, float scale = 1.0f) {
    std::normal_distribution<float> normal(0.0f, scale);
    std::vector<float> values(count);
    for (float& value : values) value = bf16_to_f32(f32_to_bf16(normal(rng_)));
    return values;
  }

  struct Pair {
    Tensor cpu, gpu;
  };
  // The same values on both backends; on the GPU as `gpu_dtype`.
  Pair upload(std::vector<float>& values, const Shape& shape, DType gpu_dtype = DType::BF16) {
    Tensor host{values.data(), DType::F32, shape, Device{}};
    return {cpu_->upload_persistent(host, DType::F32), gpu_->upload_persistent(host, gpu_dtype)};
  }
  Pair upload_ints(std::vector<int32_t>& values, const Shape& shape) {
    Tensor host{values.data(), DType::I32, shape, Device{}};
    return {cpu_->upload_persistent(host, DType::I32), gpu_->upload_persistent(host, DType::I32)};
  }

  // One step of paged attention over several sequences, given per sequence as (context after
  // the step, tokens new in this step). Sequence i owns pages i, i + 8, i + 16, ... (scattered,
  // never shared); the positions before its new tokens hold random `width`-value entries in
  // cache_values, every other entry is NaN, so an out-of-bounds read shows.
  struct PagedStep {
    std::vector<int32_t> query_start{0}, context, positions, slots, block_table;
    std::vector<float> cache_values;
    int64_t sequences = 0, max_blocks = 0, page_size = 0;
    int64_t tokens() const { return static_cast<int64_t>(positions.size()); }
  };
  PagedStep paged_step(const std::vector<std::pair<int32_t, int32_t>>& sequences, int64_t pages, int64_t page_size,
                       int64_t max_blocks, int64_t width) {
    PagedStep step;
    step.sequences = static_cast<int64_t>(sequences.size());
    step.max_blocks = max_blocks;
    step.page_size = page_size;
    step.cache_values.assign(pages * page_size * width, NAN);
    for (size_t i = 0; i < sequences.size(); ++i) {
      auto [length, fresh] = sequences[i];
      for (int64_t b = 0; b < max_blocks; ++b) step.block_table.push_back(static_cast<int32_t>(i + 8 * b));
      for (int32_t p = 0; p < length; ++p) {
        int32_t slot = step.block_table[i * max_blocks + p / page_size] * page_size + p % page_size;
        if (p < length - fresh) {  // cached before this step
          auto entry = random(width);
          std::copy(entry.begin(), entry.end(), step.cache_values.begin() + int64_t(slot) * width);
        } else {
          step.positions.push_back(p);
          step.slots.push_back(slot);
        }
      }
      step.query_start.push_back(static_cast<int32_t>(step.positions.size()));
      step.context.push_back(length);
    }
    return step;
  }
  // The step's metadata on both backends, and the AttentionBatch of either.
  struct PagedTensors {
    Pair query_start, context, block_table, slots, positions;
    const PagedStep* step = nullptr;
    AttentionBatch batch(bool on_gpu) const {
      AttentionBatch batch;
      batch.query_start = on_gpu ? query_start.gpu : query_start.cpu;
      batch.context_length = on_gpu ? context.gpu : context.cpu;
      batch.block_table = on_gpu ? block_table.gpu : block_table.cpu;
      batch.slots = on_gpu ? slots.gpu : slots.cpu;
      batch.positions = on_gpu ? positions.gpu : positions.cpu;
      batch.num_sequences = step->sequences;
      batch.num_tokens = step->tokens();
      batch.page_size = step->page_size;
      return batch;
    }
  };
  PagedTensors upload_step(PagedStep& step) {
    return {upload_ints(step.query_start, {int64_t(step.query_start.size())}),
            upload_ints(step.context, {int64_t(step.context.size())}),
            upload_ints(step.block_table, {step.sequences, step.max_blocks}), upload_ints(step.slots, {step.tokens()}),
            upload_ints(step.positions, {step.tokens()}), &step};
  }

  // A paged cache [pages, page_size, width] of `values` quantized to e4m3 by the CPU rule (the
  // contract), the same bytes and scales on both backends; entries whose first value is NaN
  // (unowned) get NaN codes and scales. Returns {cache, scales}.
  std::pair<Pair, Pair> e4m3_cache(const std::vector<float>& values, int64_t pages, int64_t page_size, int64_t width) {
    std::vector<uint8_t> codes(values.size(), 0x7f);  // e4m3 NaN
    std::vector<float> scale_values(pages * page_size, NAN);
    for (int64_t slot = 0; slot < pages * page_size; ++slot)
      if (!std::isnan(values[slot * width]))
        scale_values[slot] =
            cpu::quantize_e4m3_group_codes(&values[slot * width], width, kMlaCacheMinScale, &codes[slot * width]);
    const Shape shape{pages, page_size, width};
    Pair cache{cpu_->allocate_persistent(DType::F8_E4M3, shape), gpu_->allocate_persistent(DType::F8_E4M3, shape)};
    std::memcpy(cache.cpu.data, codes.data(), codes.size());
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);  // the backend's stream is non-blocking
    EXPECT_EQ(cudaMemcpy(cache.gpu.data, codes.data(), codes.size(), cudaMemcpyHostToDevice), cudaSuccess);
    return {cache, upload(scale_values, {pages, page_size}, DType::F32)};
  }
  // Makes the CPU copy of a cache (bf16 or e4m3 on the GPU) hold exactly the GPU's values.
  void copy_gpu_cache_to_cpu(const Pair& cache, const Pair& scales) {
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    if (cache.gpu.dtype == DType::F8_E4M3) {
      EXPECT_EQ(cudaMemcpy(cache.cpu.data, cache.gpu.data, cache.cpu.bytes(), cudaMemcpyDeviceToHost), cudaSuccess);
      const std::vector<float> scale_values = gpu_->download_f32(scales.gpu);
      std::memcpy(scales.cpu.data, scale_values.data(), scale_values.size() * sizeof(float));
      return;
    }
    const std::vector<float> values = gpu_->download_f32(cache.gpu);
    std::memcpy(cache.cpu.data, values.data(), values.size() * sizeof(float));
  }

  // Sigmoid routing of random logits on both backends (one step begun on each), checked equal.
  std::pair<MoeRouting, MoeRouting> route_on_both(int64_t tokens, int64_t experts, int64_t top_k, float scaling) {
    auto logits_values = random(tokens * experts), bias_values = random(experts, 0.05f);
    Pair logits = upload(logits_values, {tokens, experts}, DType::F32);
    Pair bias = upload(bias_values, {experts}, DType::F32);
    MoeRouterParams params{top_k, 1, 1, true, true, true, scaling, 0};
    cpu_->begin_step();
    gpu_->begin_step();
    MoeRouting cpu_routing = cpu_->moe_route(logits.cpu, bias.cpu, params);
    MoeRouting gpu_routing = gpu_->moe_route(logits.gpu, bias.gpu, params);
    EXPECT_EQ(cpu_->download_f32(cpu_routing.expert_ids), gpu_->download_f32(gpu_routing.expert_ids));
    return {cpu_routing, gpu_routing};
  }

  // ||gpu - cpu|| / ||cpu||; NaN anywhere counts as infinite error.
  double relative_error(const Tensor& cpu, const Tensor& gpu) {
    auto expected = cpu_->download_f32(cpu);
    auto actual = gpu_->download_f32(gpu);
    EXPECT_EQ(expected.size(), actual.size());
    double difference = 0.0, reference = 0.0;
    for (size_t i = 0; i < expected.size() && i < actual.size(); ++i) {
      if (std::isnan(actual[i]) || std::isnan(expected[i])) return INFINITY;
      difference += (actual[i] - expected[i]) * double(actual[i] - expected[i]);
      reference += double(expected[i]) * expected[i];
    }
    return std::sqrt(difference / std::max(reference, 1e-30));
  }

  std::unique_ptr<Backend> cpu_, gpu_;
  std::mt19937_64 rng_;
};

// bf16 output rounding alone gives ~2e-3; accumulation order differences stay far below.
constexpr double kBf16Tolerance = 8e-3;

TEST_F(OpsTest, LinearOnRealProjectionShapes) {
  // (m, n, k): DeepSeek-V3 q_a, kv_a, q_b, o_proj per GPU at TP=8, a dense gate_up slice; odd m;
  // m <= 64 runs the small-M tensor-core kernel (every token-tile count and row_warps), 70 the
  // tiled one; k = 1000 ends inside a 64-wide K block.
  for (auto [m, n, k] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
           {1, 1536, 7168}, {3, 576, 7168}, {8, 7168, 2048}, {13, 4608, 7168}, {17, 576, 7168}, {32, 1536, 7168},
           {33, 7168, 2048}, {64, 576, 7168}, {1, 24576, 1536}, {5, 129, 1000}, {64, 512, 1536}, {70, 96, 64}}) {
    auto x_values = random(m * k), w_values = random(n * k, 1.0f / std::sqrt(float(k)));
    Pair x = upload(x_values, {m, k}), w = upload(w_values, {n, k});
    cpu_->begin_step();
    gpu_->begin_step();
    EXPECT_LT(relative_error(cpu_->linear(x.cpu, w.cpu), gpu_->linear(x.gpu, w.gpu)), kBf16Tolerance) << m << "x" << n << "x" << k;
    EXPECT_LT(relative_error(cpu_->linear_f32(x.cpu, w.cpu), gpu_->linear_f32(x.gpu, w.gpu)), 1e-5) << m << "x" << n;
  }
}

TEST_F(OpsTest, NormsResidualSiluGather) {
  const int64_t rows = 37, width = 7168;
  auto x_values = random(rows * width), w_values = random(width, 0.2f), r_values = random(rows * width);
  for (float& w : w_values) w = bf16_to_f32(f32_to_bf16(1.0f + w));
  Pair x = upload(x_values, {rows, width}), w = upload(w_values, {width});
  Pair residual = upload(r_values, {rows, width}, DType::F32);
  cpu_->begin_step();
  gpu_->begin_step();
  EXPECT_LT(relative_error(cpu_->rms_norm(x.cpu, w.cpu, 1e-6f), gpu_->rms_norm(x.gpu, w.gpu, 1e-6f)), kBf16Tolerance);
  Tensor cpu_normed = cpu_->add_rms_norm(residual.cpu, x.cpu, w.cpu, 1e-6f);
  Tensor gpu_normed = gpu_->add_rms_norm(residual.gpu, x.gpu, w.gpu, 1e-6f);
  EXPECT_LT(relative_error(cpu_normed, gpu_normed), kBf16Tolerance);
  EXPECT_LT(relative_error(residual.cpu, residual.gpu), 1e-6) << "the residual sum is kept in float32";
  EXPECT_LT(relative_error(cpu_->silu_mul(x.cpu), gpu_->silu_mul(x.gpu)), kBf16Tolerance);
  std::vector<int32_t> rows_wanted{36, 0, 5, 5};
  Pair indices = upload_ints(rows_wanted, {4});
  EXPECT_EQ(relative_error(cpu_->gather_rows(x.cpu, indices.cpu), gpu_->gather_rows(x.gpu, indices.gpu)), 0.0);
  std::vector<int32_t> ids{3, 0, 36, 17};
  Pair token_ids = upload_ints(ids, {4});
  EXPECT_EQ(relative_error(cpu_->embedding(x.cpu, token_ids.cpu), gpu_->embedding(x.gpu, token_ids.gpu)), 0.0);
}

TEST_F(OpsTest, RopeBothLayouts) {
  const int64_t tokens = 9, heads = 16, nope = 128, dim = 64;
  std::vector<float> inv_freq(dim / 2);
  for (int64_t i = 0; i < dim / 2; ++i) inv_freq[i] = std::pow(10000.0f, -2.0f * i / dim);
  std::vector<int32_t> position_values{0, 1, 2, 63, 64, 65, 1000, 4095, 40000};
  for (bool interleaved : {true, false}) {
    auto q_values = random(tokens * heads * (nope + dim));
    Pair q = upload(q_values, {tokens, heads, nope + dim}), frequencies = upload(inv_freq, {dim / 2}, DType::F32);
    Pair positions = upload_ints(position_values, {tokens});
    RopeTable cpu_rope{frequencies.cpu, dim, 1.07f, interleaved}, gpu_rope{frequencies.gpu, dim, 1.07f, interleaved};
    cpu_->rope_inplace(q.cpu, nope, cpu_rope, positions.cpu);
    gpu_->rope_inplace(q.gpu, nope, gpu_rope, positions.gpu);
    EXPECT_LT(relative_error(q.cpu, q.gpu), kBf16Tolerance) << "interleaved " << interleaved;
  }
}

// Paged MLA: several sequences with different lengths and new-token counts (decode and
// chunked prefill), pages scattered, every page no sequence owns filled with NaN.
TEST_F(OpsTest, MlaCacheWriteAndAttention) {
  const int64_t page_size = 64, pages = 40;
  struct Shape5 { int64_t heads, lora, rope, nope, v; };
  for (Shape5 s : {Shape5{16, 512, 64, 128, 128}, Shape5{4, 32, 16, 32, 24}}) {
    const int64_t width = s.lora + s.rope;
    PagedStep step = paged_step({{1, 1}, {130, 1}, {77, 13}, {200, 64}, {5, 5}}, pages, page_size, 4, width);
    const int64_t tokens = step.tokens();
    Pair cache = upload(step.cache_values, {pages, page_size, width});
    auto kv_values = random(tokens * width), norm_values = random(s.lora, 0.1f);
    for (float& w : norm_values) w = bf16_to_f32(f32_to_bf16(1.0f + w));
    auto q_values = random(tokens * s.heads * (s.nope + s.rope));
    auto kv_b_values = random(s.heads * (s.nope + s.v) * s.lora, 1.0f / std::sqrt(float(s.lora)));
    std::vector<float> inv_freq(s.rope / 2);
    for (int64_t i = 0; i < s.rope / 2; ++i) inv_freq[i] = std::pow(10000.0f, -2.0f * i / s.rope);
    Pair kv = upload(kv_values, {tokens, width}), norm = upload(norm_values, {s.lora});
    Pair q = upload(q_values, {tokens, s.heads, s.nope + s.rope});
    Pair kv_b = upload(kv_b_values, {s.heads * (s.nope + s.v), s.lora});
    Pair frequencies = upload(inv_freq, {s.rope / 2}, DType::F32);
    const PagedTensors paged = upload_step(step);
    RopeTable cpu_rope{frequencies.cpu, s.rope, 1.0f, true}, gpu_rope{frequencies.gpu, s.rope, 1.0f, true};

    auto write = [&](Backend& backend, Pair& tensors_kv, Pair& tensors_norm, const RopeTable& rope, bool on_gpu) {
      MlaCacheWrite args;
      args.kv = on_gpu ? tensors_kv.gpu : tensors_kv.cpu;
      args.norm_weight = on_gpu ? tensors_norm.gpu : tensors_norm.cpu;
      args.norm_eps = 1e-6f;
      args.rope = &rope;
      args.positions = on_gpu ? paged.positions.gpu : paged.positions.cpu;
      args.slots = on_gpu ? paged.slots.gpu : paged.slots.cpu;
      args.cache_layer = on_gpu ? cache.gpu : cache.cpu;
      backend.mla_write_cache(args);
    };
    cpu_->begin_step();
    gpu_->begin_step();
    write(*cpu_, kv, norm, cpu_rope, false);
    write(*gpu_, kv, norm, gpu_rope, true);

    auto attend = [&](Backend& backend, bool on_gpu, AttentionBatch& batch) {
      batch = paged.batch(on_gpu);
      MlaAttention args;
      args.q = on_gpu ? q.gpu : q.cpu;
      args.kv_b = on_gpu ? kv_b.gpu : kv_b.cpu;
      args.cache_layer = on_gpu ? cache.gpu : cache.cpu;
      args.batch = &batch;
      args.heads = s.heads;
      args.qk_nope_dim = s.nope;
      args.rope_dim = s.rope;
      args.v_dim = s.v;
      args.kv_lora_rank = s.lora;
      args.softmax_scale = 1.0f / std::sqrt(float(s.nope + s.rope));
      return backend.mla_attention(args);
    };
    AttentionBatch cpu_batch, gpu_batch;
    Tensor cpu_out = attend(*cpu_, false, cpu_batch);
    Tensor gpu_out = attend(*gpu_, true, gpu_batch);
    EXPECT_LT(relative_error(cpu_out, gpu_out), 1e-2) << "heads " << s.heads << " lora " << s.lora;
    // The written cache entries (only the new slots; the rest stays NaN on both sides).
    auto cpu_cache = cpu_->download_f32(cache.cpu), gpu_cache = gpu_->download_f32(cache.gpu);
    double difference = 0, reference = 0;
    for (int32_t slot : step.slots)
      for (int64_t c = 0; c < width; ++c) {
        double e = cpu_cache[int64_t(slot) * width + c], a = gpu_cache[int64_t(slot) * width + c];
        difference += (a - e) * (a - e);
        reference += e * e;
      }
    EXPECT_LT(std::sqrt(difference / reference), kBf16Tolerance);
  }
}

TEST_F(OpsTest, BiasAndNormGivenMeanSquares) {
  const int64_t rows = 5, width = 384;
  auto x_values = random(rows * width), bias_values = random(width, 0.1f), weight_values = random(width, 0.1f);
  for (float& w : weight_values) w = bf16_to_f32(f32_to_bf16(1.0f + w));
  Pair x = upload(x_values, {rows, width}), bias = upload(bias_values, {width}), weight = upload(weight_values, {width});
  cpu_->add_bias(x.cpu, bias.cpu);
  gpu_->add_bias(x.gpu, bias.gpu);
  EXPECT_LT(relative_error(x.cpu, x.gpu), kBf16Tolerance);
  // A row split over 3 ranks: each part's mean over the whole width, summed, normalises it.
  Tensor cpu_mean = cpu_->mean_squares(x.cpu, 3 * width), gpu_mean = gpu_->mean_squares(x.gpu, 3 * width);
  EXPECT_LT(relative_error(cpu_mean, gpu_mean), 1e-3);
  EXPECT_LT(relative_error(cpu_->rms_norm_given_mean_squares(x.cpu, cpu_mean, weight.cpu, 1e-6f),
                           gpu_->rms_norm_given_mean_squares(x.gpu, gpu_mean, weight.gpu, 1e-6f)),
            kBf16Tolerance);
}

TEST_F(OpsTest, GqaCacheWriteAndAttention) {
  const int64_t page_size = 64, max_blocks = 24, pages = 8 * max_blocks;
  struct Heads { int64_t heads, kv_heads, head_dim; };
  // (context after the step, tokens new in this step): a mixed prefill / decode batch (the
  // tiled prefill kernel, bf16 and e4m3; the per-head one for head_dim 256) with three
  // query tiles in its last sequence, and a pure decode batch up to 1500 keys (the split-KV
  // kernel; the per-head one for the 32-head group).
  const std::vector<std::vector<std::pair<int32_t, int32_t>>> batches = {
      {{1, 1}, {130, 1}, {77, 13}, {200, 64}, {5, 5}, {300, 150}}, {{1, 1}, {300, 1}, {1500, 1}, {64, 1}, {1025, 1}}};
  // GLM-4.x at TP 4 (24 heads over 2 KV heads of 128), MiniMax-M2 at TP 8 (6 over 1), MHA of 64,
  // the largest head_dim the kernels take, and a group of 32 (beyond the split kernel's 16).
  // Each batch and shape with a bf16 cache and with an e4m3 cache (+ an f32 scale per entry).
  for (bool fp8 : {false, true})
  for (const auto& sequences : batches)
  for (Heads h : {Heads{24, 2, 128}, Heads{6, 1, 128}, Heads{4, 4, 64}, Heads{8, 2, 256}, Heads{32, 1, 64}}) {
    const int64_t width = 2 * h.kv_heads * h.head_dim;
    PagedStep step = paged_step(sequences, pages, page_size, max_blocks, width);
    const int64_t tokens = step.tokens();
    std::vector<float>& cache_values = step.cache_values;
    Pair cache = upload(cache_values, {pages, page_size, width});
    Pair scales;
    // The cached entries quantized on the CPU (its rule is the contract), the same bytes on both.
    if (fp8) std::tie(cache, scales) = e4m3_cache(cache_values, pages, page_size, width);
    auto k_values = random(tokens * h.kv_heads * h.head_dim), v_values = random(tokens * h.kv_heads * h.head_dim);
    auto q_values = random(tokens * h.heads * h.head_dim);
    Pair k = upload(k_values, {tokens, h.kv_heads, h.head_dim}), v = upload(v_values, {tokens, h.kv_heads, h.head_dim});
    Pair q = upload(q_values, {tokens, h.heads, h.head_dim});
    const PagedTensors paged = upload_step(step);
    cpu_->begin_step();
    gpu_->begin_step();
    for (bool on_gpu : {false, true}) {
      GqaCacheWrite write;
      write.k = on_gpu ? k.gpu : k.cpu;
      write.v = on_gpu ? v.gpu : v.cpu;
      write.slots = on_gpu ? paged.slots.gpu : paged.slots.cpu;
      write.cache_layer = on_gpu ? cache.gpu : cache.cpu;
      if (fp8) write.cache_scales = on_gpu ? scales.gpu : scales.cpu;
      (on_gpu ? *gpu_ : *cpu_).gqa_write_cache(write);
    }
    auto attend = [&](Backend& backend, bool on_gpu, AttentionBatch& batch) {
      batch = paged.batch(on_gpu);
      GqaAttention args;
      args.q = on_gpu ? q.gpu : q.cpu;
      args.cache_layer = on_gpu ? cache.gpu : cache.cpu;
      if (fp8) args.cache_scales = on_gpu ? scales.gpu : scales.cpu;
      args.batch = &batch;
      args.heads = h.heads;
      args.kv_heads = h.kv_heads;
      args.head_dim = h.head_dim;
      args.softmax_scale = 1.0f / std::sqrt(float(h.head_dim));
      return backend.gqa_attention(args);
    };
    AttentionBatch cpu_batch, gpu_batch;
    EXPECT_LT(relative_error(attend(*cpu_, false, cpu_batch), attend(*gpu_, true, gpu_batch)), 1e-2)
        << "heads " << h.heads << " / " << h.kv_heads << " of " << h.head_dim << ", " << tokens << " tokens"
        << (fp8 ? ", e4m3 cache" : "");
    // The written entries: the bf16 keys and values themselves, or the same e4m3 codes and scales
    // (one rule on both backends); the rest stays as it was on both sides.
    auto cpu_cache = cpu_->download_f32(cache.cpu), gpu_cache = gpu_->download_f32(cache.gpu);
    const std::vector<float> cpu_scales = fp8 ? cpu_->download_f32(scales.cpu) : std::vector<float>{};
    const std::vector<float> gpu_scales = fp8 ? gpu_->download_f32(scales.gpu) : std::vector<float>{};
    for (int32_t slot : step.slots) {
      for (int64_t c = 0; c < width; ++c)
        ASSERT_EQ(cpu_cache[int64_t(slot) * width + c], gpu_cache[int64_t(slot) * width + c]) << "slot " << slot;
      if (fp8) {
        ASSERT_EQ(cpu_scales[slot], gpu_scales[slot]) << "slot " << slot;
      }
    }
  }
}

// DeepSeek sparse attention: the indexer key write (LayerNorm, RoPE, bf16 / e4m3), the top-k
// choice over the cached keys (checked against the contract of ops.h recomputed in double from
// the GPU's own cache, so a near tie cannot fail it), and MLA over the chosen positions (per-head
// kernel for the mixed batch, split-KV for pure decode), GPU against CPU on the same positions.
// GLM-5's indexer per rank: 32 heads of 128; top_k 48 so that most contexts are past it.
TEST_F(OpsTest, DsaIndexerAndSparseMla) {
  const int64_t page_size = 64, max_blocks = 24, pages = 8 * max_blocks;
  const int64_t width = 128, index_heads = 32, index_rope = 64, top_k = 48;
  const int64_t heads = 16, lora = 512, rope = 64, nope = 128, v_dim = 128, latent = lora + rope;
  const std::vector<std::vector<std::pair<int32_t, int32_t>>> batches = {
      {{1, 1}, {130, 1}, {77, 13}, {200, 64}, {5, 5}, {300, 150}}, {{1, 1}, {300, 1}, {1500, 1}, {48, 1}, {1025, 1}}};
  std::vector<float> inv_freq(index_rope / 2);
  for (int64_t i = 0; i < index_rope / 2; ++i) inv_freq[i] = std::pow(10000.0f, -2.0f * i / index_rope);
  Pair frequencies = upload(inv_freq, {index_rope / 2}, DType::F32);
  for (bool fp8 : {false, true})
  for (const auto& sequences : batches) {
    // Indexer keys and MLA latents on the same pages (paged_step places sequence i on pages
    // i, i + 8, ...), the entries cached before this step random, the rest NaN.
    PagedStep key_step = paged_step(sequences, pages, page_size, max_blocks, width);
    PagedStep latent_step = paged_step(sequences, pages, page_size, max_blocks, latent);
    const int64_t tokens = key_step.tokens();
    Pair keys = upload(key_step.cache_values, {pages, page_size, width}), key_scales;
    Pair latents = upload(latent_step.cache_values, {pages, page_size, latent}), latent_scales;
    if (fp8) {
      std::tie(keys, key_scales) = e4m3_cache(key_step.cache_values, pages, page_size, width);
      std::tie(latents, latent_scales) = e4m3_cache(latent_step.cache_values, pages, page_size, latent);
    }
    auto k_values = random(tokens * width), bias_values = random(width, 0.1f), weight_values = random(width, 0.1f);
    for (float& w : weight_values) w = bf16_to_f32(f32_to_bf16(1.0f + w));
    auto q_values = random(tokens * index_heads * width), head_weight_values = random(tokens * index_heads);
    Pair k = upload(k_values, {tokens, width}), norm_weight = upload(weight_values, {width});
    Pair norm_bias = upload(bias_values, {width}), q = upload(q_values, {tokens, index_heads, width});
    Pair head_weights = upload(head_weight_values, {tokens, index_heads}, DType::F32);
    const PagedTensors paged = upload_step(key_step);
    // Both pair layouts: interleaved (GLM-5) with the bf16 cache, half-split (V3.2) with e4m3.
    const RopeTable cpu_rope{frequencies.cpu, index_rope, 1.0f, !fp8}, gpu_rope{frequencies.gpu, index_rope, 1.0f, !fp8};
    cpu_->begin_step();
    gpu_->begin_step();
    for (bool on_gpu : {false, true}) {
      DsaKeyWrite write;
      write.k = on_gpu ? k.gpu : k.cpu;
      write.norm_weight = on_gpu ? norm_weight.gpu : norm_weight.cpu;
      write.norm_bias = on_gpu ? norm_bias.gpu : norm_bias.cpu;
      write.rope = on_gpu ? &gpu_rope : &cpu_rope;
      write.positions = on_gpu ? paged.positions.gpu : paged.positions.cpu;
      write.slots = on_gpu ? paged.slots.gpu : paged.slots.cpu;
      write.cache_layer = on_gpu ? keys.gpu : keys.cpu;
      if (fp8) write.cache_scales = on_gpu ? key_scales.gpu : key_scales.cpu;
      (on_gpu ? *gpu_ : *cpu_).dsa_write_keys(write);
    }
    {  // The written keys: bf16 rounding of the same f32 math, or e4m3 codes a step apart at most.
      auto dequantized = [&](Backend& backend, const Pair& cache, const Pair& scales, bool on_gpu) {
        std::vector<float> values = backend.download_f32(on_gpu ? cache.gpu : cache.cpu);
        if (fp8) {
          const std::vector<float> s = backend.download_f32(on_gpu ? scales.gpu : scales.cpu);
          for (size_t i = 0; i < values.size(); ++i) values[i] *= s[i / width];
        }
        return values;
      };
      const auto cpu_keys = dequantized(*cpu_, keys, key_scales, false), gpu_keys = dequantized(*gpu_, keys, key_scales, true);
      double difference = 0, reference = 0;
      for (int32_t slot : key_step.slots)
        for (int64_t c = 0; c < width; ++c) {
          const double e = cpu_keys[int64_t(slot) * width + c], a = gpu_keys[int64_t(slot) * width + c];
          difference += (a - e) * (a - e);
          reference += e * e;
        }
      EXPECT_LT(std::sqrt(difference / reference), fp8 ? 2e-2 : kBf16Tolerance) << (fp8 ? "e4m3" : "bf16") << " keys";
    }
    copy_gpu_cache_to_cpu(keys, key_scales);  // from here both backends read the same keys

    AttentionBatch cpu_batch = paged.batch(false), gpu_batch = paged.batch(true);
    auto choose = [&](Backend& backend, bool on_gpu) {
      DsaTopK args;
      args.q = on_gpu ? q.gpu : q.cpu;
      args.head_weights = on_gpu ? head_weights.gpu : head_weights.cpu;
      args.cache_layer = on_gpu ? keys.gpu : keys.cpu;
      if (fp8) args.cache_scales = on_gpu ? key_scales.gpu : key_scales.cpu;
      args.batch = on_gpu ? &gpu_batch : &cpu_batch;
      args.top_k = top_k;
      args.softmax_scale = 1.0f / std::sqrt(float(width));
      args.head_scale = 1.0f / std::sqrt(float(index_heads));
      return backend.dsa_top_k(args);
    };
    Tensor gpu_chosen = choose(*gpu_, true);
    const std::vector<float> chosen = gpu_->download_f32(gpu_chosen);
    const std::vector<float> cpu_chosen = cpu_->download_f32(choose(*cpu_, false));
    std::vector<float> cache_values = cpu_->download_f32(keys.cpu);
    if (fp8) {
      const std::vector<float> s = cpu_->download_f32(key_scales.cpu);
      for (size_t i = 0; i < cache_values.size(); ++i) cache_values[i] *= s[i / width];
    }
    int64_t identical_rows = 0;
    for (int64_t t = 0; t < tokens; ++t) {
      const int64_t s = std::upper_bound(key_step.query_start.begin(), key_step.query_start.end(), int32_t(t)) -
                        key_step.query_start.begin() - 1;
      const int64_t keys_of_t = key_step.positions[t] + 1, count = std::min(keys_of_t, top_k);
      const float* row = chosen.data() + t * top_k;
      identical_rows += std::equal(row, row + top_k, cpu_chosen.data() + t * top_k);
      for (int64_t i = 0; i < top_k; ++i) {
        if (i >= count) {
          ASSERT_EQ(row[i], -1.0f) << "token " << t << " entry " << i;
          continue;
        }
        ASSERT_GE(row[i], 0.0f) << "token " << t;
        ASSERT_LT(row[i], float(keys_of_t)) << "token " << t;
        if (i > 0) ASSERT_GT(row[i], row[i - 1]) << "token " << t << ": not ascending";
      }
      if (keys_of_t <= top_k) continue;
      std::vector<double> score(keys_of_t, 0.0);
      for (int64_t j = 0; j < keys_of_t; ++j) {
        const int64_t slot = int64_t(key_step.block_table[s * max_blocks + j / page_size]) * page_size + j % page_size;
        for (int64_t h = 0; h < index_heads; ++h) {
          double dot = 0;
          for (int64_t c = 0; c < width; ++c) dot += double(q_values[(t * index_heads + h) * width + c]) * cache_values[slot * width + c];
          score[j] += head_weight_values[t * index_heads + h] / std::sqrt(double(index_heads)) *
                      std::max(dot / std::sqrt(double(width)), 0.0);
        }
      }
      std::vector<double> sorted = score;
      std::nth_element(sorted.begin(), sorted.begin() + (top_k - 1), sorted.end(), std::greater<double>());
      const double threshold = sorted[top_k - 1];
      double scale = 0;
      for (double value : score) scale = std::max(scale, std::fabs(value));
      const double tolerance = 1e-5 * scale + 1e-6;
      std::vector<bool> taken(keys_of_t, false);
      for (int64_t i = 0; i < top_k; ++i) taken[static_cast<int64_t>(row[i])] = true;
      for (int64_t j = 0; j < keys_of_t; ++j) {
        if (taken[j]) ASSERT_GE(score[j], threshold - tolerance) << "token " << t << " took position " << j;
        else ASSERT_LE(score[j], threshold + tolerance) << "token " << t << " left position " << j;
      }
    }
    std::printf("  dsa_top_k %s cache, %lld tokens: %lld rows identical to the CPU's\n", fp8 ? "e4m3" : "bf16",
                static_cast<long long>(tokens), static_cast<long long>(identical_rows));

    // MLA over the GPU's chosen positions on both backends.
    std::vector<int32_t> chosen_ints(chosen.begin(), chosen.end());
    const Tensor cpu_chosen_positions = upload_ints(chosen_ints, {tokens, top_k}).cpu;
    auto kv_values = random(tokens * latent), latent_norm = random(lora, 0.1f);
    for (float& w : latent_norm) w = bf16_to_f32(f32_to_bf16(1.0f + w));
    auto mla_q_values = random(tokens * heads * (nope + rope));
    auto kv_b_values = random(heads * (nope + v_dim) * lora, 1.0f / std::sqrt(float(lora)));
    Pair kv = upload(kv_values, {tokens, latent}), norm = upload(latent_norm, {lora});
    Pair mla_q = upload(mla_q_values, {tokens, heads, nope + rope});
    Pair kv_b = upload(kv_b_values, {heads * (nope + v_dim), lora});
    const RopeTable cpu_latent_rope{frequencies.cpu, rope, 1.0f, true}, gpu_latent_rope{frequencies.gpu, rope, 1.0f, true};
    for (bool on_gpu : {false, true}) {
      MlaCacheWrite write;
      write.kv = on_gpu ? kv.gpu : kv.cpu;
      write.norm_weight = on_gpu ? norm.gpu : norm.cpu;
      write.rope = on_gpu ? &gpu_latent_rope : &cpu_latent_rope;
      write.positions = on_gpu ? paged.positions.gpu : paged.positions.cpu;
      write.slots = on_gpu ? paged.slots.gpu : paged.slots.cpu;
      write.cache_layer = on_gpu ? latents.gpu : latents.cpu;
      if (fp8) write.cache_scales = on_gpu ? latent_scales.gpu : latent_scales.cpu;
      (on_gpu ? *gpu_ : *cpu_).mla_write_cache(write);
    }
    copy_gpu_cache_to_cpu(latents, latent_scales);
    auto attend = [&](Backend& backend, bool on_gpu) {
      MlaAttention args;
      args.q = on_gpu ? mla_q.gpu : mla_q.cpu;
      args.kv_b = on_gpu ? kv_b.gpu : kv_b.cpu;
      args.cache_layer = on_gpu ? latents.gpu : latents.cpu;
      if (fp8) args.cache_scales = on_gpu ? latent_scales.gpu : latent_scales.cpu;
      args.batch = on_gpu ? &gpu_batch : &cpu_batch;
      args.heads = heads;
      args.qk_nope_dim = nope;
      args.rope_dim = rope;
      args.v_dim = v_dim;
      args.kv_lora_rank = lora;
      args.softmax_scale = 1.0f / std::sqrt(float(nope + rope));
      args.key_positions = on_gpu ? gpu_chosen : cpu_chosen_positions;
      return backend.mla_attention(args);
    };
    EXPECT_LT(relative_error(attend(*cpu_, false), attend(*gpu_, true)), 1e-2)
        << tokens << " tokens, " << (fp8 ? "e4m3" : "bf16") << " cache";
  }
}

TEST_F(OpsTest, MoeRouteAndExperts) {
  // DeepSeek-V3 (groups), plain, Kimi-K2 (384 experts), softmax scoring without a bias, a
  // stacked shared expert (one more slot, experts + 1 weights), and many tokens over an expert
  // count that is not a multiple of 32 (the kernel's idle threads) in groups of 9.
  struct Case {
    int64_t tokens, experts, top_k, groups, top_k_groups, hidden, inter;
    bool normalize;
    float scaling;
    bool sigmoid = true;
    int64_t shared = 0;
  };
  for (Case c : {Case{5, 256, 8, 8, 4, 512, 256, true, 2.5f}, Case{33, 64, 6, 1, 1, 1024, 128, false, 1.0f},
                 Case{1, 384, 8, 1, 1, 256, 64, true, 2.827f}, Case{9, 64, 4, 4, 2, 256, 64, true, 1.0f, false},
                 Case{3, 256, 8, 8, 4, 256, 64, true, 2.5f, true, 1}, Case{200, 72, 6, 8, 3, 128, 64, true, 1.5f}}) {
    auto logits_values = random(c.tokens * c.experts), bias_values = random(c.experts, 0.05f);
    Pair logits = upload(logits_values, {c.tokens, c.experts}, DType::F32);
    Pair bias = upload(bias_values, {c.experts}, DType::F32);
    MoeRouterParams params{c.top_k, c.groups, c.top_k_groups, c.sigmoid, c.sigmoid, c.normalize, c.scaling, c.shared};
    cpu_->begin_step();
    gpu_->begin_step();
    MoeRouting cpu_routing = cpu_->moe_route(logits.cpu, bias.cpu, params);
    MoeRouting gpu_routing = gpu_->moe_route(logits.gpu, bias.gpu, params);
    EXPECT_EQ(cpu_->download_f32(cpu_routing.expert_ids), gpu_->download_f32(gpu_routing.expert_ids));
    EXPECT_LT(relative_error(cpu_routing.weights, gpu_routing.weights), 1e-6);

    auto x_values = random(c.tokens * c.hidden);
    const int64_t stacked = c.experts + c.shared;
    auto gate_up_values = random(stacked * 2 * c.inter * c.hidden, 1.0f / std::sqrt(float(c.hidden)));
    auto down_values = random(stacked * c.hidden * c.inter, 1.0f / std::sqrt(float(c.inter)));
    Pair x = upload(x_values, {c.tokens, c.hidden});
    Pair gate_up = upload(gate_up_values, {stacked, 2 * c.inter, c.hidden});
    Pair down = upload(down_values, {stacked, c.hidden, c.inter});
    Tensor cpu_out = cpu_->moe_experts(x.cpu, cpu_routing, {gate_up.cpu, down.cpu});
    Tensor gpu_out = gpu_->moe_experts(x.gpu, gpu_routing, {gate_up.gpu, down.gpu});
    EXPECT_LT(relative_error(cpu_out, gpu_out), 1e-4) << "experts " << c.experts;
  }
}

// INT4 routed experts (W4A16, Kimi-K2.5's format): random codes and bf16 scales, the same
// bytes on both backends; the GPU streams the packed codes through the small-M kernels at every
// batch size. Kimi-K2.5 per-GPU shapes at TP 8 (384 experts, intermediate 256, groups of 32),
// a decode batch, a prefill-sized one (repeated weight streaming), and groups of 128.
TEST_F(OpsTest, MoeInt4Experts) {
  struct Case {
    int64_t tokens, experts, top_k, hidden, inter, group;
  };
  for (Case c : {Case{4, 384, 8, 7168, 256, 32}, Case{200, 64, 8, 1024, 256, 32}, Case{7, 32, 4, 512, 512, 128}}) {
    const auto [cpu_routing, gpu_routing] = route_on_both(c.tokens, c.experts, c.top_k, 2.827f);

    // One weight: random codes, bf16 scales of about 1 / (8 sqrt(in)) so outputs stay O(1).
    auto int4_weight = [&](int64_t rows, int64_t cols) {
      std::vector<int32_t> codes(c.experts * rows * cols / 8);
      for (int32_t& word : codes) word = static_cast<int32_t>(rng_());
      auto scales = random(c.experts * rows * (cols / c.group), 0.1f / std::sqrt(float(cols)));
      for (float& scale : scales) scale = bf16_to_f32(f32_to_bf16(std::fabs(scale) + 1e-3f / std::sqrt(float(cols))));
      Pair packed = upload_ints(codes, {c.experts, rows, cols / 8});
      Pair scale_tensors = upload(scales, {c.experts, rows, cols / c.group});
      return std::pair{Int4Weight{packed.cpu, scale_tensors.cpu, c.group}, Int4Weight{packed.gpu, scale_tensors.gpu, c.group}};
    };
    const auto gate_up = int4_weight(2 * c.inter, c.hidden), down = int4_weight(c.hidden, c.inter);
    auto x_values = random(c.tokens * c.hidden);
    Pair x = upload(x_values, {c.tokens, c.hidden});
    ExpertWeights cpu_experts, gpu_experts;
    cpu_experts.gate_up_int4 = gate_up.first;
    cpu_experts.down_int4 = down.first;
    gpu_experts.gate_up_int4 = gate_up.second;
    gpu_experts.down_int4 = down.second;
    Tensor cpu_out = cpu_->moe_experts(x.cpu, cpu_routing, cpu_experts);
    Tensor gpu_out = gpu_->moe_experts(x.gpu, gpu_routing, gpu_experts);
    // The GPU carries the activation between the two products as bf16 high + low parts (~16
    // bits), as for bf16 experts; otherwise the same f32 products in another order.
    EXPECT_LT(relative_error(cpu_out, gpu_out), 1e-4) << c.tokens << " tokens, " << c.experts << " experts";
  }
}

// NVFP4 routed experts (W4A16, the modelopt *-NVFP4 exports): random e2m1 pairs, positive e4m3
// block scales and f32 row scales, the same bytes on both backends. GLM-5.1-NVFP4's per-GPU
// shapes at TP 8 (256 experts, intermediate 256) at decode size, and a 200-token batch.
TEST_F(OpsTest, MoeNvfp4Experts) {
  struct Case {
    int64_t tokens, experts, top_k, hidden, inter;
  };
  for (Case c : {Case{4, 256, 8, 6144, 256}, Case{200, 64, 8, 1024, 256}}) {
    const auto [cpu_routing, gpu_routing] = route_on_both(c.tokens, c.experts, c.top_k, 2.5f);

    auto bytes_pair = [&](std::vector<uint8_t>& bytes, const Shape& shape, DType dtype) {
      Tensor host{bytes.data(), dtype, shape, Device{}};
      return Pair{cpu_->upload_persistent(host, dtype), gpu_->upload_persistent(host, dtype)};
    };
    // One weight: codes uniform over the 16 e2m1 values, block scales e4m3 in [0.5, 1.5], row
    // scales of about 1 / (4 sqrt(in)) so outputs stay O(1).
    auto fp4_weight = [&](int64_t rows, int64_t cols) {
      std::vector<uint8_t> codes(c.experts * rows * cols / 2), blocks(c.experts * rows * cols / 16);
      for (uint8_t& pair : codes) pair = static_cast<uint8_t>(rng_());
      std::uniform_real_distribution<float> uniform(0.5f, 1.5f);
      for (uint8_t& block : blocks) block = f32_to_e4m3(uniform(rng_));
      std::vector<float> row_values(c.experts * rows, 0.25f / std::sqrt(float(cols)));
      const Pair packed = bytes_pair(codes, {c.experts, rows, cols / 2}, DType::U8);
      const Pair block_scales = bytes_pair(blocks, {c.experts, rows, cols / 16}, DType::F8_E4M3);
      const Pair row_scales = upload(row_values, {c.experts, rows}, DType::F32);
      return std::pair{Fp4Weight{packed.cpu, block_scales.cpu, row_scales.cpu},
                       Fp4Weight{packed.gpu, block_scales.gpu, row_scales.gpu}};
    };
    const auto gate_up = fp4_weight(2 * c.inter, c.hidden), down = fp4_weight(c.hidden, c.inter);
    auto x_values = random(c.tokens * c.hidden);
    Pair x = upload(x_values, {c.tokens, c.hidden});
    ExpertWeights cpu_experts, gpu_experts;
    cpu_experts.gate_up_fp4 = gate_up.first;
    cpu_experts.down_fp4 = down.first;
    gpu_experts.gate_up_fp4 = gate_up.second;
    gpu_experts.down_fp4 = down.second;
    Tensor cpu_out = cpu_->moe_experts(x.cpu, cpu_routing, cpu_experts);
    Tensor gpu_out = gpu_->moe_experts(x.gpu, gpu_routing, gpu_experts);
    EXPECT_LT(relative_error(cpu_out, gpu_out), 1e-4) << c.tokens << " tokens, " << c.experts << " experts";
  }
}

}  // namespace
}  // namespace rackserve
