// The FP8 MLA latent cache on the CUDA backend (e4m3 + one f32 scale per entry, ops.h):
//   - the write kernel stores the CPU oracle's bytes and scales: bit for bit where both
//     backends compute the same f32 entry, and within one e4m3 step of rare values
//     otherwise (rsqrtf / cosf / sinf differ from the host's by ulps);
//   - the per-(token, head) kernel and the split-KV decode kernel (forced split counts,
//     pages of 64 and of 48 tokens so 32-key tiles straddle pages) read an FP8 cache as the
//     oracle does, with every entry no sequence owns poisoned (NaN scale, NaN bytes);
//   - a DeepSeek-shaped model (MLA 512 + 64, dummy weights, dense layers so no routing flip
//     can intervene) gives logits with cosine >= 0.999 at every position between the FP8
//     and the BF16 cache, over a 700-token prompt prefilled in chunks on pages of 16 tokens
//     and decode steps whose plan splits the context.
// Fresh random inputs each run (the seed is printed); GPU step outputs are poisoned with NaN.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "backend/cpu/fp8_linear.h"
#include "backend/cuda/cuda_backend.h"
#include "core/dtype.h"
#include "engine/sequence_runner.h"
#include "models/model.h"
#include "rackserve/kernels/mla_decode_params.h"
#include "rackserve/kernels/mla_params.h"
#include "support/e4m3_definition.h"

namespace rackserve {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kLora = 512, kRope = 64, kWidth = kLora + kRope;
constexpr double kAttentionTolerance = 1e-2;  // bf16 operands of the CUDA kernels (mla_decode_test.cpp)
constexpr double kMinModelCosine = 0.999;
static_assert(kernels::kMlaCacheMinScale == kMlaCacheMinScale, "the kernels and the oracle floor scales alike");

// Position of an e4m3 value among all finite values in order (+0 and -0 share one).
int e4m3_rank(uint8_t code) {
  static const std::vector<double> sorted = [] {
    std::vector<double> values;
    for (auto [value, c] : testing::e4m3_finite_values())
      if (c != 0x80) values.push_back(value);
    std::sort(values.begin(), values.end());
    return values;
  }();
  const double value = testing::e4m3_value(code);
  return static_cast<int>(std::lower_bound(sorted.begin(), sorted.end(), value == 0.0 ? 0.0 : value) - sorted.begin());
}

void copy_to_device(const Tensor& device, const void* host, size_t bytes) {
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);  // the backend's stream is non-blocking
  ASSERT_EQ(cudaMemcpy(device.data, host, bytes, cudaMemcpyHostToDevice), cudaSuccess);
}
std::vector<uint8_t> bytes_of(const Tensor& device) {
  std::vector<uint8_t> host(device.bytes());
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(host.data(), device.data, host.size(), cudaMemcpyDeviceToHost), cudaSuccess);
  return host;
}

class KvCacheFp8Cuda : public ::testing::Test {
 protected:
  struct Pair {
    Tensor cpu, gpu;
  };

  void SetUp() override {
    ASSERT_TRUE(cuda_device_available()) << "the gpu tests need a CUDA device";
    cpu_ = make_cpu_backend(0);
    gpu_ = make_cuda_backend(CudaBackendOptions{0, /*poison_step_allocations=*/true});
    static const uint64_t seed = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    rng_.seed(seed + ::testing::UnitTest::GetInstance()->random_seed());
    std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  }

  std::vector<float> normal(int64_t count, float scale = 1.0f) {  // bf16-exact values
    std::normal_distribution<float> distribution(0.0f, scale);
    std::vector<float> values(count);
    for (float& v : values) v = bf16_to_f32(f32_to_bf16(distribution(rng_)));
    return values;
  }
  Pair upload(std::vector<float>& values, const Shape& shape) {
    Tensor host{values.data(), DType::F32, shape, Device{}};
    return {cpu_->upload_persistent(host, DType::F32), gpu_->upload_persistent(host, DType::BF16)};
  }
  Pair upload_f32(std::vector<float>& values, const Shape& shape) {
    Tensor host{values.data(), DType::F32, shape, Device{}};
    return {cpu_->upload_persistent(host, DType::F32), gpu_->upload_persistent(host, DType::F32)};
  }
  Pair upload_ints(std::vector<int32_t> values, const Shape& shape) {
    Tensor host{values.data(), DType::I32, shape, Device{}};
    return {cpu_->upload_persistent(host, DType::I32), gpu_->upload_persistent(host, DType::I32)};
  }
  // An FP8 cache layer [pages, page_size, 576] + scales on both backends, every byte 0x7f
  // (NaN) and every scale NaN until written.
  Pair allocate_fp8(int64_t pages, int64_t page_size, Pair& scales) {
    Pair values{cpu_->allocate_persistent(DType::F8_E4M3, {pages, page_size, kWidth}),
                gpu_->allocate_persistent(DType::F8_E4M3, {pages, page_size, kWidth})};
    scales = {cpu_->allocate_persistent(DType::F32, {pages, page_size}),
              gpu_->allocate_persistent(DType::F32, {pages, page_size})};
    std::memset(values.cpu.data, 0x7f, values.cpu.bytes());
    std::fill_n(scales.cpu.as<float>(), scales.cpu.numel(), NAN);
    copy_to_device(values.gpu, values.cpu.data, values.cpu.bytes());
    copy_to_device(scales.gpu, scales.cpu.data, scales.cpu.bytes());
    return values;
  }

  double relative_error(const Tensor& cpu, const Tensor& gpu) {
    const std::vector<float> expected = cpu_->download_f32(cpu), actual = gpu_->download_f32(gpu);
    EXPECT_EQ(expected.size(), actual.size());
    double difference = 0.0, reference = 0.0;
    for (size_t i = 0; i < expected.size() && i < actual.size(); ++i) {
      if (std::isnan(actual[i]) || std::isnan(expected[i])) return INFINITY;
      difference += (actual[i] - expected[i]) * double(actual[i] - expected[i]);
      reference += double(expected[i]) * expected[i];
    }
    return std::sqrt(difference / std::max(reference, 1e-30));
  }

  // A decode batch's inputs on both backends (one query per sequence at its last position).
  struct DecodeInputs {
    int64_t heads = 0, nope = 0, v = 0, page_size = 0, max_blocks = 0, sequences = 0;
    Pair q, kv_b, cache, scales, query_start, block_table, positions;
  };

  // The split-KV launcher with forced configs (the last split of a query takes what the
  // config leaves) against the oracle's output for the same batch.
  void expect_forced_splits(const DecodeInputs& in, const Tensor& expected) {
    const int64_t n = in.sequences;
    const std::vector<kernels::MlaDecodeConfig> configs{{1, 4112}, {2, 2064}, {7, 592}, {256, 16}, {3, 16}};
    for (const kernels::MlaDecodeConfig& config : configs) {
      Tensor q_latent = gpu_->allocate_persistent(DType::F32, {n, in.heads, kLora});
      Tensor out_latent = gpu_->allocate_persistent(DType::F32, {n, in.heads, kLora});
      Tensor output = gpu_->allocate_persistent(DType::BF16, {n, in.heads, in.v});
      Tensor workspace = gpu_->allocate_persistent(
          DType::F32, {std::max<int64_t>(1, kernels::mla_decode_workspace_floats(n, in.heads, kLora, config))});
      for (const Tensor& t : {q_latent, out_latent, output, workspace}) gpu_->fill(t, NAN);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      kernels::MlaAttentionParams steps{};
      steps.q = in.q.gpu.data;
      steps.kv_b = in.kv_b.gpu.data;
      steps.cache = in.cache.gpu.data;
      steps.cache_scales = in.scales.gpu.as<float>();
      steps.cache_type = kernels::MlaCacheType::E4M3;
      steps.query_start = in.query_start.gpu.as<int32_t>();
      steps.block_table = in.block_table.gpu.as<int32_t>();
      steps.positions = in.positions.gpu.as<int32_t>();
      steps.q_latent = q_latent.as<float>();
      steps.out_latent = out_latent.as<float>();
      steps.output = output.data;
      steps.tokens = steps.sequences = n;
      steps.heads = in.heads;
      steps.nope = in.nope;
      steps.rope = kRope;
      steps.v = in.v;
      steps.lora = kLora;
      steps.page_size = in.page_size;
      steps.max_blocks = in.max_blocks;
      steps.softmax_scale = 1.0f / std::sqrt(float(in.nope + kRope));
      kernels::MlaDecodeParams decode{};
      decode.q_latent = steps.q_latent;
      decode.q = steps.q;
      decode.cache = steps.cache;
      decode.query_start = steps.query_start;
      decode.block_table = steps.block_table;
      decode.positions = steps.positions;
      decode.out_latent = steps.out_latent;
      decode.partial_out = workspace.as<float>();
      decode.partial_lse = workspace.as<float>() + n * config.splits * in.heads * kLora;
      decode.tokens = decode.sequences = n;
      decode.heads = in.heads;
      decode.nope = in.nope;
      decode.rope = kRope;
      decode.lora = kLora;
      decode.page_size = in.page_size;
      decode.max_blocks = in.max_blocks;
      decode.softmax_scale = steps.softmax_scale;
      decode.cache_type = kernels::MlaCacheType::E4M3;
      decode.cache_scales = steps.cache_scales;
      ASSERT_EQ(kernels::launch_mla_q_latent(steps, nullptr), 0);
      ASSERT_EQ(kernels::launch_mla_decode_split_kv(decode, config, nullptr), 0)
          << "splits " << config.splits << " keys " << config.keys_per_split;
      ASSERT_EQ(kernels::launch_mla_output(steps, nullptr), 0);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      const double error = relative_error(expected, output);
      std::printf("  forced splits %3d x %4d keys: relative error %.2e\n", config.splits, config.keys_per_split, error);
      EXPECT_LT(error, kAttentionTolerance) << "heads " << in.heads << " page " << in.page_size << " splits "
                                            << config.splits << " keys per split " << config.keys_per_split;
    }
  }

  // Writes `tokens` entries through both backends' mla_write_cache into fresh FP8 caches
  // and compares bytes and scales. `exact_inputs`: latents +-1 (mean square 1), eps 0 and
  // position 0 (cos 1, sin 0), so both backends compute the same f32 entry (assuming the
  // GPU's rsqrtf(1.0f) returns exactly 1.0f; PTX's rsqrt.approx does not promise it).
  void compare_writes(int64_t tokens, bool exact_inputs, bool interleaved) {
    const int64_t page_size = 16, pages = (tokens + page_size - 1) / page_size + 2;
    std::vector<float> kv = normal(tokens * kWidth);
    for (int64_t t = 0; t < tokens; ++t) {
      const float magnitude = std::ldexp(1.0f, static_cast<int>(t % 9) - 4);  // rope 1/16 .. 16 times the latent
      for (int64_t c = 0; c < kWidth; ++c) {
        float& v = kv[t * kWidth + c];
        if (c < kLora && exact_inputs) v = v < 0 ? -1.0f : 1.0f;
        if (c >= kLora) v = bf16_to_f32(f32_to_bf16(v * magnitude));
      }
    }
    std::vector<float> weight = normal(kLora), inv_freq(kRope / 2);
    for (int64_t i = 0; i < kRope / 2; ++i) inv_freq[i] = std::pow(10000.0f, -2.0f * i / kRope);
    std::vector<int32_t> slots(pages * page_size), positions(tokens, 0);
    std::iota(slots.begin(), slots.end(), 0);
    std::shuffle(slots.begin(), slots.end(), rng_);
    slots.resize(tokens);
    if (!exact_inputs)
      for (int32_t& p : positions) p = static_cast<int32_t>(rng_() % 100000);
    Pair kv_t = upload(kv, {tokens, kWidth}), weight_t = upload(weight, {kLora}), freq = upload_f32(inv_freq, {kRope / 2});
    Pair slots_t = upload_ints(slots, {tokens}), positions_t = upload_ints(positions, {tokens});
    Pair scales;
    Pair cache = allocate_fp8(pages, page_size, scales);
    for (bool on_gpu : {false, true}) {
      RopeTable rope{on_gpu ? freq.gpu : freq.cpu, kRope, 1.0f, interleaved};
      MlaCacheWrite write;
      write.kv = on_gpu ? kv_t.gpu : kv_t.cpu;
      write.norm_weight = on_gpu ? weight_t.gpu : weight_t.cpu;
      write.norm_eps = exact_inputs ? 0.0f : 1e-6f;
      write.rope = &rope;
      write.positions = on_gpu ? positions_t.gpu : positions_t.cpu;
      write.slots = on_gpu ? slots_t.gpu : slots_t.cpu;
      write.cache_layer = on_gpu ? cache.gpu : cache.cpu;
      write.cache_scales = on_gpu ? scales.gpu : scales.cpu;
      (on_gpu ? gpu_ : cpu_)->mla_write_cache(write);
    }
    const std::vector<uint8_t> gpu_codes = bytes_of(cache.gpu), gpu_scale_bytes = bytes_of(scales.gpu);
    const uint8_t* cpu_codes = cache.cpu.as<uint8_t>();
    std::vector<float> gpu_scales(scales.cpu.numel());
    std::memcpy(gpu_scales.data(), gpu_scale_bytes.data(), gpu_scale_bytes.size());
    int64_t different = 0, written_values = 0;
    for (int64_t slot = 0; slot < pages * page_size; ++slot) {
      const bool written = std::find(slots.begin(), slots.end(), slot) != slots.end();
      const float cpu_scale = scales.cpu.as<float>()[slot], gpu_scale = gpu_scales[slot];
      if (!written) {
        ASSERT_TRUE(std::isnan(gpu_scale)) << "slot " << slot << " was not written";
      } else if (exact_inputs) {
        ASSERT_EQ(std::memcmp(&gpu_scale, &cpu_scale, sizeof(float)), 0)
            << "slot " << slot << ": " << gpu_scale << " vs " << cpu_scale << " (is rsqrtf(1.0f) == 1.0f?)";
      } else {
        ASSERT_NEAR(gpu_scale, cpu_scale, 1e-6 * cpu_scale) << "slot " << slot;  // a few f32 ulps
      }
      for (int64_t c = 0; c < kWidth; ++c) {
        const uint8_t expected = cpu_codes[slot * kWidth + c], actual = gpu_codes[slot * kWidth + c];
        written_values += written;
        if (actual == expected) continue;
        ASSERT_TRUE(written && !exact_inputs) << "slot " << slot << " column " << c << ": " << int(actual) << " vs "
                                              << int(expected);
        ASSERT_LE(std::abs(e4m3_rank(actual) - e4m3_rank(expected)), 1) << "slot " << slot << " column " << c;
        ++different;
      }
    }
    std::printf("%s inputs, %s rope: %lld of %lld written values differ by one e4m3 step\n",
                exact_inputs ? "exact" : "random", interleaved ? "interleaved" : "half-split",
                static_cast<long long>(different), static_cast<long long>(written_values));
    EXPECT_LE(different, written_values / 10000) << "only values within f32 rounding of an e4m3 midpoint may differ";
  }

  std::unique_ptr<Backend> cpu_, gpu_;
  std::mt19937_64 rng_;
};

TEST_F(KvCacheFp8Cuda, WriteStoresTheOraclesBytesAndScales) {
  for (bool interleaved : {true, false}) {
    compare_writes(200, /*exact_inputs=*/true, interleaved);
    compare_writes(1000, /*exact_inputs=*/false, interleaved);
  }
}

// Decode batches (split-KV kernel, planned and forced configs) and a prefill-like batch
// (per-head kernel) over an FP8 cache quantized on the host by the oracle's rule.
TEST_F(KvCacheFp8Cuda, AttentionKernelsReadTheCacheLikeTheOracle) {
  for (int64_t page_size : {64, 48}) {
    const std::vector<int32_t> contexts{1, 47, 64, 65, 1000, 4097};
    int64_t max_blocks = 0, needed = 0;
    for (int32_t c : contexts) {
      needed += (c + page_size - 1) / page_size;
      max_blocks = std::max<int64_t>(max_blocks, (c + page_size - 1) / page_size + 1);
    }
    const int64_t pages = needed + needed / 4 + 1;
    std::vector<int32_t> order(pages);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng_);
    const int32_t poisoned_page = order.back();  // never owned: unused block-table entries name it
    Pair scales;
    Pair cache = allocate_fp8(pages, page_size, scales);
    std::vector<int32_t> table;
    int64_t next = 0;
    for (int32_t c : contexts) {
      const int64_t first = static_cast<int64_t>(table.size());
      for (int64_t b = 0; b < max_blocks; ++b)
        table.push_back(b < (c + page_size - 1) / page_size ? order[next++] : poisoned_page);
      for (int32_t position = 0; position < c; ++position) {
        const int64_t slot = table[first + position / page_size] * page_size + position % page_size;
        std::vector<float> entry = normal(kWidth);
        scales.cpu.as<float>()[slot] = cpu::quantize_e4m3_group_codes(entry.data(), kWidth, kMlaCacheMinScale,
                                                                       cache.cpu.as<uint8_t>() + slot * kWidth);
      }
    }
    copy_to_device(cache.gpu, cache.cpu.data, cache.cpu.bytes());
    copy_to_device(scales.gpu, scales.cpu.data, scales.cpu.bytes());

    for (int64_t heads : {16, 40, 128}) {
      const int64_t nope = 128, v = 128;
      // Batch 1: one decode token per sequence. Batch 2: the last 3 positions of every
      // sequence with >= 3 (the per-head kernel: more tokens than sequences).
      for (int tokens_per_sequence : {1, 3}) {
        std::vector<int32_t> query_start{0}, lengths, rows, positions;
        for (size_t s = 0; s < contexts.size(); ++s) {
          if (contexts[s] < tokens_per_sequence) continue;
          for (int i = tokens_per_sequence; i >= 1; --i) positions.push_back(contexts[s] - i);
          query_start.push_back(static_cast<int32_t>(positions.size()));
          lengths.push_back(contexts[s]);
          rows.insert(rows.end(), table.begin() + s * max_blocks, table.begin() + (s + 1) * max_blocks);
        }
        const int64_t n = static_cast<int64_t>(lengths.size()), tokens = static_cast<int64_t>(positions.size());
        Pair starts = upload_ints(query_start, {n + 1}), lengths_t = upload_ints(lengths, {n});
        Pair rows_t = upload_ints(rows, {n, max_blocks}), positions_t = upload_ints(positions, {tokens});
        std::vector<float> q_values = normal(tokens * heads * (nope + kRope));
        std::vector<float> kv_b_values = normal(heads * (nope + v) * kLora, 1.0f / std::sqrt(float(kLora)));
        Pair q = upload(q_values, {tokens, heads, nope + kRope}), kv_b = upload(kv_b_values, {heads * (nope + v), kLora});
        Tensor outputs[2];
        for (int on_gpu : {0, 1}) {
          AttentionBatch batch;
          batch.query_start = on_gpu ? starts.gpu : starts.cpu;
          batch.context_length = on_gpu ? lengths_t.gpu : lengths_t.cpu;
          batch.block_table = on_gpu ? rows_t.gpu : rows_t.cpu;
          batch.positions = on_gpu ? positions_t.gpu : positions_t.cpu;
          batch.num_sequences = n;
          batch.num_tokens = tokens;
          batch.max_context_length = *std::max_element(lengths.begin(), lengths.end());
          batch.page_size = page_size;
          MlaAttention args;
          args.q = on_gpu ? q.gpu : q.cpu;
          args.kv_b = on_gpu ? kv_b.gpu : kv_b.cpu;
          args.cache_layer = on_gpu ? cache.gpu : cache.cpu;
          args.cache_scales = on_gpu ? scales.gpu : scales.cpu;
          args.batch = &batch;
          args.heads = heads;
          args.qk_nope_dim = nope;
          args.rope_dim = kRope;
          args.v_dim = v;
          args.kv_lora_rank = kLora;
          args.softmax_scale = 1.0f / std::sqrt(float(nope + kRope));
          Backend& backend = on_gpu ? *gpu_ : *cpu_;
          backend.begin_step();
          outputs[on_gpu] = backend.mla_attention(args);
        }
        const double error = relative_error(outputs[0], outputs[1]);
        std::printf("page %2lld heads %3lld tokens/sequence %d: relative error %.2e\n", (long long)page_size,
                    (long long)heads, tokens_per_sequence, error);
        EXPECT_LT(error, kAttentionTolerance) << "page " << page_size << " heads " << heads << " tokens/sequence "
                                              << tokens_per_sequence;
        if (tokens_per_sequence == 1)
          expect_forced_splits({heads, nope, v, page_size, max_blocks, n, q, kv_b, cache, scales, starts, rows_t,
                                positions_t},
                               outputs[0]);
      }
    }
  }
}

// A DeepSeek-shaped model: MLA 512 + 64 (the split-KV kernel's shape) with `heads` heads,
// small everything else, every layer dense; written next to the test's temporary files.
fs::path write_deepseek_shaped_config(int64_t heads) {
  std::ifstream file(fs::path(RACKSERVE_TEST_DATA_DIR) / "models" / "dsv3-qlora-yarn-groups" / "config.json");
  nlohmann::json config = nlohmann::json::parse(file);
  config["kv_lora_rank"] = kLora;
  config["qk_rope_head_dim"] = kRope;
  config["qk_nope_head_dim"] = 64;
  config["qk_head_dim"] = 64 + kRope;
  config["head_dim"] = kRope;
  config["v_head_dim"] = 64;
  config["num_attention_heads"] = config["num_key_value_heads"] = heads;
  config["hidden_size"] = 256;
  config["intermediate_size"] = 512;
  config["q_lora_rank"] = 128;
  config["num_hidden_layers"] = config["first_k_dense_replace"] = 2;  // dense: no routing flip can intervene
  config["num_nextn_predict_layers"] = 0;
  config["max_position_embeddings"] = 2048;
  config["vocab_size"] = 1024;
  config["rope_parameters"]["original_max_position_embeddings"] = 512;
  const fs::path directory = fs::temp_directory_path() / ("rackserve_kv_cache_fp8_" + std::to_string(heads) + "_" +
                                                          std::to_string(std::random_device{}()));
  fs::create_directories(directory);
  std::ofstream(directory / "config.json") << config.dump(1);
  return directory;
}

TEST_F(KvCacheFp8Cuda, DeepseekShapedModelLogitsMatchTheBf16Cache) {
  constexpr int64_t kPrompt = 700, kDecode = 6, kPageSize = 16, kChunk = 128;
  for (int64_t heads : {16, 40}) {
    const fs::path directory = write_deepseek_shaped_config(heads);
    LoadOptions options;
    options.format = LoadFormat::Dummy;
    options.step_graphs.enabled = false;
    std::unique_ptr<CausalLM> model = load_model(directory, *gpu_, options);
    fs::remove_all(directory);
    ASSERT_TRUE(kernels::mla_decode_supported(kLora, kRope, model->config().mla.qk_nope_head_dim));
    EXPECT_GT(kernels::plan_mla_decode(1, heads, kPrompt + 1).splits, 1) << "decode steps must split the context";
    std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(model->config().vocab_size - 1));
    std::vector<int32_t> tokens(kPrompt + kDecode);
    for (int32_t& t : tokens) t = token(rng_);
    auto run = [&](KvCacheDtype dtype) {
      SequenceRunner runner(*model, kPrompt + kDecode, kPageSize, dtype);
      // Unwritten entries are NaN: their scale for FP8, their values for BF16.
      gpu_->fill(dtype == KvCacheDtype::Fp8 ? runner.cache().scale_storage() : runner.cache().storage(), NAN);
      std::vector<std::vector<float>> logits =
          runner.append(std::vector<int32_t>(tokens.begin(), tokens.begin() + kPrompt), /*all_logits=*/true, kChunk);
      for (int64_t i = kPrompt; i < kPrompt + kDecode; ++i) logits.push_back(runner.append({tokens[i]}, false).back());
      return logits;
    };
    const auto expected = run(KvCacheDtype::Bf16), actual = run(KvCacheDtype::Fp8);
    ASSERT_EQ(actual.size(), expected.size());
    double worst = 1.0;
    for (size_t p = 0; p < expected.size(); ++p) {
      double dot = 0, norm_a = 0, norm_b = 0;
      for (size_t i = 0; i < expected[p].size(); ++i) {
        dot += double(actual[p][i]) * expected[p][i];
        norm_a += double(actual[p][i]) * actual[p][i];
        norm_b += double(expected[p][i]) * expected[p][i];
      }
      const double c = dot / std::sqrt(norm_a * norm_b);  // NaN fails the comparison
      EXPECT_GE(c, kMinModelCosine) << "heads " << heads << " position " << p
                                    << (p >= static_cast<size_t>(kPrompt) ? " (decode)" : " (prefill)");
      worst = std::isnan(c) || worst < 0 ? -1.0 : std::min(worst, c);
    }
    std::printf("heads %lld: min cosine fp8 vs bf16 cache over %zu positions = %.6f\n", (long long)heads,
                expected.size(), worst);
  }
}

}  // namespace
}  // namespace rackserve
