// The CUDA W8A8 FP8 linear (quantize + small-M or tiled e4m3 GEMM) against the CPU backend,
// whose linear_fp8 is the contract (backend/cpu/fp8_linear.h). Fresh random weights each run
// (seed printed), quantized here as real checkpoints are (amax / 448 per 128x128 block, or per
// row with the bf16 scale compressed-tensors stores; e4m3 saturating), in both layouts, on the
// DeepSeek-V3 projection shapes at TP 1 and 8 plus ragged ones, for m on both sides of the
// small-M / tiled switch (64 / 65). Activations are bf16-representable, so both backends
// quantize identical values to identical e4m3 codes and scales. Outputs come from NaN-poisoned
// step memory: every element must be finite. Where m * n * k is too large for the CPU oracle,
// it runs on sampled weight rows and tokens that include every tile edge.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "backend/cpu/fp8_linear.h"
#include "backend/cuda/cuda_backend.h"
#include "core/dtype.h"
#include "support/shared_models.h"
#include "support/test_random.h"

namespace rackserve {
namespace {

using testing::run_seed;
using testing::parallel_for;
using testing::SplitMix;

using testing::error_of;

constexpr int64_t kBlock = 128;  // DeepSeek's weight_block_size [128, 128]

// The bound, per output element y[t, n] (cpu = the f32 oracle, gpu = the CUDA bf16 output):
//   |gpu - cpu| <= 2^-8 |cpu| + 2^-12 M[t, n],   M = sum over k of |q[t, k] x_scale| |w[n, k]|
// Both backends quantize the same inputs to the same e4m3 codes and scales (identical IEEE
// divisions and round-to-nearest-even), and every e4m3 x e4m3 product is exact in f32, so only
// three things differ:
//   - the bf16 output: half an ulp, <= 2^-9 |y|; doubled for the oracle's own f32 rounding;
//   - summation order in f32: both sides <= k 2^-24 M, far below the next term;
//   - the FP8 tensor core's accumulation: modelled on Ada/Hopper (13-bit accumulator input,
//     addends aligned to the largest), the kernels' f32 sums of one MMA (32 products) each stay
//     within 2^-15.5 M per element, simulated at k = 1536..18432 (2^-13 M even if every
//     128-wide block were chained through the accumulator); 2^-12 leaves ~10x. M is ~20-80x
//     rms(y) for these widths, so the bound is 0.5-2% of a typical output: a wrong scale,
//     block, token or row is caught, and the cosine catches anything systematic.
// Cosine over all compared elements: the model gives 1 - cos <= 1e-6, the bf16 output ~1e-6.
constexpr double kOutputRelative = 1.0 / 256;
constexpr double kMagnitudeRelative = 1.0 / 4096;
constexpr double kMinCosine = 0.99999;

struct HostFp8Weight {
  int64_t n = 0, k = 0;
  Fp8Scaling scaling = Fp8Scaling::Block;
  std::vector<uint8_t> codes;  // [n, k]
  std::vector<float> scales;   // Block: [ceil(n / 128), k / 128]; Channel: [n]

  QuantizedWeight view() {
    QuantizedWeight w;
    w.scaling = scaling;
    w.block_out = scaling == Fp8Scaling::Block ? kBlock : 0;
    w.block_in = scaling == Fp8Scaling::Block ? kBlock : 0;
    w.values = Tensor{codes.data(), DType::F8_E4M3, {n, k}, Device{}};
    w.scales = Tensor{scales.data(), DType::F32,
                      scaling == Fp8Scaling::Block ? Shape{(n + kBlock - 1) / kBlock, k / kBlock} : Shape{n},
                      Device{}};
    return w;
  }
  float scale(int64_t row, int64_t column) const {
    return scaling == Fp8Scaling::Block ? scales[(row / kBlock) * (k / kBlock) + column / kBlock] : scales[row];
  }
};

// Uniform values with a random magnitude per 128x128 tile (Block) or per row (Channel), so the
// scales differ, quantized the way the checkpoints are.
HostFp8Weight random_weight(int64_t n, int64_t k, Fp8Scaling scaling, uint64_t seed) {
  HostFp8Weight w;
  w.n = n, w.k = k, w.scaling = scaling;
  w.codes.resize(static_cast<size_t>(n * k));
  const bool block = scaling == Fp8Scaling::Block;
  const int64_t bands = (n + kBlock - 1) / kBlock, column_blocks = block ? k / kBlock : 1;
  w.scales.resize(static_cast<size_t>(block ? bands * column_blocks : n));
  parallel_for(bands, [&](int64_t band) {
    SplitMix rng{seed * 0x2545f4914f6cdd1dull + static_cast<uint64_t>(band)};
    const int64_t row_begin = band * kBlock, row_end = std::min(n, row_begin + kBlock);
    std::vector<float> values(static_cast<size_t>((row_end - row_begin) * k));
    std::vector<float> magnitude(static_cast<size_t>(block ? column_blocks : row_end - row_begin));
    for (float& m : magnitude) m = std::exp2(6.0f * rng.uniform() - 12.0f);  // 2^-12 .. 2^-6
    for (int64_t r = row_begin; r < row_end; ++r)
      for (int64_t c = 0; c < k; ++c)
        values[(r - row_begin) * k + c] =
            (2.0f * rng.uniform() - 1.0f) * magnitude[block ? c / kBlock : r - row_begin];
    auto quantize = [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1, float& scale_out) {
      float amax = 0.0f;
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(values[(r - row_begin) * k + c]));
      float scale = amax > 0.0f ? amax / 448.0f : 1.0f;
      if (!block) scale = bf16_to_f32(f32_to_bf16(scale));  // compressed-tensors stores bf16 scales
      scale_out = scale;
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = c0; c < c1; ++c) w.codes[r * k + c] = f32_to_e4m3(values[(r - row_begin) * k + c] / scale);
    };
    if (block) {
      for (int64_t b = 0; b < column_blocks; ++b)
        quantize(row_begin, row_end, b * kBlock, (b + 1) * kBlock, w.scales[band * column_blocks + b]);
    } else {
      for (int64_t r = row_begin; r < row_end; ++r) quantize(r, r + 1, 0, k, w.scales[r]);
    }
  });
  return w;
}

// Activations: normal values, channel magnitudes spread over ~e^±1, rounded to bf16; token 1
// all zeros (the min_scale floor), token 2 tiny (1e-6) when m allows.
std::vector<float> random_activations(int64_t m, int64_t k, std::mt19937_64& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> channel(static_cast<size_t>(k));
  for (float& c : channel) c = std::exp(0.5f * normal(rng));
  std::vector<float> x(static_cast<size_t>(m * k));
  for (int64_t t = 0; t < m; ++t)
    for (int64_t c = 0; c < k; ++c) {
      const float value = t == 1 ? 0.0f : normal(rng) * channel[c] * (t == 2 ? 1e-6f : 1.0f);
      x[t * k + c] = bf16_to_f32(f32_to_bf16(value));
    }
  return x;
}

// Indices in [0, extent): all of them when `all`, else the tile edges plus random ones.
std::vector<int64_t> sample(int64_t extent, bool all, int random_count, std::mt19937_64& rng) {
  std::set<int64_t> chosen;
  if (all) {
    for (int64_t i = 0; i < extent; ++i) chosen.insert(i);
  } else {
    for (int64_t i : {0, 1, 2, 7, 8, 15, 16, 17, 31, 32, 63, 64, 65, 127, 128, 129, 255, 256})
      for (int64_t index : {i, extent - 1 - i}) chosen.insert(index);
    std::uniform_int_distribution<int64_t> pick(0, extent - 1);
    for (int i = 0; i < random_count; ++i) chosen.insert(pick(rng));
  }
  std::vector<int64_t> indices;
  for (int64_t index : chosen)
    if (index >= 0 && index < extent) indices.push_back(index);
  return indices;
}

struct Comparison {
  int64_t non_finite = 0, compared = 0, nonzero_zero_token = 0;
  double cosine = 1.0, worst = 0.0;  // worst: max over elements of |gpu - cpu| / allowed
};

// Runs both backends on x [m, k] and compares the full GPU output with the CPU oracle on
// sampled rows and tokens.
Comparison run_case(Backend& gpu, Backend& cpu, const HostFp8Weight& host, const QuantizedWeight& gpu_weight, int64_t m,
                    std::mt19937_64& rng) {
  const int64_t n = host.n, k = host.k;
  const bool block = host.scaling == Fp8Scaling::Block;
  std::vector<float> x = random_activations(m, k, rng);
  Tensor gpu_x = gpu.upload_persistent(Tensor{x.data(), DType::F32, {m, k}, Device{}}, DType::BF16);  // exact
  gpu.begin_step();
  const std::vector<float> out = gpu.download_f32(gpu.linear_fp8(gpu_x, gpu_weight));

  constexpr int64_t kFullOracleMacs = int64_t{1} << 28;
  const std::vector<int64_t> tokens = sample(m, m <= 17, 14, rng);
  const int64_t token_count = static_cast<int64_t>(tokens.size());
  const std::vector<int64_t> rows = sample(n, token_count * n * k <= kFullOracleMacs, 200, rng);
  const int64_t row_count = static_cast<int64_t>(rows.size());

  // The oracle's weight: the sampled rows, with their scales per row (block_out 1 for Block).
  HostFp8Weight sub;
  sub.n = row_count, sub.k = k, sub.scaling = host.scaling;
  sub.codes.resize(static_cast<size_t>(row_count * k));
  for (int64_t r = 0; r < row_count; ++r)
    std::copy_n(host.codes.begin() + rows[r] * k, k, sub.codes.begin() + r * k);
  for (int64_t r = 0; r < row_count; ++r) {
    if (block) {
      for (int64_t b = 0; b < k / kBlock; ++b) sub.scales.push_back(host.scale(rows[r], b * kBlock));
    } else {
      sub.scales.push_back(host.scale(rows[r], 0));
    }
  }
  QuantizedWeight sub_view = sub.view();
  if (block) {
    sub_view.block_out = 1;
    sub_view.scales.shape = {row_count, k / kBlock};
  }
  std::vector<float> x_rows(static_cast<size_t>(token_count * k));
  for (int64_t i = 0; i < token_count; ++i) std::copy_n(x.begin() + tokens[i] * k, k, x_rows.begin() + i * k);
  cpu.begin_step();
  QuantizedWeight cpu_weight = cpu.upload_quantized_weight(sub_view);
  Tensor cpu_x = cpu.upload_persistent(Tensor{x_rows.data(), DType::F32, {token_count, k}, Device{}}, DType::F32);
  const std::vector<float> expected = cpu.download_f32(cpu.linear_fp8(cpu_x, cpu_weight));

  // M[i, r] of the bound from the oracle's own quantization (cpu::quantize_e4m3_group).
  const float* table = cpu::e4m3_table();
  const int64_t group = block ? kBlock : k;
  std::vector<float> scaled_q(static_cast<size_t>(token_count * k));  // |q| x x_scale per token
  for (int64_t i = 0; i < token_count; ++i) {
    float* q = scaled_q.data() + i * k;
    for (int64_t g = 0; g < k / group; ++g) {
      const float scale = cpu::quantize_e4m3_group(x_rows.data() + i * k + g * group, group,
                                                   block ? cpu::kBlockMinScale : cpu::kTokenMinScale, q + g * group);
      for (int64_t c = g * group; c < (g + 1) * group; ++c) q[c] = std::fabs(q[c]) * scale;
    }
  }
  std::vector<double> magnitude(static_cast<size_t>(token_count * row_count));
  parallel_for(row_count, [&](int64_t r) {
    std::vector<float> weight_row(static_cast<size_t>(k));
    for (int64_t c = 0; c < k; ++c)
      weight_row[c] = std::fabs(table[host.codes[rows[r] * k + c]]) * host.scale(rows[r], c);
    for (int64_t i = 0; i < token_count; ++i) {
      double sum = 0;
      for (int64_t c = 0; c < k; ++c) sum += double(scaled_q[i * k + c]) * weight_row[c];
      magnitude[i * row_count + r] = sum;
    }
  });

  Comparison result;
  for (float value : out) result.non_finite += !std::isfinite(value);
  double dot = 0, gpu_norm = 0, cpu_norm = 0;
  for (int64_t i = 0; i < token_count; ++i) {
    for (int64_t r = 0; r < row_count; ++r) {
      const double want = expected[i * row_count + r], got = out[tokens[i] * n + rows[r]];
      const double error = std::isfinite(got) ? std::fabs(got - want) : INFINITY;
      const double allowed = kOutputRelative * std::fabs(want) + kMagnitudeRelative * magnitude[i * row_count + r] + 1e-30;
      result.worst = std::max(result.worst, error / allowed);
      if (tokens[i] == 1 && got != 0.0) ++result.nonzero_zero_token;
      dot += got * want, gpu_norm += got * got, cpu_norm += want * want;
      ++result.compared;
    }
  }
  result.cosine = cpu_norm > 0 ? dot / std::sqrt(gpu_norm * cpu_norm) : (gpu_norm == 0 ? 1.0 : 0.0);
  return result;
}

struct Projection {
  std::string name;
  int64_t n, k;
};

// DeepSeek-V3's FP8 projections as one GPU holds them at TP 1 and 8 (q_a, kv_a replicated),
// then ragged n: 200 rows end in a 72-row scale block and a 8-row half of a 16-row tile.
// `small_only`: the ragged shapes alone (every kernel path, seconds under compute-sanitizer).
std::vector<Projection> projections(Fp8Scaling scaling, bool small_only) {
  std::vector<Projection> all;
  for (int64_t tp : {1, 8}) {
    if (small_only) break;
    const std::string at = "TP" + std::to_string(tp) + " ";
    if (tp == 1) {
      all.push_back({at + "q_a", 1536, 7168});
      all.push_back({at + "kv_a", 576, 7168});
    }
    all.push_back({at + "q_b", 24576 / tp, 1536});
    all.push_back({at + "o_proj", 7168, 16384 / tp});
    all.push_back({at + "dense gate_up", 36864 / tp, 7168});
    all.push_back({at + "dense down", 7168, 18432 / tp});
  }
  all.push_back({"ragged", 200, 256});
  all.push_back({"one row", 1, 128});
  all.push_back({"ragged tile", 129, 384});
  if (scaling == Fp8Scaling::Channel) {  // any multiple of 16 in k
    all.push_back({"channel k 144", 200, 144});
    all.push_back({"channel k 48", 33, 48});
  }
  return all;
}

void check_layout(Fp8Scaling scaling, bool small_only = false) {
  ASSERT_TRUE(cuda_device_available()) << "the gpu tests need a CUDA device";
  const bool block = scaling == Fp8Scaling::Block;
  std::printf("seed %llu\n", static_cast<unsigned long long>(run_seed()));
  std::mt19937_64 rng(run_seed() + (block ? 0 : 1));
  uint64_t weight_seed = run_seed() * 3 + (block ? 0 : 7);
  for (const Projection& projection : projections(scaling, small_only)) {
    // Backends per shape, so the weights of the previous one are freed.
    auto gpu = make_cuda_backend(CudaBackendOptions{0, /*poison_step_allocations=*/true});
    auto cpu = make_cpu_backend(0);
    HostFp8Weight host = random_weight(projection.n, projection.k, scaling, ++weight_seed);
    const QuantizedWeight gpu_weight = gpu->upload_quantized_weight(host.view());
    double worst = 0, lowest_cosine = 1;
    for (int64_t m : {1, 3, 8, 12, 17, 32, 64, 65, 300}) {  // small-M: 1, 2, 4, 8 token tiles
      const Comparison result = run_case(*gpu, *cpu, host, gpu_weight, m, rng);
      const std::string what = std::string(block ? "block " : "channel ") + projection.name + " m=" +
                               std::to_string(m) + " n=" + std::to_string(projection.n) +
                               " k=" + std::to_string(projection.k);
      EXPECT_EQ(result.non_finite, 0) << what << ": unwritten or non-finite outputs";
      EXPECT_EQ(result.nonzero_zero_token, 0) << what << ": an all-zero token must give exact zeros";
      EXPECT_GE(result.cosine, kMinCosine) << what;
      EXPECT_LE(result.worst, 1.0) << what << ": an element is off (worst |diff| / bound)";
      worst = std::max(worst, result.worst);
      lowest_cosine = std::min(lowest_cosine, result.cosine);
    }
    std::printf("%-8s %-20s n=%6lld k=%6lld  1 - cosine %.2e  worst element / bound %.3f\n", block ? "block" : "channel",
                projection.name.c_str(), static_cast<long long>(projection.n), static_cast<long long>(projection.k),
                1 - lowest_cosine, worst);
  }
}

TEST(LinearFp8Cuda, BlockLayoutMatchesCpu) { check_layout(Fp8Scaling::Block); }
TEST(LinearFp8Cuda, ChannelLayoutMatchesCpu) { check_layout(Fp8Scaling::Channel); }
// The ragged shapes only, both layouts: what scripts/gpu-suite.sh runs under the sanitizers.
TEST(LinearFp8Cuda, SmallShapesMatchCpu) {
  check_layout(Fp8Scaling::Block, /*small_only=*/true);
  check_layout(Fp8Scaling::Channel, /*small_only=*/true);
}

// linear_fp8_split on a stacked weight (q_a over kv_a, and a ragged one whose second part ends in
// a partial scale block) against the whole product's columns, both on the GPU from the same
// quantized x. Up to 64 tokens it is one launch with linear_fp8's plan for the whole weight,
// so each part must equal its columns bit for bit; above, two products on the parts (each with
// its own plan): within f32 summation-order noise of them.
TEST(LinearFp8Cuda, SplitEqualsTheWholeProductsColumns) {
  ASSERT_TRUE(cuda_device_available()) << "the gpu tests need a CUDA device";
  struct Stacked {
    int64_t first, second, k;
  };
  std::mt19937_64 rng(run_seed() + 11);
  for (Fp8Scaling scaling : {Fp8Scaling::Block, Fp8Scaling::Channel})
    for (const Stacked& shape : {Stacked{1536, 576, 7168}, Stacked{256, 72, 384}}) {
      auto gpu = make_cuda_backend(CudaBackendOptions{0, /*poison_step_allocations=*/true});
      const int64_t n = shape.first + shape.second;
      HostFp8Weight host = random_weight(n, shape.k, scaling, run_seed() + 5);
      const QuantizedWeight w = gpu->upload_quantized_weight(host.view());
      for (int64_t m : {1, 5, 17, 40, 64, 65, 130}) {
        const std::string what = std::string(scaling == Fp8Scaling::Block ? "block " : "channel ") +
                                 std::to_string(shape.first) + "+" + std::to_string(shape.second) + " k " +
                                 std::to_string(shape.k) + " m " + std::to_string(m);
        const std::vector<float> x = random_activations(m, shape.k, rng);
        Tensor gpu_x = gpu->upload_persistent(Tensor{const_cast<float*>(x.data()), DType::F32, {m, shape.k}, Device{}},
                                              DType::BF16);
        gpu->begin_step();
        const QuantizedActivation q = gpu->quantize_fp8(gpu_x, Fp8ActivationLayout::of(w));
        const std::vector<float> whole = gpu->download_f32(gpu->linear_fp8(q, w));
        if (scaling == Fp8Scaling::Block)  // a cut inside a scale block is refused at every m
          EXPECT_ANY_THROW(gpu->linear_fp8_split(q, w, shape.first - 8)) << what;
        const auto [first, second] = gpu->linear_fp8_split(q, w, shape.first);
        ASSERT_EQ(first.shape, Shape({m, shape.first})) << what;
        ASSERT_EQ(second.shape, Shape({m, shape.second})) << what;
        const std::vector<float> parts[2] = {gpu->download_f32(first), gpu->download_f32(second)};
        double dot = 0, whole_norm = 0, split_norm = 0;
        int64_t differ = 0;
        for (int64_t t = 0; t < m; ++t)
          for (int64_t r = 0; r < n; ++r) {
            const bool in_first = r < shape.first;
            const float got = in_first ? parts[0][t * shape.first + r] : parts[1][t * shape.second + r - shape.first];
            const float want = whole[t * n + r];
            differ += !(got == want);
            dot += double(got) * want, whole_norm += double(want) * want, split_norm += double(got) * got;
          }
        if (m <= 64) {
          EXPECT_EQ(differ, 0) << what << ": the one-launch split must store linear_fp8's values";
        } else {
          EXPECT_GE(dot / std::sqrt(whole_norm * split_norm + 1e-300), kMinCosine) << what;
        }
      }
    }
}

// CudaBackendOptions::overlap_launches: x is quantized by the kernel right before the
// GEMM, each round from new values; the overlapped backend must match the plain one bit for bit.
// Step allocations are not poisoned: the output's poison fill would sit between the quantize
// kernel and the GEMM and hide an early read of the quantized x.
TEST(LinearFp8Cuda, OverlappedLaunchesReadThePreviousKernelsOutput) {
  ASSERT_TRUE(cuda_device_available()) << "the gpu tests need a CUDA device";
  CudaBackendOptions overlapped_options{0, /*poison_step_allocations=*/false};
  overlapped_options.overlap_launches = true;
  auto plain = make_cuda_backend(CudaBackendOptions{0, /*poison_step_allocations=*/false});
  auto overlapped = make_cuda_backend(overlapped_options);
  std::mt19937_64 rng(run_seed() + 21);
  for (Fp8Scaling scaling : {Fp8Scaling::Block, Fp8Scaling::Channel}) {
    HostFp8Weight host = random_weight(576, 7168, scaling, run_seed() + 3);
    const QuantizedWeight weights[2] = {plain->upload_quantized_weight(host.view()),
                                        overlapped->upload_quantized_weight(host.view())};
    for (int64_t m : {1, 9, 33, 64})
      for (int round = 0; round < 8; ++round) {
        const std::vector<float> x = random_activations(m, 7168, rng);
        std::vector<float> out[2];
        Backend* backends[2] = {plain.get(), overlapped.get()};
        for (int b = 0; b < 2; ++b) {
          Tensor gpu_x = backends[b]->upload_persistent(
              Tensor{const_cast<float*>(x.data()), DType::F32, {m, 7168}, Device{}}, DType::BF16);
          backends[b]->begin_step();
          out[b] = backends[b]->download_f32(backends[b]->linear_fp8(gpu_x, weights[b]));  // quantize, then GEMM
        }
        EXPECT_TRUE(out[0] == out[1]) << (scaling == Fp8Scaling::Block ? "block" : "channel") << " m " << m
                                      << " round " << round;
      }
  }
}

TEST(LinearFp8Cuda, UploadKeepsCodesAndWidensScales) {
  ASSERT_TRUE(cuda_device_available()) << "the gpu tests need a CUDA device";
  auto gpu = make_cuda_backend(CudaBackendOptions{0, /*poison_step_allocations=*/true});
  // Rank 3 (stacked experts): 2 x [200, 256] codes, bf16 scales [2, ceil(200 / 128), 256 / 128].
  HostFp8Weight host = random_weight(400, 256, Fp8Scaling::Block, run_seed());
  std::mt19937_64 rng(run_seed());
  std::vector<float> scales(8);
  std::vector<uint16_t> bf16_scales;
  for (float& s : scales) {
    s = std::ldexp(1.0f + static_cast<float>(rng() % 128) / 128.0f, -8 - static_cast<int>(rng() % 4));
    bf16_scales.push_back(f32_to_bf16(s));
    s = bf16_to_f32(bf16_scales.back());
  }
  QuantizedWeight stacked;
  stacked.scaling = Fp8Scaling::Block;
  stacked.block_out = stacked.block_in = kBlock;
  stacked.values = Tensor{host.codes.data(), DType::F8_E4M3, {2, 200, 256}, Device{}};
  stacked.scales = Tensor{bf16_scales.data(), DType::BF16, {2, 2, 2}, Device{}};
  const QuantizedWeight stored = gpu->upload_quantized_weight(stacked);
  EXPECT_EQ(stored.values.dtype, DType::F8_E4M3);
  EXPECT_EQ(stored.values.shape, Shape({2, 200, 256}));
  EXPECT_EQ(stored.scales.dtype, DType::F32);
  EXPECT_EQ(stored.scales.shape, Shape({2, 2, 2}));
  EXPECT_EQ(stored.block_out, kBlock);
  EXPECT_EQ(stored.block_in, kBlock);
  const std::vector<float> values = gpu->download_f32(stored.values);
  ASSERT_EQ(values.size(), host.codes.size());
  int64_t mismatched = 0;
  for (size_t i = 0; i < values.size(); ++i) mismatched += values[i] != e4m3_to_f32(host.codes[i]);  // no NaN codes
  EXPECT_EQ(mismatched, 0);
  EXPECT_EQ(gpu->download_f32(stored.scales), scales);
}

TEST(LinearFp8Cuda, InvalidShapesThrow) {
  ASSERT_TRUE(cuda_device_available()) << "the gpu tests need a CUDA device";
  auto gpu = make_cuda_backend(CudaBackendOptions{0, /*poison_step_allocations=*/true});
  HostFp8Weight host = random_weight(64, 256, Fp8Scaling::Block, run_seed());
  const QuantizedWeight w = gpu->upload_quantized_weight(host.view());
  std::vector<float> x(3 * 384, 1.0f);
  Tensor wrong_width = gpu->upload_persistent(Tensor{x.data(), DType::F32, {3, 384}, Device{}}, DType::BF16);
  Tensor f32_input = gpu->upload_persistent(Tensor{x.data(), DType::F32, {3, 256}, Device{}}, DType::F32);
  gpu->begin_step();
  EXPECT_NE(error_of([&] { gpu->linear_fp8(wrong_width, w); }).find("does not match"), std::string::npos);
  EXPECT_NE(error_of([&] { gpu->linear_fp8(f32_input, w); }).find("BF16"), std::string::npos);

  QuantizedWeight narrow_blocks = host.view();  // block_in 64: the kernels take 128 only
  narrow_blocks.block_in = 64;
  narrow_blocks.scales.shape = {1, 4};
  EXPECT_NE(error_of([&] { gpu->upload_quantized_weight(narrow_blocks); }).find("block_in 128"), std::string::npos);
  QuantizedWeight wrong_scales = host.view();
  wrong_scales.scales.shape = {2, 1};
  EXPECT_NE(error_of([&] { gpu->upload_quantized_weight(wrong_scales); }).find("expected [1, 2]"), std::string::npos);
  HostFp8Weight channel = random_weight(8, 40, Fp8Scaling::Channel, run_seed());  // 40 % 16 != 0
  EXPECT_NE(error_of([&] { gpu->upload_quantized_weight(channel.view()); }).find("multiple of 16"), std::string::npos);
  QuantizedWeight dense = host.view();
  dense.values.dtype = DType::BF16;
  EXPECT_NE(error_of([&] { gpu->upload_quantized_weight(dense); }).find("F8_E4M3"), std::string::npos);
}

}  // namespace
}  // namespace rackserve
