// The CPU oracle's FP8 activations (Backend::quantize_fp8, the fused producers rms_norm_fp8 /
// add_rms_norm_fp8 / silu_mul_fp8, and the products on quantized activations): quantize_fp8
// against the contract written here from scratch (support/e4m3_definition.h), and every fused
// or pre-quantized path equal, bit for bit, to the unfused one it replaces, in both layouts,
// with odd widths where the layout allows, all-zero rows and values whose quotient saturates.
// Fresh random inputs every run.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "backend/cpu/fp8_linear.h"
#include "models/layers/linear_weight.h"
#include "support/e4m3_definition.h"
#include "support/shared_models.h"

namespace rackserve {
namespace {

using testing::error_of;

std::mt19937& rng() {
  static std::mt19937 generator(std::random_device{}());
  return generator;
}

// A float whose quotient a / (a / 448) rounds above 448 in f32 (the contract saturates it).
float saturating_magnitude() {
  std::uniform_real_distribution<float> uniform(1.0f, 2.0f);
  for (;;) {
    const float a = uniform(rng());
    if (a / (a / 448.0f) > 448.0f) return a;
  }
}

// rows x width values: row 0 all zeros, row 1 tiny, row 2 holding ±a with a quotient that
// saturates, row 3 huge (1e30), the rest normal with a random magnitude per row.
std::vector<float> test_rows(int64_t rows, int64_t width) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(rows * width));
  for (int64_t r = 0; r < rows; ++r) {
    const float magnitude = r == 1 ? 1e-6f : r == 3 ? 1e30f : std::exp2(normal(rng()) * 4.0f);
    for (int64_t c = 0; c < width; ++c) x[r * width + c] = r == 0 ? 0.0f : normal(rng()) * magnitude;
  }
  if (rows > 2) {
    const float a = saturating_magnitude();
    for (int64_t c = 0; c < width; ++c) x[2 * width + c] = std::uniform_real_distribution<float>(-a, a)(rng());
    x[2 * width] = a;
    x[2 * width + width - 1] = width > 1 ? -a : a;
  }
  return x;
}

Tensor upload(Backend& backend, std::vector<float>& values, Shape shape) {
  return backend.upload_persistent(Tensor{values.data(), DType::F32, std::move(shape), Device{}}, DType::F32);
}

std::vector<uint8_t> bytes_of(const Tensor& tensor) {
  const auto* data = static_cast<const uint8_t*>(tensor.data);
  return std::vector<uint8_t>(data, data + tensor.bytes());
}

// Bitwise equality of two step tensors of any dtype (NaN-safe, -0 distinct from 0).
void expect_same_bits(const Tensor& a, const Tensor& b, const std::string& what) {
  ASSERT_EQ(a.dtype, b.dtype) << what;
  ASSERT_EQ(a.shape, b.shape) << what;
  EXPECT_EQ(bytes_of(a), bytes_of(b)) << what;
}

void expect_same_quantization(const QuantizedActivation& a, const QuantizedActivation& b, const std::string& what) {
  EXPECT_EQ(a.layout, b.layout) << what;
  expect_same_bits(a.values, b.values, what + " (e4m3 values)");
  expect_same_bits(a.scales, b.scales, what + " (scales)");
}

Fp8ActivationLayout block(int64_t group) { return {Fp8Scaling::Block, group}; }
constexpr Fp8ActivationLayout kChannel{Fp8Scaling::Channel, 0};

// (layout, width) pairs: Block widths are whole groups; Channel takes any width.
struct Shape2 {
  Fp8ActivationLayout layout;
  int64_t width;
};
std::vector<Shape2> layouts_and_widths() {
  return {{block(16), 64}, {block(32), 96}, {block(128), 384}, {kChannel, 1}, {kChannel, 45}, {kChannel, 64},
          {kChannel, 333}};
}

std::string describe(const Shape2& s) {
  return (s.layout.scaling == Fp8Scaling::Block ? "block " + std::to_string(s.layout.group) : std::string("channel")) +
         " width " + std::to_string(s.width);
}

TEST(Fp8Activations, QuantizeMatchesTheDefinition) {
  auto backend = make_cpu_backend(2);
  for (const Shape2& s : layouts_and_widths()) {
    SCOPED_TRACE(describe(s));
    const int64_t rows = 7, width = s.width;
    std::vector<float> x = test_rows(rows, width);
    Tensor input = upload(*backend, x, {rows, width});
    backend->begin_step();
    const QuantizedActivation q = backend->quantize_fp8(input, s.layout);
    ASSERT_EQ(q.values.shape, Shape({rows, width}));
    ASSERT_EQ(q.scales.shape, s.layout.scales_shape(rows, width));
    const bool is_block = s.layout.scaling == Fp8Scaling::Block;
    const int64_t group = is_block ? s.layout.group : width;
    const float min_scale = is_block ? 1e-10f / 448.0f : 1.0f / (448.0f * 512.0f);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t g = 0; g < width / group; ++g) {
        const float* values = x.data() + r * width + g * group;
        float amax = 0.0f;
        for (int64_t i = 0; i < group; ++i) amax = std::max(amax, std::fabs(values[i]));
        const float scale = std::max(amax / 448.0f, min_scale);
        ASSERT_EQ(q.scales.as<float>()[r * (width / group) + g], scale) << "row " << r << " group " << g;
        for (int64_t i = 0; i < group; ++i) {
          const uint8_t code = q.values.as<uint8_t>()[r * width + g * group + i];
          ASSERT_EQ(code, testing::e4m3_code_nearest(values[i] / scale)) << "row " << r << " column " << g * group + i;
        }
      }
    }
    // The saturating row reaches ±448 exactly, never NaN.
    if (width > 1) {
      EXPECT_EQ(q.values.as<uint8_t>()[2 * width], 0x7e);
      EXPECT_EQ(q.values.as<uint8_t>()[2 * width + width - 1], 0xfe);
    }
    for (int64_t c = 0; c < width; ++c) EXPECT_EQ(q.values.as<uint8_t>()[c], 0) << "the zero row";
  }
}

TEST(Fp8Activations, RmsNormFp8IsRmsNormThenQuantize) {
  auto backend = make_cpu_backend(2);
  for (const Shape2& s : layouts_and_widths()) {
    SCOPED_TRACE(describe(s));
    const int64_t rows = 9, width = s.width;
    std::vector<float> x = test_rows(rows, width), weight = test_rows(5, width);
    weight.erase(weight.begin(), weight.begin() + 4 * width);  // one normal row of weights
    std::vector<float> residual = test_rows(rows, width);
    for (float& v : residual) v = std::isfinite(v * 1e-20f) ? v * 1e-20f : 0.0f;  // keep sums finite
    Tensor input = upload(*backend, x, {rows, width}), norm_weight = upload(*backend, weight, {width});
    Tensor residual_fused = upload(*backend, residual, {rows, width});
    Tensor residual_plain = upload(*backend, residual, {rows, width});
    backend->begin_step();

    const NormedActivation fused = backend->rms_norm_fp8(input, norm_weight, 1e-6f, s.layout);
    const Tensor plain = backend->rms_norm(input, norm_weight, 1e-6f);
    expect_same_bits(fused.normed, plain, "rms_norm output");
    expect_same_quantization(fused.fp8, backend->quantize_fp8(plain, s.layout), "rms_norm_fp8");

    const NormedActivation fused_add = backend->add_rms_norm_fp8(residual_fused, input, norm_weight, 1e-6f, s.layout);
    const Tensor plain_add = backend->add_rms_norm(residual_plain, input, norm_weight, 1e-6f);
    expect_same_bits(residual_fused, residual_plain, "residual after the add");
    expect_same_bits(fused_add.normed, plain_add, "add_rms_norm output");
    expect_same_quantization(fused_add.fp8, backend->quantize_fp8(plain_add, s.layout), "add_rms_norm_fp8");
  }
}

TEST(Fp8Activations, SiluMulFp8IsSiluMulThenQuantize) {
  auto backend = make_cpu_backend(2);
  for (const Shape2& s : layouts_and_widths()) {
    SCOPED_TRACE(describe(s));
    const int64_t rows = 8, width = s.width;
    std::vector<float> gate_up = test_rows(rows, 2 * width);
    for (int64_t r = 0; r < rows; ++r)  // gates of ordinary size: silu(1e30) * 1e30 would overflow
      for (int64_t c = 0; c < width; ++c) gate_up[r * 2 * width + c] = std::tanh(gate_up[r * 2 * width + c]) * 8.0f;
    Tensor input = upload(*backend, gate_up, {rows, 2 * width});
    backend->begin_step();
    expect_same_quantization(backend->silu_mul_fp8(input, s.layout),
                             backend->quantize_fp8(backend->silu_mul(input), s.layout), "silu_mul_fp8");
  }
}

// A random FP8 weight [out, in] (rank 2) or [experts, out, in] (rank 3) stored on `backend`.
struct HostFp8 {
  std::vector<uint8_t> codes;
  std::vector<float> scales;
  QuantizedWeight view;
};
HostFp8 random_fp8(Shape shape, Fp8Scaling scaling, int64_t block_size) {
  HostFp8 w;
  const int64_t count = shape.size() == 3 ? shape[0] : 1, out = shape[shape.size() - 2], in = shape.back();
  std::uniform_int_distribution<int> code(0, 255);
  w.codes.resize(static_cast<size_t>(count * out * in));
  for (uint8_t& c : w.codes) {
    const int v = code(rng());
    c = static_cast<uint8_t>((v & 0x7f) == 0x7f ? v - 1 : v);  // no NaN codes
  }
  Shape scale_shape = shape.size() == 3 ? Shape{count} : Shape{};
  if (scaling == Fp8Scaling::Block) {
    scale_shape.push_back((out + block_size - 1) / block_size);
    scale_shape.push_back(in / block_size);
  } else {
    scale_shape.push_back(out);
  }
  std::uniform_real_distribution<float> exponent(-12.0f, -4.0f);
  w.scales.resize(static_cast<size_t>(shape_numel(scale_shape)));
  for (float& s : w.scales) s = std::exp2(exponent(rng()));
  w.view.scaling = scaling;
  w.view.block_out = w.view.block_in = scaling == Fp8Scaling::Block ? block_size : 0;
  w.view.values = Tensor{w.codes.data(), DType::F8_E4M3, shape, Device{}};
  w.view.scales = Tensor{w.scales.data(), DType::F32, scale_shape, Device{}};
  return w;
}

TEST(Fp8Activations, LinearOnQuantizedActivationsEqualsLinearOnTensors) {
  auto backend = make_cpu_backend(2);
  for (Fp8Scaling scaling : {Fp8Scaling::Block, Fp8Scaling::Channel}) {
    const bool is_block = scaling == Fp8Scaling::Block;
    SCOPED_TRACE(is_block ? "block" : "channel");
    const int64_t rows = 6, in = is_block ? 96 : 45, out = 37;
    HostFp8 host = random_fp8({out, in}, scaling, 32);
    const QuantizedWeight w = backend->upload_quantized_weight(host.view);
    const Fp8ActivationLayout layout = Fp8ActivationLayout::of(w);
    std::vector<float> x = test_rows(rows, in), weight(static_cast<size_t>(in), 0.75f);
    for (float& v : x) v = std::isfinite(v * 1e-25f) && std::fabs(v) < 1e6f ? v : 1e6f;  // finite products
    Tensor input = upload(*backend, x, {rows, in}), norm_weight = upload(*backend, weight, {in});
    backend->begin_step();
    expect_same_bits(backend->linear_fp8(backend->quantize_fp8(input, layout), w), backend->linear_fp8(input, w),
                     "linear_fp8 on quantize_fp8(x) vs on x");
    const NormedActivation normed = backend->rms_norm_fp8(input, norm_weight, 1e-6f, layout);
    expect_same_bits(backend->linear_fp8(normed.fp8, w), backend->linear_fp8(normed.normed, w),
                     "linear_fp8 on rms_norm_fp8's copy vs on its output");

    // The model's path: LinearWeight::apply takes the copy in its layout, else quantizes the tensor.
    LinearWeight linear;
    linear.fp8 = w;
    EXPECT_EQ(linear.input_fp8_layout(), layout);
    const Tensor expected = backend->linear_fp8(normed.normed, w);
    expect_same_bits(linear.apply(*backend, Activation{normed.normed, normed.fp8}), expected, "apply with the copy");
    expect_same_bits(linear.apply(*backend, Activation{Tensor{}, normed.fp8}), expected, "apply with only the copy");
    const Fp8ActivationLayout other = is_block ? kChannel : block(in % 16 == 0 ? 16 : 1);
    const QuantizedActivation foreign = backend->quantize_fp8(normed.normed, other);
    expect_same_bits(linear.apply(*backend, Activation{normed.normed, foreign}), expected,
                     "apply with a copy in another layout quantizes the tensor");
    EXPECT_NE(error_of([&] { linear.apply(*backend, Activation{Tensor{}, foreign}); }).find("another layout"),
              std::string::npos);
    EXPECT_NE(error_of([&] { backend->linear_fp8(foreign, w); }).find("quantized per"), std::string::npos);
  }
}

TEST(Fp8Activations, MoeExpertsOnQuantizedActivationsEqualMoeExpertsOnTensors) {
  auto backend = make_cpu_backend(2);
  for (Fp8Scaling scaling : {Fp8Scaling::Block, Fp8Scaling::Channel}) {
    const bool is_block = scaling == Fp8Scaling::Block;
    SCOPED_TRACE(is_block ? "block" : "channel");
    const int64_t tokens = 5, hidden = 64, inter = 32, experts = 4, top_k = 2;
    HostFp8 gate_up = random_fp8({experts, 2 * inter, hidden}, scaling, 16);
    HostFp8 down = random_fp8({experts, hidden, inter}, scaling, 16);
    ExpertWeights weights;
    weights.gate_up_fp8 = backend->upload_quantized_weight(gate_up.view);
    weights.down_fp8 = backend->upload_quantized_weight(down.view);
    std::vector<float> x = test_rows(tokens, hidden);
    for (float& v : x) v = std::fabs(v) < 1e3f ? v : 1e3f;
    std::vector<int32_t> ids = {0, 3, 1, 2, 2, 0, 3, 1, 1, 3};
    std::vector<float> routing_weights = {0.7f, 0.3f, 0.5f, 0.5f, 0.9f, 0.1f, 0.25f, 0.75f, 0.6f, 0.4f};
    Tensor input = upload(*backend, x, {tokens, hidden});
    Tensor id_tensor =
        backend->upload_persistent(Tensor{ids.data(), DType::I32, {tokens, top_k}, Device{}}, DType::I32);
    Tensor weight_tensor = upload(*backend, routing_weights, {tokens, top_k});
    const MoeRouting routing{id_tensor, weight_tensor};
    backend->begin_step();
    const Tensor on_tensor = backend->moe_experts(input, routing, weights);
    const QuantizedActivation quantized = backend->quantize_fp8(input, Fp8ActivationLayout::of(*weights.gate_up_fp8));
    expect_same_bits(backend->moe_experts(quantized, routing, weights), on_tensor, "moe_experts on quantize_fp8(x)");

    // The definition the GPU tests use: each pair through fp8_matvec (x quantized per pair),
    // contributions weighted, then summed per token in slot order.
    const std::vector<float> got = backend->download_f32(on_tensor);
    std::vector<float> scratch, gate_up_row(2 * inter), activated(inter), contribution(hidden);
    for (int64_t t = 0; t < tokens; ++t) {
      std::vector<float> sum(hidden, 0.0f);
      for (int64_t k = 0; k < top_k; ++k) {
        const int32_t e = ids[t * top_k + k];
        cpu::fp8_matvec(*weights.gate_up_fp8, e, x.data() + t * hidden, gate_up_row.data(), scratch);
        for (int64_t i = 0; i < inter; ++i)
          activated[i] = gate_up_row[i] / (1.0f + std::exp(-gate_up_row[i])) * gate_up_row[inter + i];
        cpu::fp8_matvec(*weights.down_fp8, e, activated.data(), contribution.data(), scratch);
        for (float& c : contribution) c *= routing_weights[t * top_k + k];
        for (int64_t h = 0; h < hidden; ++h) sum[h] += contribution[h];
      }
      for (int64_t h = 0; h < hidden; ++h) ASSERT_EQ(got[t * hidden + h], sum[h]) << "token " << t << " column " << h;
    }
    const QuantizedActivation channel = backend->quantize_fp8(input, is_block ? kChannel : block(16));
    EXPECT_NE(error_of([&] { backend->moe_experts(channel, routing, weights); }).find("quantized per"),
              std::string::npos);
  }
}

TEST(Fp8Activations, MalformedLayoutsAndActivationsAreRejected) {
  auto backend = make_cpu_backend(1);
  std::vector<float> x(3 * 72, 1.0f);
  Tensor input = upload(*backend, x, {3, 72});
  backend->begin_step();
  EXPECT_NE(error_of([&] { backend->quantize_fp8(input, block(16)); }).find("do not fit width 72"), std::string::npos);
  EXPECT_NE(error_of([&] { backend->quantize_fp8(input, block(0)); }).find("do not fit"), std::string::npos);
  QuantizedActivation q = backend->quantize_fp8(input, block(8));
  HostFp8 host = random_fp8({4, 72}, Fp8Scaling::Block, 8);
  const QuantizedWeight w = backend->upload_quantized_weight(host.view);
  QuantizedActivation wrong_scales = q;
  wrong_scales.scales.shape = {3, 8};
  EXPECT_NE(error_of([&] { backend->linear_fp8(wrong_scales, w); }).find("need F32 scales [3, 9]"), std::string::npos);
  QuantizedActivation not_e4m3 = q;
  not_e4m3.values = input;
  EXPECT_NE(error_of([&] { backend->linear_fp8(not_e4m3, w); }).find("F8_E4M3"), std::string::npos);
}

}  // namespace
}  // namespace rackserve
