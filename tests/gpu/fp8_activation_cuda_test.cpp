// The CUDA backend's FP8 activations: quantize_fp8 and the producers fused with it
// (rms_norm_fp8, add_rms_norm_fp8: kernels/common/rms_norm_fp8.cu; silu_mul_fp8:
// silu_mul_fp8.cu), on fresh random inputs each run (seed printed), outputs poisoned (NaN, and
// the e4m3 NaN code 0x7f) before every op. For each op, in both layouts, at the DeepSeek-V3
// widths (TP 1 and 8), narrow and ragged ones, and widths past kFp8FusedMaxWidth (the unfused
// fallback):
//   - fused == plain op + quantize_fp8 on CUDA, bit for bit (normed output, residual, e4m3 codes,
//     scales);
//   - the e4m3 codes and scales == the CPU oracle's quantize_fp8 of the CUDA op's bf16 output,
//     bit for bit;
//   - the bf16 output itself within the documented tolerance of the CPU oracle's f32 op: only
//     the norm's float summation order (and rsqrtf, expf) differs, then one bf16 rounding:
//     |gpu - cpu| <= 2^-8 |cpu| elementwise (2^-9 for the rounding, far less for the rest).
// Then the products: linear_fp8 and the FP8 routed experts on a fused copy == on the plain
// tensor, bit for bit; the fused ops replayed from a CUDA graph == run eagerly.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "core/dtype.h"
#include "rackserve/kernels/fp8_activation_params.h"
#include "support/shared_models.h"
#include "support/test_random.h"

namespace rackserve {
namespace {

using testing::error_of;
using testing::run_seed;

constexpr int64_t kBlock = 128;  // the CUDA kernels' activation group (DeepSeek's block_in)
constexpr double kBf16OutputRelative = 1.0 / 256;

Fp8ActivationLayout block_layout() { return {Fp8Scaling::Block, kBlock}; }
Fp8ActivationLayout channel_layout() { return {Fp8Scaling::Channel, 0}; }
std::string name(const Fp8ActivationLayout& layout) {
  return layout.scaling == Fp8Scaling::Block ? "block" : "channel";
}

// Widths of each layout's test: DeepSeek-V3's (hidden 7168, q_lora 1536, dense intermediate
// 18432 at TP 1 and 8, expert intermediate 2048 and 256), narrow and ragged ones (4224 is not a
// multiple of the CTA's 1024 columns), one past the RMSNorm's register path (16384, 10000: the
// fused kernel's loop), and one past the fused kernels' limit.
static_assert(kernels::kFp8FusedMaxWidth < 36864, "the widest test widths must take the unfused fallback");
std::vector<int64_t> norm_widths(Fp8Scaling scaling) {
  if (scaling == Fp8Scaling::Block) return {7168, 1536, 512, 4224, 16384, 36864};
  return {7168, 1536, 48, 144, 10000, 40000};
}
std::vector<int64_t> silu_widths(Fp8Scaling scaling) {
  if (scaling == Fp8Scaling::Block) return {18432, 2304, 2048, 256, 128, 36864};
  return {18432, 2304, 256, 48, 144, 40000};
}

// The bits of a float vector (NaN-exact, -0 distinct from 0).
std::vector<uint32_t> bits(const std::vector<float>& values) {
  std::vector<uint32_t> out(values.size());
  std::memcpy(out.data(), values.data(), values.size() * sizeof(float));
  return out;
}

int64_t count_nan(const std::vector<float>& values) {
  int64_t count = 0;
  for (float v : values) count += std::isnan(v);
  return count;
}

class Fp8ActivationsCuda : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(cuda_device_available()) << "the gpu tests need a CUDA device";
    gpu_ = make_cuda_backend(CudaBackendOptions{0, /*poison_step_allocations=*/true});
    cpu_ = make_cpu_backend(0);
    rng_.seed(run_seed() + ::testing::UnitTest::GetInstance()->random_seed());
    std::printf("seed %llu\n", static_cast<unsigned long long>(run_seed()));
  }

  // rows x width bf16-representable values with a magnitude per row and a spread per column
  // (channel outliers, as real activations have). With `special_rows`, row 1 is all zeros,
  // row 2 tiny and row 3 huge (where the rows exist).
  std::vector<float> activations(int64_t rows, int64_t width, float scale = 1.0f, bool special_rows = true) {
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> column(static_cast<size_t>(width));
    for (float& c : column) c = std::exp(0.7f * normal(rng_));
    std::vector<float> x(static_cast<size_t>(rows * width));
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t kind = special_rows ? r : 0;
      const float magnitude = kind == 2 ? 1e-6f : kind == 3 ? 1e30f : scale * std::exp2(2.0f * normal(rng_));
      for (int64_t c = 0; c < width; ++c)
        x[r * width + c] = kind == 1 ? 0.0f : bf16_to_f32(f32_to_bf16(normal(rng_) * column[c] * magnitude));
    }
    return x;
  }
  std::vector<float> ordinary(int64_t rows, int64_t width) { return activations(rows, width, 1.0f, false); }

  Tensor on_gpu(std::vector<float>& values, const Shape& shape, DType dtype) {
    return gpu_->upload_persistent(Tensor{values.data(), DType::F32, shape, Device{}}, dtype);
  }
  Tensor on_cpu(std::vector<float>& values, const Shape& shape) {
    return cpu_->upload_persistent(Tensor{values.data(), DType::F32, shape, Device{}}, DType::F32);
  }

  struct HostQuantized {
    std::vector<float> values, scales;  // e4m3 codes decoded (exact), f32 scales
  };
  HostQuantized download(Backend& backend, const QuantizedActivation& q) {
    return {backend.download_f32(q.values), backend.download_f32(q.scales)};
  }

  void expect_identical(const HostQuantized& got, const HostQuantized& want, const std::string& what) {
    EXPECT_EQ(count_nan(got.values), 0) << what << ": unwritten (NaN-coded) e4m3 values";
    EXPECT_EQ(count_nan(got.scales), 0) << what << ": unwritten scales";
    EXPECT_TRUE(bits(got.values) == bits(want.values)) << what << ": e4m3 codes differ";
    EXPECT_TRUE(bits(got.scales) == bits(want.scales)) << what << ": scales differ";
  }

  // The CPU oracle's quantization of the CUDA backend's bf16 values.
  HostQuantized oracle_quantization(std::vector<float> values, const Shape& shape, const Fp8ActivationLayout& layout) {
    cpu_->begin_step();
    return download(*cpu_, cpu_->quantize_fp8(on_cpu(values, shape), layout));
  }

  // Elementwise |gpu - cpu| <= 2^-8 |cpu|; returns the worst ratio to the bound (<= 1 passes).
  static double worst_bf16_error(const std::vector<float>& gpu, const std::vector<float>& cpu) {
    double worst = 0.0;
    for (size_t i = 0; i < gpu.size(); ++i) {
      const double error = std::fabs(double(gpu[i]) - cpu[i]);
      if (!std::isfinite(gpu[i])) return INFINITY;
      if (error > 0) worst = std::max(worst, error / (kBf16OutputRelative * std::fabs(cpu[i]) + 1e-37));
    }
    return worst;
  }

  std::unique_ptr<Backend> gpu_, cpu_;
  std::mt19937_64 rng_;
};

TEST_F(Fp8ActivationsCuda, QuantizeMatchesTheCpuOracle) {
  for (const Fp8ActivationLayout& layout : {block_layout(), channel_layout()}) {
    for (int64_t width : norm_widths(layout.scaling)) {
      for (int64_t rows : {1, 5, 65}) {
        const std::string what = name(layout) + " quantize_fp8 " + std::to_string(rows) + "x" + std::to_string(width);
        std::vector<float> x = activations(rows, width);
        Tensor input = on_gpu(x, {rows, width}, DType::BF16);
        gpu_->begin_step();
        const HostQuantized got = download(*gpu_, gpu_->quantize_fp8(input, layout));
        expect_identical(got, oracle_quantization(x, {rows, width}, layout), what);
      }
    }
  }
}

TEST_F(Fp8ActivationsCuda, RmsNormFp8EqualsTheUnfusedOpsAndTheOracle) {
  for (const Fp8ActivationLayout& layout : {block_layout(), channel_layout()}) {
    for (int64_t width : norm_widths(layout.scaling)) {
      for (int64_t rows : {1, 3, 17, 65, 300}) {
        if (rows == 300 && width > 8192) continue;  // the CPU oracle's share of the run time
        for (DType input_dtype : {DType::F32, DType::BF16}) {  // the residual stream / a projection's output
          const std::string what = name(layout) + " rms_norm_fp8 " + std::to_string(rows) + "x" +
                                   std::to_string(width) + (input_dtype == DType::F32 ? " f32 in" : " bf16 in");
          std::vector<float> x = activations(rows, width), weight = ordinary(1, width);
          for (float& w : weight) w = bf16_to_f32(f32_to_bf16(1.0f + 0.25f * std::tanh(w)));
          Tensor input = on_gpu(x, {rows, width}, input_dtype), norm_weight = on_gpu(weight, {width}, DType::BF16);
          gpu_->begin_step();
          const NormedActivation fused = gpu_->rms_norm_fp8(input, norm_weight, 1e-6f, layout);
          const Tensor plain = gpu_->rms_norm(input, norm_weight, 1e-6f);
          const std::vector<float> normed = gpu_->download_f32(fused.normed);
          EXPECT_TRUE(bits(normed) == bits(gpu_->download_f32(plain))) << what << ": normed output differs";
          const HostQuantized got = download(*gpu_, fused.fp8);
          expect_identical(got, download(*gpu_, gpu_->quantize_fp8(plain, layout)), what + " vs the unfused ops");
          expect_identical(got, oracle_quantization(normed, {rows, width}, layout), what + " vs the oracle");

          cpu_->begin_step();
          const std::vector<float> oracle =
              cpu_->download_f32(cpu_->rms_norm(on_cpu(x, {rows, width}), on_cpu(weight, {width}), 1e-6f));
          EXPECT_LE(worst_bf16_error(normed, oracle), 1.0) << what << ": normed output vs the f32 oracle";
        }
      }
    }
  }
}

TEST_F(Fp8ActivationsCuda, AddRmsNormFp8EqualsTheUnfusedOpsAndTheOracle) {
  for (const Fp8ActivationLayout& layout : {block_layout(), channel_layout()}) {
    for (int64_t width : norm_widths(layout.scaling)) {
      for (int64_t rows : {1, 17, 65}) {
        const std::string what =
            name(layout) + " add_rms_norm_fp8 " + std::to_string(rows) + "x" + std::to_string(width);
        std::vector<float> x = activations(rows, width), residual = ordinary(rows, width);
        std::vector<float> weight(static_cast<size_t>(width), 0.875f);
        Tensor input = on_gpu(x, {rows, width}, DType::BF16), norm_weight = on_gpu(weight, {width}, DType::BF16);
        Tensor fused_residual = on_gpu(residual, {rows, width}, DType::F32);
        Tensor plain_residual = on_gpu(residual, {rows, width}, DType::F32);
        gpu_->begin_step();
        const NormedActivation fused = gpu_->add_rms_norm_fp8(fused_residual, input, norm_weight, 1e-6f, layout);
        const Tensor plain = gpu_->add_rms_norm(plain_residual, input, norm_weight, 1e-6f);
        const std::vector<float> sum = gpu_->download_f32(fused_residual);
        EXPECT_TRUE(bits(sum) == bits(gpu_->download_f32(plain_residual))) << what << ": residual differs";
        const std::vector<float> normed = gpu_->download_f32(fused.normed);
        EXPECT_TRUE(bits(normed) == bits(gpu_->download_f32(plain))) << what << ": normed output differs";
        const HostQuantized got = download(*gpu_, fused.fp8);
        expect_identical(got, download(*gpu_, gpu_->quantize_fp8(plain, layout)), what + " vs the unfused ops");
        expect_identical(got, oracle_quantization(normed, {rows, width}, layout), what + " vs the oracle");

        cpu_->begin_step();
        Tensor cpu_residual = on_cpu(residual, {rows, width});
        const std::vector<float> oracle = cpu_->download_f32(
            cpu_->add_rms_norm(cpu_residual, on_cpu(x, {rows, width}), on_cpu(weight, {width}), 1e-6f));
        EXPECT_TRUE(bits(sum) == bits(cpu_->download_f32(cpu_residual))) << what << ": residual vs the oracle";
        EXPECT_LE(worst_bf16_error(normed, oracle), 1.0) << what << ": normed output vs the f32 oracle";
      }
    }
  }
}

TEST_F(Fp8ActivationsCuda, SiluMulFp8EqualsTheUnfusedOpsAndTheOracle) {
  for (const Fp8ActivationLayout& layout : {block_layout(), channel_layout()}) {
    for (int64_t width : silu_widths(layout.scaling)) {
      for (int64_t rows : {1, 3, 17, 65, 300}) {
        if (rows == 300 && width > 4096) continue;
        const std::string what = name(layout) + " silu_mul_fp8 " + std::to_string(rows) + "x" + std::to_string(width);
        std::vector<float> gate_up = activations(rows, 2 * width);
        for (int64_t r = 0; r < rows; ++r)  // gates of ordinary size; the ups keep each row's magnitude
          for (int64_t c = 0; c < width; ++c) {
            float& gate = gate_up[r * 2 * width + c];
            gate = bf16_to_f32(f32_to_bf16(std::tanh(gate) * 6.0f));
          }
        Tensor input = on_gpu(gate_up, {rows, 2 * width}, DType::BF16);
        gpu_->begin_step();
        const HostQuantized got = download(*gpu_, gpu_->silu_mul_fp8(input, layout));
        const Tensor plain = gpu_->silu_mul(input);
        const std::vector<float> activated = gpu_->download_f32(plain);
        expect_identical(got, download(*gpu_, gpu_->quantize_fp8(plain, layout)), what + " vs quantize_fp8(silu_mul)");
        expect_identical(got, oracle_quantization(activated, {rows, width}, layout), what + " vs the oracle");

        cpu_->begin_step();
        const std::vector<float> oracle = cpu_->download_f32(cpu_->silu_mul(on_cpu(gate_up, {rows, 2 * width})));
        EXPECT_LE(worst_bf16_error(activated, oracle), 1.0) << what << ": silu_mul output vs the f32 oracle";
      }
    }
  }
}

// A random FP8 weight ([experts,] out, in) on the GPU: valid codes, scales 2^-12..2^-4.
QuantizedWeight random_fp8_weight(Backend& gpu, Shape shape, Fp8Scaling scaling, std::mt19937_64& rng) {
  const bool block = scaling == Fp8Scaling::Block;
  const int64_t out = shape[shape.size() - 2], in = shape.back(), count = shape.size() == 3 ? shape[0] : 1;
  std::vector<uint8_t> codes(static_cast<size_t>(count * out * in));
  for (uint8_t& code : codes) {
    code = static_cast<uint8_t>(rng());
    if ((code & 0x7f) == 0x7f) code ^= 1;  // no NaN codes
  }
  Shape scale_shape = shape.size() == 3 ? Shape{count} : Shape{};
  if (block) {
    scale_shape.push_back((out + kBlock - 1) / kBlock);
    scale_shape.push_back(in / kBlock);
  } else {
    scale_shape.push_back(out);
  }
  std::vector<float> scales(static_cast<size_t>(shape_numel(scale_shape)));
  std::uniform_real_distribution<float> exponent(-12.0f, -4.0f);
  for (float& s : scales) s = std::exp2(exponent(rng));
  QuantizedWeight host;
  host.scaling = scaling;
  host.block_out = host.block_in = block ? kBlock : 0;
  host.values = Tensor{codes.data(), DType::F8_E4M3, shape, Device{}};
  host.scales = Tensor{scales.data(), DType::F32, scale_shape, Device{}};
  return gpu.upload_quantized_weight(host);
}

TEST_F(Fp8ActivationsCuda, ProductsOnFusedCopiesEqualTheUnfusedPath) {
  for (Fp8Scaling scaling : {Fp8Scaling::Block, Fp8Scaling::Channel}) {
    // q_a_proj and kv_a_proj_with_mqa read one copy of the input norm; down_proj (TP 8) the SiLU's.
    const QuantizedWeight q_a = random_fp8_weight(*gpu_, {1536, 7168}, scaling, rng_);
    const QuantizedWeight kv_a = random_fp8_weight(*gpu_, {576, 7168}, scaling, rng_);
    const QuantizedWeight down = random_fp8_weight(*gpu_, {7168, 2304}, scaling, rng_);
    const Fp8ActivationLayout layout = Fp8ActivationLayout::of(q_a);
    for (int64_t rows : {1, 17, 65, 300}) {
      const std::string what = name(layout) + " m=" + std::to_string(rows);
      std::vector<float> hidden = ordinary(rows, 7168), weight(7168, 1.0f), gate_up = ordinary(rows, 2 * 2304);
      Tensor x = on_gpu(hidden, {rows, 7168}, DType::F32), norm_weight = on_gpu(weight, {7168}, DType::BF16);
      Tensor gate_up_input = on_gpu(gate_up, {rows, 2 * 2304}, DType::BF16);
      gpu_->begin_step();
      const NormedActivation fused = gpu_->rms_norm_fp8(x, norm_weight, 1e-6f, layout);
      const Tensor plain = gpu_->rms_norm(x, norm_weight, 1e-6f);
      for (const QuantizedWeight* w : {&q_a, &kv_a}) {
        const std::vector<float> on_copy = gpu_->download_f32(gpu_->linear_fp8(fused.fp8, *w));
        EXPECT_EQ(count_nan(on_copy), 0) << what;
        EXPECT_TRUE(bits(on_copy) == bits(gpu_->download_f32(gpu_->linear_fp8(plain, *w))))
            << what << " n=" << w->out_features() << ": linear_fp8 on the norm's copy vs on its output";
      }
      const std::vector<float> down_fused =
          gpu_->download_f32(gpu_->linear_fp8(gpu_->silu_mul_fp8(gate_up_input, layout), down));
      EXPECT_TRUE(bits(down_fused) == bits(gpu_->download_f32(gpu_->linear_fp8(gpu_->silu_mul(gate_up_input), down))))
          << what << ": down_proj on silu_mul_fp8 vs on silu_mul";
    }
  }
}

TEST_F(Fp8ActivationsCuda, RoutedExpertsOnTheNormsCopyEqualTheUnfusedPath) {
  const int64_t experts = 16, hidden = 512, inter = 256, top_k = 4;
  for (Fp8Scaling scaling : {Fp8Scaling::Block, Fp8Scaling::Channel}) {
    ExpertWeights weights;
    weights.gate_up_fp8 = random_fp8_weight(*gpu_, {experts, 2 * inter, hidden}, scaling, rng_);
    weights.down_fp8 = random_fp8_weight(*gpu_, {experts, hidden, inter}, scaling, rng_);
    const Fp8ActivationLayout layout = Fp8ActivationLayout::of(*weights.gate_up_fp8);
    for (int64_t tokens : {1, 17, 70}) {
      const std::string what = name(layout) + " tokens=" + std::to_string(tokens);
      std::vector<float> x = ordinary(tokens, hidden), residual = ordinary(tokens, hidden);
      std::vector<float> weight(static_cast<size_t>(hidden), 1.0f), routing_weights;
      std::vector<int32_t> ids;
      for (int64_t t = 0; t < tokens; ++t) {
        std::vector<int32_t> order(experts);
        for (int32_t e = 0; e < experts; ++e) order[e] = e;
        std::shuffle(order.begin(), order.end(), rng_);
        for (int64_t k = 0; k < top_k; ++k) {
          ids.push_back(order[k]);
          routing_weights.push_back(std::uniform_real_distribution<float>(0.0f, 0.5f)(rng_));
        }
      }
      Tensor input = on_gpu(x, {tokens, hidden}, DType::BF16), norm_weight = on_gpu(weight, {hidden}, DType::BF16);
      Tensor fused_residual = on_gpu(residual, {tokens, hidden}, DType::F32);
      Tensor plain_residual = on_gpu(residual, {tokens, hidden}, DType::F32);
      const MoeRouting routing{
          gpu_->upload_persistent(Tensor{ids.data(), DType::I32, {tokens, top_k}, Device{}}, DType::I32),
          on_gpu(routing_weights, {tokens, top_k}, DType::F32)};
      gpu_->begin_step();
      const NormedActivation fused = gpu_->add_rms_norm_fp8(fused_residual, input, norm_weight, 1e-6f, layout);
      const Tensor plain = gpu_->add_rms_norm(plain_residual, input, norm_weight, 1e-6f);
      const std::vector<float> on_copy = gpu_->download_f32(gpu_->moe_experts(fused.fp8, routing, weights));
      EXPECT_EQ(count_nan(on_copy), 0) << what;
      EXPECT_TRUE(bits(on_copy) == bits(gpu_->download_f32(gpu_->moe_experts(plain, routing, weights))))
          << what << ": routed experts on the norm's copy vs on its output";
    }
  }
}

TEST_F(Fp8ActivationsCuda, FusedOpsReplayedFromAStepGraphEqualEagerRuns) {
  const int64_t rows = 4, width = 7168, inter = 2304;
  const QuantizedWeight q_a = random_fp8_weight(*gpu_, {1536, width}, Fp8Scaling::Block, rng_);
  const Fp8ActivationLayout layout = Fp8ActivationLayout::of(q_a);
  std::vector<float> x = ordinary(rows, width), weight(width, 1.0f), gate_up = ordinary(rows, 2 * inter);
  Tensor input = on_gpu(x, {rows, width}, DType::F32), norm_weight = on_gpu(weight, {width}, DType::BF16);
  Tensor gate_up_input = on_gpu(gate_up, {rows, 2 * inter}, DType::BF16);
  struct Outputs {
    Tensor normed, projected;
    QuantizedActivation normed_fp8, activated_fp8;
  };
  auto run = [&] {
    Outputs out;
    const NormedActivation normed = gpu_->rms_norm_fp8(input, norm_weight, 1e-6f, layout);
    out.normed = normed.normed;
    out.normed_fp8 = normed.fp8;
    out.projected = gpu_->linear_fp8(normed.fp8, q_a);
    out.activated_fp8 = gpu_->silu_mul_fp8(gate_up_input, layout);
    return out;
  };
  auto host = [&](const Outputs& out) {
    std::vector<float> all = gpu_->download_f32(out.normed);
    for (const Tensor& t : {out.projected, out.normed_fp8.values, out.normed_fp8.scales, out.activated_fp8.values,
                            out.activated_fp8.scales}) {
      const std::vector<float> part = gpu_->download_f32(t);
      all.insert(all.end(), part.begin(), part.end());
    }
    return all;
  };
  gpu_->begin_step();
  const std::vector<float> eager = host(run());
  EXPECT_EQ(count_nan(eager), 0);
  ASSERT_TRUE(gpu_->supports_step_graphs());
  gpu_->begin_step();
  Outputs recorded;
  const int64_t graph = gpu_->capture_step_graph([&] { recorded = run(); });
  for (int replay = 0; replay < 2; ++replay) {
    gpu_->begin_step();
    gpu_->replay_step_graph(graph);
    EXPECT_TRUE(bits(host(recorded)) == bits(eager)) << "replay " << replay;
  }
  gpu_->release_step_graph(graph);
}

TEST_F(Fp8ActivationsCuda, LayoutsTheKernelsCannotReadAreRejected) {
  std::vector<float> x(3 * 256, 1.0f), weight(256, 1.0f), narrow(3 * 40, 1.0f);
  Tensor input = on_gpu(x, {3, 256}, DType::BF16), norm_weight = on_gpu(weight, {256}, DType::BF16);
  Tensor narrow_input = on_gpu(narrow, {3, 40}, DType::BF16);
  gpu_->begin_step();
  const Fp8ActivationLayout narrow_groups{Fp8Scaling::Block, 64};
  EXPECT_NE(error_of([&] { gpu_->quantize_fp8(input, narrow_groups); }).find("groups of 128"), std::string::npos);
  EXPECT_NE(error_of([&] { gpu_->rms_norm_fp8(input, norm_weight, 1e-6f, narrow_groups); }).find("groups of 128"),
            std::string::npos);
  EXPECT_NE(error_of([&] { gpu_->quantize_fp8(narrow_input, channel_layout()); }).find("multiple of 16"),
            std::string::npos);
  Tensor odd_gate_up = on_gpu(narrow, {3, 40}, DType::BF16);  // width 20: not a multiple of 16
  EXPECT_NE(error_of([&] { gpu_->silu_mul_fp8(odd_gate_up, channel_layout()); }).find("multiple of 16"),
            std::string::npos);
  const QuantizedWeight w = random_fp8_weight(*gpu_, {64, 256}, Fp8Scaling::Block, rng_);
  const QuantizedActivation per_token = gpu_->quantize_fp8(input, channel_layout());
  EXPECT_NE(error_of([&] { gpu_->linear_fp8(per_token, w); }).find("quantized per channel"), std::string::npos);
}

}  // namespace
}  // namespace rackserve
