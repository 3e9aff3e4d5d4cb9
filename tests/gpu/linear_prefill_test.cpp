// The BF16 linear kernels against the CPU backend on the real per-GPU projection shapes of
// DeepSeek-V3, Kimi-K2 and GLM-5.1 at TP 1/2/4/8 and on odd n / k: the prefill (tiled) kernel
// for m in {65, 128, 333, 1024}, and the decode (small-M tensor-core) kernel for m in
// {1, 3, 8, 17, 32, 64}, as the backend plans it and with forced split-K / row_warps configs.
// Inputs are fresh each run (fill_random with a clock seed, printed), already bf16 on the
// GPU, and the CPU sees the very same values, so only the summation order differs. Outputs
// come from NaN-poisoned step memory: every element of every output must be finite. Where
// m*n*k is too large for the CPU oracle, it runs on sampled rows and columns that include
// every tile edge (first/last rows and columns, 128-boundaries).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "rackserve/kernels/gemm_params.h"

namespace rackserve {
namespace {

struct Projection {
  std::string name;
  int64_t n, k;  // weight [n, k]
};

struct ModelDims {
  const char* name;
  int64_t hidden, q_lora, heads, qk_head, v_head, intermediate, shared_intermediate, vocab;
};

// Every dense projection of the three models as one GPU holds it at TP 1/2/4/8 (q_a, kv_a
// replicated; heads, MLP and vocab split), deduplicated by (n, k), then odd edges.
std::vector<Projection> projections() {
  constexpr int64_t kLatent = 512, kRope = 64;
  const ModelDims models[] = {{"DeepSeek-V3", 7168, 1536, 128, 192, 128, 18432, 2048, 129280},
                              {"Kimi-K2", 7168, 1536, 64, 192, 128, 18432, 2048, 163840},
                              {"GLM-5.1", 6144, 2048, 64, 256, 256, 12288, 2048, 154880}};
  std::vector<Projection> all;
  std::set<std::pair<int64_t, int64_t>> seen;
  auto add = [&](std::string name, int64_t n, int64_t k) {
    if (seen.insert({n, k}).second) all.push_back({std::move(name), n, k});
  };
  for (const ModelDims& d : models) {
    for (int64_t tp : {1, 2, 4, 8}) {
      const std::string at = std::string(d.name) + " TP" + std::to_string(tp) + " ";
      add(at + "q_a", d.q_lora, d.hidden);
      add(at + "q_b", d.heads * d.qk_head / tp, d.q_lora);
      add(at + "kv_a", kLatent + kRope, d.hidden);
      add(at + "kv_b", d.heads * (d.qk_head - kRope + d.v_head) / tp, kLatent);
      add(at + "o_proj", d.hidden, d.heads * d.v_head / tp);
      add(at + "dense gate_up", 2 * d.intermediate / tp, d.hidden);
      add(at + "dense down", d.hidden, d.intermediate / tp);
      add(at + "shared gate_up", 2 * d.shared_intermediate / tp, d.hidden);
      add(at + "shared down", d.hidden, d.shared_intermediate / tp);
      add(at + "lm_head", d.vocab / tp, d.hidden);
    }
  }
  // n odd or one past a tile; k below one 32-wide slice, or a multiple of 8 but not of 32.
  for (auto [n, k] : std::vector<std::pair<int64_t, int64_t>>{
           {1, 8}, {3, 24}, {129, 40}, {257, 1000}, {127, 7176}, {4097, 520}, {1025, 2056}})
    add("edge", n, k);
  return all;
}

// Indices in [0, extent): all of them when `all`, else the tile edges plus random ones.
std::vector<int32_t> sample(int64_t extent, bool all, int random_count, std::mt19937_64& rng) {
  std::set<int64_t> chosen;
  if (all) {
    for (int64_t i = 0; i < extent; ++i) chosen.insert(i);
  } else {
    for (int64_t i : {0, 1, 2, 7, 8, 15, 16, 31, 32, 63, 64, 127, 128, 129, 255, 256})
      for (int64_t index : {i, extent - 1 - i}) chosen.insert(index);
    std::uniform_int_distribution<int64_t> pick(0, extent - 1);
    for (int i = 0; i < random_count; ++i) chosen.insert(pick(rng));
  }
  std::vector<int32_t> indices;
  for (int64_t index : chosen)
    if (index >= 0 && index < extent) indices.push_back(static_cast<int32_t>(index));
  return indices;
}

// bf16 inputs, f32 accumulation, identical inputs on both sides: the CPU sums 8 lanes in
// IEEE order, the tensor cores 16-wide chunks with their own alignment/rounding. Expected
// normalized differences are ~2^-24 sqrt(k) (1e-6 .. 1e-5 here); the bounds leave 10-20x
// room for truncating accumulation, while any indexing, swizzle or k-tail bug is >= 1e-2
// (one missing 8-wide chunk of k = 18432 already gives sqrt(8 / k) = 2e-2).
constexpr double kF32Relative = 2e-4;  // ||gpu - cpu|| / ||cpu||
constexpr double kF32Element = 2e-3;   // |gpu - cpu| / rms(cpu), every element
// bf16 output: one rounding (half an ulp, <= 2^-8 relative) that may flip by one ulp.
constexpr double kBf16Relative = 8e-3;
constexpr double kBf16ElementUlp = 1.0 / 128;  // |gpu - cpu| <= 2^-7 |cpu| + kF32Element rms

struct Comparison {
  int64_t non_finite = 0;
  double relative = 0, worst = 0;  // worst: max over elements of |gpu - cpu| / allowed
};

// `gpu` is the whole [m, n] output, `cpu` the oracle at rows x columns.
Comparison compare(const std::vector<float>& gpu, const std::vector<float>& cpu, int64_t n,
                   const std::vector<int32_t>& rows, const std::vector<int32_t>& columns, bool bf16_output) {
  Comparison result;
  for (float value : gpu) result.non_finite += !std::isfinite(value);
  double difference = 0, reference = 0;
  for (float value : cpu) reference += double(value) * value;
  const double rms = std::sqrt(reference / std::max<size_t>(1, cpu.size())) + 1e-30;
  for (size_t r = 0; r < rows.size(); ++r) {
    for (size_t c = 0; c < columns.size(); ++c) {
      const double expected = cpu[r * columns.size() + c], actual = gpu[int64_t(rows[r]) * n + columns[c]];
      const double error = std::isfinite(actual) ? std::abs(actual - expected) : INFINITY;
      difference += error * error;
      const double allowed = kF32Element * rms + (bf16_output ? kBf16ElementUlp * std::abs(expected) : 0.0);
      result.worst = std::max(result.worst, error / allowed);
    }
  }
  result.relative = std::sqrt(difference / std::max(reference, 1e-30));
  return result;
}

TEST(LinearPrefill, MatchesCpuOnRealProjectionShapes) {
  ASSERT_TRUE(cuda_device_available()) << "the gpu tests need a CUDA device";
  const uint64_t seed = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  uint64_t tensor_seed = seed;
  // Above this many multiply-adds per case the CPU oracle runs on samples.
  constexpr int64_t kFullOracleMacs = int64_t{1} << 31;

  for (const Projection& projection : projections()) {
    const int64_t n = projection.n, k = projection.k;
    // A backend per shape, so the weights of the previous one are freed.
    auto gpu = make_cuda_backend(CudaBackendOptions{0, /*poison_step_allocations=*/true});
    auto cpu = make_cpu_backend(0);
    Tensor weight = gpu->allocate_persistent(DType::BF16, {n, k});
    gpu->fill_random(weight, ++tensor_seed, std::sqrt(3.0f / float(k)));  // unit-variance outputs
    double worst_relative[2] = {0, 0}, worst_element[2] = {0, 0};
    for (int64_t m : {65, 128, 333, 1024}) {
      Tensor x = gpu->allocate_persistent(DType::BF16, {m, k});
      gpu->fill_random(x, ++tensor_seed, 1.0f);
      gpu->begin_step();
      cpu->begin_step();
      const std::vector<float> gpu_bf16 = gpu->download_f32(gpu->linear(x, weight));
      const std::vector<float> gpu_f32 = gpu->download_f32(gpu->linear_f32(x, weight));

      const bool full = m * n * k <= kFullOracleMacs;
      const std::vector<int32_t> rows = sample(m, full, 24, rng);
      const std::vector<int32_t> columns = sample(n, full || n <= 1024, 480, rng);
      const int64_t row_count = static_cast<int64_t>(rows.size()), column_count = static_cast<int64_t>(columns.size());
      std::vector<float> x_rows = gpu->download_f32(gpu->gather_rows(x, gpu->upload_step_ints(rows)));
      std::vector<float> w_rows = gpu->download_f32(gpu->gather_rows(weight, gpu->upload_step_ints(columns)));
      Tensor cpu_x = cpu->upload_persistent(Tensor{x_rows.data(), DType::F32, {row_count, k}, Device{}}, DType::F32);
      Tensor cpu_w =
          cpu->upload_persistent(Tensor{w_rows.data(), DType::F32, {column_count, k}, Device{}}, DType::F32);
      const std::vector<float> expected = cpu->download_f32(cpu->linear(cpu_x, cpu_w));

      const std::string what = projection.name + " m=" + std::to_string(m) + " n=" + std::to_string(n) +
                               " k=" + std::to_string(k) + (full ? "" : " (sampled oracle)");
      for (int output = 0; output < 2; ++output) {
        const bool bf16 = output == 0;
        Comparison result = compare(bf16 ? gpu_bf16 : gpu_f32, expected, n, rows, columns, bf16);
        EXPECT_EQ(result.non_finite, 0) << what << (bf16 ? " bf16" : " f32") << ": unwritten or non-finite outputs";
        EXPECT_LT(result.relative, bf16 ? kBf16Relative : kF32Relative) << what << (bf16 ? " bf16" : " f32");
        EXPECT_LE(result.worst, 1.0) << what << (bf16 ? " bf16" : " f32") << ": an element is off";
        worst_relative[output] = std::max(worst_relative[output], result.relative);
        worst_element[output] = std::max(worst_element[output], result.worst);
      }
    }
    std::printf("%-32s n=%6lld k=%6lld  relative error bf16 %.2e f32 %.2e  worst element / bound bf16 %.2f f32 %.2f\n",
                projection.name.c_str(), static_cast<long long>(n), static_cast<long long>(k), worst_relative[0],
                worst_relative[1], worst_element[0], worst_element[1]);
  }
}


// The CUDA backend with its stream exposed, so the test can launch the small-M kernel directly
// in order with the backend's fills and downloads.
class StreamCudaBackend : public CudaBackend {
 public:
  using CudaBackend::CudaBackend;
  using CudaBackend::stream;
};

TEST(LinearSmallM, MatchesCpuOnRealProjectionShapesWithForcedSplits) {
  ASSERT_TRUE(cuda_device_available()) << "the gpu tests need a CUDA device";
  const uint64_t seed = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  uint64_t tensor_seed = seed;
  constexpr int64_t kFullOracleMacs = int64_t{1} << 27;

  for (const Projection& projection : projections()) {
    const int64_t n = projection.n, k = projection.k;
    const int64_t k_blocks = (k + kernels::kLinearBf16SmallMBlockK - 1) / kernels::kLinearBf16SmallMBlockK;
    StreamCudaBackend gpu(CudaBackendOptions{0, /*poison_step_allocations=*/true});
    auto cpu = make_cpu_backend(0);
    Tensor weight = gpu.allocate_persistent(DType::BF16, {n, k});
    gpu.fill_random(weight, ++tensor_seed, std::sqrt(3.0f / float(k)));  // unit-variance outputs
    // Outputs and workspace are allocated once per shape (persistent memory is only freed with
    // the backend): y views of [64, n], the workspace grown when a config needs more.
    Tensor y_f32 = gpu.allocate_persistent(DType::F32, {kernels::kLinearBf16SmallMMaxTokens, n});
    Tensor y_bf16 = gpu.allocate_persistent(DType::BF16, {kernels::kLinearBf16SmallMMaxTokens, n});
    Tensor workspace = gpu.allocate_persistent(DType::F32, {1});
    // Split counters (LinearBf16Params::split_counters) as f32 zeros: one per row group.
    Tensor counters = gpu.allocate_persistent(DType::F32, {std::min<int64_t>(n, kernels::kLinearSplitCounters)});
    gpu.fill(counters, 0.0f);
    double worst_relative = 0, worst_element = 0;
    for (int64_t m : {1, 3, 8, 17, 32, 64}) {
      Tensor x = gpu.allocate_persistent(DType::BF16, {m, k});
      gpu.fill_random(x, ++tensor_seed, 1.0f);
      const bool full = m * n * k <= kFullOracleMacs;
      const std::vector<int32_t> rows = sample(m, true, 0, rng);
      const std::vector<int32_t> columns = sample(n, full || n <= 512, 160, rng);
      gpu.begin_step();
      cpu->begin_step();
      std::vector<float> w_rows = gpu.download_f32(gpu.gather_rows(weight, gpu.upload_step_ints(columns)));
      std::vector<float> x_rows = gpu.download_f32(x);
      const int64_t column_count = static_cast<int64_t>(columns.size());
      Tensor cpu_x = cpu->upload_persistent(Tensor{x_rows.data(), DType::F32, {m, k}, Device{}}, DType::F32);
      Tensor cpu_w = cpu->upload_persistent(Tensor{w_rows.data(), DType::F32, {column_count, k}, Device{}}, DType::F32);
      const std::vector<float> expected = cpu->download_f32(cpu->linear(cpu_x, cpu_w));
      const std::string what = projection.name + " m=" + std::to_string(m) + " n=" + std::to_string(n) +
                               " k=" + std::to_string(k) + (full ? "" : " (sampled oracle)");
      auto check = [&](const std::vector<float>& actual, bool bf16, const std::string& how) {
        Comparison result = compare(actual, expected, n, rows, columns, bf16);
        const std::string label = what + " " + how + (bf16 ? " bf16" : " f32");
        EXPECT_EQ(result.non_finite, 0) << label << ": unwritten or non-finite outputs";
        EXPECT_LT(result.relative, bf16 ? kBf16Relative : kF32Relative) << label;
        EXPECT_LE(result.worst, 1.0) << label << ": an element is off";
        worst_relative = std::max(worst_relative, result.relative);
        worst_element = std::max(worst_element, result.worst);
      };

      // As the server runs it: Backend::linear plans the config, outputs in poisoned step memory.
      check(gpu.download_f32(gpu.linear(x, weight)), true, "planned");
      check(gpu.download_f32(gpu.linear_f32(x, weight)), false, "planned");

      // Forced configs, launched directly into NaN-filled outputs and workspace: no split,
      // uneven splits, every row_warps, one K block per split (capped where the workspace
      // would be large), and the plan twice to check that split-K is deterministic.
      const int many = static_cast<int>(std::min<int64_t>(k_blocks, n <= 8192 ? 128 : 16));
      const kernels::LinearBf16SmallMConfig planned = kernels::plan_linear_bf16_small_m(m, n, k);
      std::vector<kernels::LinearBf16SmallMConfig> configs = {
          kernels::linear_bf16_small_m_config(m, k, 1, 1), kernels::linear_bf16_small_m_config(m, k, 2, 2),
          kernels::linear_bf16_small_m_config(m, k, 3), kernels::linear_bf16_small_m_config(m, k, 7, 4),
          kernels::linear_bf16_small_m_config(m, k, many), planned, planned};
      std::vector<float> planned_f32;
      for (size_t c = 0; c < configs.size(); ++c) {
        const kernels::LinearBf16SmallMConfig& config = configs[c];
        const std::string how = "row_warps " + std::to_string(config.row_warps) + " splits " +
                                std::to_string(config.splits) + " x " + std::to_string(config.k_blocks_per_split);
        const int64_t workspace_floats = kernels::linear_bf16_workspace_floats(m, n, config);
        if (workspace_floats > workspace.numel()) workspace = gpu.allocate_persistent(DType::F32, {workspace_floats});
        for (bool bf16 : {false, true}) {
          Tensor y = (bf16 ? y_bf16 : y_f32).rows(0, m);
          gpu.fill(y, NAN);
          gpu.fill(workspace, NAN);
          kernels::LinearBf16Params params{x.data, weight.data, y.data,
                                           bf16 ? kernels::ElementType::BF16 : kernels::ElementType::F32,
                                           m, n, k, workspace.as<float>()};
          ASSERT_EQ(kernels::launch_linear_bf16_small_m_mma(params, config, gpu.stream()), 0) << what << " " << how;
          const std::vector<float> actual = gpu.download_f32(y);
          check(actual, bf16, how);
          // The same launch finishing its splits in the kernel (split counters): the reduction
          // kernel's values bit for bit, and the counters left zeroed for the next launch.
          gpu.fill(y, NAN);
          gpu.fill(workspace, NAN);  // a last CTA reading another split's partial too early sees NaN
          params.split_counters = counters.as<unsigned>();
          ASSERT_EQ(kernels::launch_linear_bf16_small_m_mma(params, config, gpu.stream()), 0) << what << " " << how;
          EXPECT_TRUE(gpu.download_f32(y) == actual) << what << " " << how << ": in-kernel split sums differ";
          const std::vector<float> left = gpu.download_f32(counters);
          EXPECT_EQ(std::count(left.begin(), left.end(), 0.0f), static_cast<int64_t>(left.size()))
              << what << " " << how << ": split counters not reset";
          if (!bf16 && c + 2 == configs.size()) planned_f32 = actual;
          if (!bf16 && c + 1 == configs.size()) {
            EXPECT_TRUE(actual == planned_f32) << what << " " << how << ": two runs of the plan differ";
          }
        }
      }
    }
    std::printf("%-32s n=%6lld k=%6lld  small-M worst relative error %.2e, worst element / bound %.2f\n",
                projection.name.c_str(), static_cast<long long>(n), static_cast<long long>(k), worst_relative,
                worst_element);
  }
}

// linear_split on a stacked weight (q_a over kv_a; a ragged pair) against linear's columns on
// the same GPU input: up to 64 tokens one small-M launch with linear's plan for the whole
// weight, so bit for bit; above, two tiled products on the parts: within a bf16 rounding.
TEST(LinearSplit, EqualsTheWholeProductsColumns) {
  ASSERT_TRUE(cuda_device_available()) << "the gpu tests need a CUDA device";
  struct Stacked {
    int64_t first, second, k;
  };
  uint64_t tensor_seed = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  for (const Stacked& shape : {Stacked{1536, 576, 7168}, Stacked{200, 72, 264}}) {
    auto gpu = make_cuda_backend(CudaBackendOptions{0, /*poison_step_allocations=*/true});
    const int64_t n = shape.first + shape.second;
    Tensor weight = gpu->allocate_persistent(DType::BF16, {n, shape.k});
    gpu->fill_random(weight, ++tensor_seed, std::sqrt(3.0f / float(shape.k)));
    for (int64_t m : {1, 5, 17, 40, 64, 65, 130}) {
      const std::string what = std::to_string(shape.first) + "+" + std::to_string(shape.second) + " k " +
                               std::to_string(shape.k) + " m " + std::to_string(m);
      Tensor x = gpu->allocate_persistent(DType::BF16, {m, shape.k});
      gpu->fill_random(x, ++tensor_seed, 1.0f);
      gpu->begin_step();
      const std::vector<float> whole = gpu->download_f32(gpu->linear(x, weight));
      const auto [first, second] = gpu->linear_split(x, weight, shape.first);
      ASSERT_EQ(first.shape, Shape({m, shape.first})) << what;
      ASSERT_EQ(second.shape, Shape({m, shape.second})) << what;
      const std::vector<float> parts[2] = {gpu->download_f32(first), gpu->download_f32(second)};
      int64_t differ = 0;
      const double tolerance = m <= 64 ? 0.0 : 1.0 / 128;  // one bf16 ulp at most past the one launch
      for (int64_t t = 0; t < m; ++t)
        for (int64_t r = 0; r < n; ++r) {
          const float got =
              r < shape.first ? parts[0][t * shape.first + r] : parts[1][t * shape.second + r - shape.first];
          const float want = whole[t * n + r];
          differ += !(std::fabs(double(got) - want) <= tolerance * std::fabs(want));
        }
      EXPECT_EQ(differ, 0) << what << ": linear_split must store linear's values";
    }
  }
}

// CudaBackendOptions::overlap_launches: the decode GEMMs start while the previous kernel
// finishes and must still read its output. Each round a kernel rewrites x (fill_random with a
// new seed) right before the GEMM, on the same stream; the overlapped backend must give the
// plain one's values bit for bit, every round (a GEMM reading x before waiting would see the
// previous round's x). Step allocations are not poisoned here: the poison fill would sit
// between fill_random and the GEMM and hide an early read of x.
TEST(LinearSmallM, OverlappedLaunchesReadThePreviousKernelsOutput) {
  ASSERT_TRUE(cuda_device_available()) << "the gpu tests need a CUDA device";
  CudaBackendOptions overlapped_options{0, /*poison_step_allocations=*/false};
  overlapped_options.overlap_launches = true;
  auto plain = make_cuda_backend(CudaBackendOptions{0, /*poison_step_allocations=*/false});
  auto overlapped = make_cuda_backend(overlapped_options);
  for (const auto& [n, k] : {std::pair<int64_t, int64_t>{576, 7168}, {7168, 2048}, {200, 264}}) {
    Tensor weights[2] = {plain->allocate_persistent(DType::BF16, {n, k}),
                         overlapped->allocate_persistent(DType::BF16, {n, k})};
    plain->fill_random(weights[0], 99, std::sqrt(3.0f / float(k)));
    overlapped->fill_random(weights[1], 99, std::sqrt(3.0f / float(k)));
    for (int64_t m : {1, 9, 33, 64})
      for (uint64_t round = 0; round < 8; ++round) {
        std::vector<float> out[2];
        Backend* backends[2] = {plain.get(), overlapped.get()};
        for (int b = 0; b < 2; ++b) {
          backends[b]->begin_step();
          Tensor x = backends[b]->allocate_step(DType::BF16, {m, k});
          backends[b]->fill_random(x, 1000 + round, 1.0f);
          out[b] = backends[b]->download_f32(backends[b]->linear(x, weights[b]));
        }
        EXPECT_TRUE(out[0] == out[1]) << "n " << n << " k " << k << " m " << m << " round " << round;
      }
  }
}

}  // namespace
}  // namespace rackserve
