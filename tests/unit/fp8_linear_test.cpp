// The CPU oracle's W8A8 FP8 math (backend/cpu/fp8_linear.h) against definitions written
// here from scratch: e4m3 rounding by nearest search over all 256 codes, scales from amax,
// and the block / channel products summed in float64. Fresh random inputs every run.
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "backend/cpu/fp8_linear.h"
#include "support/shared_models.h"

namespace rackserve {
namespace {

using testing::error_of;

// The finite e4m3fn values by code (NaN codes 0x7f, 0xff left out).
std::vector<std::pair<double, uint8_t>> e4m3_values() {
  std::vector<std::pair<double, uint8_t>> values;
  for (int code = 0; code < 256; ++code) {
    if ((code & 0x7f) == 0x7f) continue;
    const int sign = code >> 7, exponent = (code >> 3) & 0xf, mantissa = code & 7;
    double magnitude = exponent == 0 ? mantissa / 8.0 * std::ldexp(1.0, -6)
                                     : (1.0 + mantissa / 8.0) * std::ldexp(1.0, exponent - 7);
    values.push_back({sign ? -magnitude : magnitude, static_cast<uint8_t>(code)});
  }
  return values;
}

double decode_e4m3(uint8_t code) {
  static const auto values = e4m3_values();
  for (auto [value, c] : values)
    if (c == code) return value;
  return std::nan("");
}

// Round to nearest e4m3, ties to the even code, saturating at ±448 (the definition).
double round_e4m3(double v) {
  static const auto values = e4m3_values();
  if (v >= 448.0) return 448.0;
  if (v <= -448.0) return -448.0;
  double best = 0.0, best_distance = std::numeric_limits<double>::infinity();
  uint8_t best_code = 0;
  for (auto [value, code] : values) {
    double distance = std::fabs(value - v);
    if (distance < best_distance || (distance == best_distance && (code & 1) == 0 && (best_code & 1) == 1)) {
      best = value, best_distance = distance, best_code = code;
    }
  }
  return best;
}

std::mt19937& rng() {
  static std::mt19937 generator(std::random_device{}());
  return generator;
}

std::vector<float> random_values(size_t count, float scale) {
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> values(count);
  for (float& v : values) v = normal(rng());
  return values;
}

TEST(Fp8ActivationQuant, ScaleIsAmaxOver448AndTheLargestValueSaturates) {
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<float> x = random_values(128, std::ldexp(1.0f, trial % 20 - 10));
    std::vector<float> q(x.size());
    float scale = cpu::quantize_e4m3_group(x.data(), 128, cpu::kBlockMinScale, q.data());
    float amax = 0.0f;
    for (float v : x) amax = std::max(amax, std::fabs(v));
    EXPECT_EQ(scale, amax / 448.0f);
    for (size_t i = 0; i < x.size(); ++i) {
      ASSERT_FALSE(std::isnan(q[i]));
      EXPECT_EQ(q[i], round_e4m3(static_cast<double>(x[i] / scale))) << x[i];
      EXPECT_LE(std::fabs(q[i]), 448.0f);
      if (std::fabs(x[i]) == amax) {
        EXPECT_EQ(std::fabs(q[i]), 448.0f);
      }
    }
  }
}

TEST(Fp8ActivationQuant, QuotientsRoundedAbove448SaturateInsteadOfOverflowing) {
  // amax / (amax / 448) can round above 448 in f32; the result must be ±448, never NaN.
  int seen = 0;
  std::uniform_real_distribution<float> uniform(1e-30f, 1e30f);
  for (int trial = 0; trial < 200000 && seen < 20; ++trial) {
    float a = uniform(rng());
    if (a / (a / 448.0f) <= 448.0f) continue;
    ++seen;
    float x[2] = {a, -a}, q[2];
    cpu::quantize_e4m3_group(x, 2, cpu::kBlockMinScale, q);
    EXPECT_EQ(q[0], 448.0f);
    EXPECT_EQ(q[1], -448.0f);
  }
  EXPECT_GT(seen, 0) << "no f32 value with a quotient above 448 found";
}

TEST(Fp8ActivationQuant, ExtremeFiniteInputsNeverGiveNaN) {
  const float big = std::numeric_limits<float>::max(), tiny = std::numeric_limits<float>::denorm_min();
  std::vector<float> x = {big, -big, tiny, -tiny, 0.0f, 1.0f, -3e-20f, 7e37f};
  std::vector<float> q(x.size());
  for (float min_scale : {cpu::kBlockMinScale, cpu::kTokenMinScale}) {
    float scale = cpu::quantize_e4m3_group(x.data(), static_cast<int64_t>(x.size()), min_scale, q.data());
    EXPECT_TRUE(std::isfinite(scale));
    for (float v : q) EXPECT_TRUE(std::isfinite(v));
    EXPECT_EQ(q[0], 448.0f);
    EXPECT_EQ(q[1], -448.0f);
  }
  float only_tiny[3] = {tiny, -tiny, 0.0f}, q_tiny[3];
  EXPECT_EQ(cpu::quantize_e4m3_group(only_tiny, 3, cpu::kBlockMinScale, q_tiny), cpu::kBlockMinScale);
  for (float v : q_tiny) EXPECT_TRUE(std::isfinite(v));
}

TEST(Fp8ActivationQuant, ZeroGroupsQuantizeToZeroWithTheFloorScale) {
  std::vector<float> zeros(64, 0.0f), q(64, 1.0f);
  EXPECT_EQ(cpu::quantize_e4m3_group(zeros.data(), 64, cpu::kBlockMinScale, q.data()), 1e-10f / 448.0f);
  for (float v : q) EXPECT_EQ(v, 0.0f);
  EXPECT_EQ(cpu::quantize_e4m3_group(zeros.data(), 64, cpu::kTokenMinScale, q.data()), 1.0f / (448.0f * 512.0f));
  for (float v : q) EXPECT_EQ(v, 0.0f);
}

// A random FP8 weight in `scaling` with its scales, and the float64 W8A8 / exact references.
struct Case {
  int64_t tokens, out, in, block_out, block_in;
  Fp8Scaling scaling;
};

struct HostWeight {
  std::vector<uint8_t> codes;
  std::vector<float> scales;
  QuantizedWeight view(const Case& c) {
    QuantizedWeight w;
    w.scaling = c.scaling;
    w.block_out = c.block_out;
    w.block_in = c.block_in;
    w.values = Tensor{codes.data(), DType::F8_E4M3, {c.out, c.in}, Device{}};
    Shape scale_shape = c.scaling == Fp8Scaling::Block
                            ? Shape{(c.out + c.block_out - 1) / c.block_out, c.in / c.block_in}
                            : Shape{c.out};
    w.scales = Tensor{scales.data(), DType::F32, scale_shape, Device{}};
    return w;
  }
  double weight(const Case& c, int64_t n, int64_t k) const {
    double scale = c.scaling == Fp8Scaling::Block ? scales[(n / c.block_out) * (c.in / c.block_in) + k / c.block_in]
                                                  : scales[n];
    return decode_e4m3(codes[n * c.in + k]) * scale;
  }
};

HostWeight random_weight(const Case& c) {
  HostWeight w;
  std::uniform_int_distribution<int> code(0, 255);
  for (int64_t i = 0; i < c.out * c.in; ++i) {
    int v = code(rng());
    w.codes.push_back(static_cast<uint8_t>((v & 0x7f) == 0x7f ? v - 1 : v));  // no NaN codes
  }
  size_t scales = c.scaling == Fp8Scaling::Block
                      ? static_cast<size_t>(((c.out + c.block_out - 1) / c.block_out) * (c.in / c.block_in))
                      : static_cast<size_t>(c.out);
  std::uniform_real_distribution<float> exponent(-12.0f, -4.0f);
  for (size_t i = 0; i < scales; ++i) w.scales.push_back(std::exp2(exponent(rng())));
  return w;
}

void check_against_definition(const Case& c) {
  SCOPED_TRACE(::testing::Message() << (c.scaling == Fp8Scaling::Block ? "block" : "channel") << " T=" << c.tokens
                                    << " out=" << c.out << " in=" << c.in);
  auto backend = make_cpu_backend(2);
  HostWeight host = random_weight(c);
  QuantizedWeight w = backend->upload_quantized_weight(host.view(c));
  std::vector<float> x = random_values(static_cast<size_t>(c.tokens * c.in), 2.0f);
  for (int64_t k = 0; k < c.in; ++k) x[k] = 0.0f;             // a zero token
  for (int64_t k = 0; k < c.in; ++k) x[c.in + k] *= 1e-6f;    // a tiny one
  Tensor input = backend->upload_persistent(Tensor{x.data(), DType::F32, {c.tokens, c.in}, Device{}}, DType::F32);
  backend->begin_step();
  std::vector<float> y = backend->download_f32(backend->linear_fp8(input, w));
  ASSERT_EQ(y.size(), static_cast<size_t>(c.tokens * c.out));

  const int64_t group = c.scaling == Fp8Scaling::Block ? c.block_in : c.in, groups = c.in / group;
  const double min_scale = c.scaling == Fp8Scaling::Block ? double(1e-10f / 448.0f) : double(1.0f / (448.0f * 512.0f));
  for (int64_t t = 0; t < c.tokens; ++t) {
    std::vector<double> q(c.in), scale(groups);
    for (int64_t g = 0; g < groups; ++g) {
      double amax = 0.0;
      for (int64_t k = g * group; k < (g + 1) * group; ++k) amax = std::max(amax, std::fabs(double(x[t * c.in + k])));
      scale[g] = std::max(static_cast<double>(static_cast<float>(amax) / 448.0f), min_scale);
      for (int64_t k = g * group; k < (g + 1) * group; ++k)
        q[k] = round_e4m3(static_cast<double>(x[t * c.in + k] / static_cast<float>(scale[g])));
    }
    for (int64_t n = 0; n < c.out; ++n) {
      double w8a8 = 0.0, magnitude = 0.0, exact = 0.0, bound = 0.0;
      for (int64_t k = 0; k < c.in; ++k) {
        const double s = scale[k / group], wk = host.weight(c, n, k), xk = x[t * c.in + k];
        w8a8 += q[k] * s * wk;
        magnitude += std::fabs(q[k] * s * wk);
        exact += xk * wk;
        // e4m3 rounding of x/s: at most 2^-4 relative (3 mantissa bits), or half the
        // subnormal step 2^-9 (times s) below 2^-6.
        bound += std::fabs(wk) * (std::ldexp(std::fabs(xk), -4) + std::ldexp(s, -10));
      }
      const float got = y[t * c.out + n];
      ASSERT_FALSE(std::isnan(got));
      // f32 summation of c.in products: n * 2^-24 * sum |terms| (plus the scale products).
      EXPECT_NEAR(got, w8a8, (c.in + 8) * std::ldexp(magnitude, -24) + 1e-30) << "t=" << t << " n=" << n;
      EXPECT_LE(std::fabs(w8a8 - exact), bound * (1 + 1e-5) + 1e-30) << "t=" << t << " n=" << n;
      if (t == 0) {
        EXPECT_EQ(got, 0.0f);
      }
    }
  }
}

TEST(Fp8Linear, BlockLayoutMatchesTheDefinition) {
  check_against_definition({5, 40, 64, 16, 16, Fp8Scaling::Block});   // ragged last row block
  check_against_definition({3, 128, 256, 128, 128, Fp8Scaling::Block});
  check_against_definition({4, 37, 96, 32, 32, Fp8Scaling::Block});
}

TEST(Fp8Linear, ChannelLayoutMatchesTheDefinition) {
  check_against_definition({5, 40, 64, 0, 0, Fp8Scaling::Channel});
  check_against_definition({3, 33, 45, 0, 0, Fp8Scaling::Channel});  // any width: one group per token
}

TEST(Fp8Linear, BlockWidthThatIsNotWholeGroupsIsRejected) {
  // DeepSeek's act_quant and vLLM's per-token-group quantization require whole groups.
  Case c{2, 16, 72, 16, 16, Fp8Scaling::Block};
  HostWeight host = random_weight({2, 16, 64, 16, 16, Fp8Scaling::Block});
  host.codes.resize(16 * 72);
  host.scales.resize(5 * 1, 1.0f);
  QuantizedWeight w = host.view(c);
  w.scales.shape = {1, 5};
  auto backend = make_cpu_backend(1);
  EXPECT_NE(error_of([&] { backend->upload_quantized_weight(w); }).find("must divide the input width"),
            std::string::npos);
}

TEST(Fp8Linear, ScalesOfTheWrongShapeAreRejected) {
  Case c{2, 32, 64, 16, 16, Fp8Scaling::Block};
  HostWeight host = random_weight(c);
  QuantizedWeight w = host.view(c);
  w.scales.shape = {4, 2};
  auto backend = make_cpu_backend(1);
  EXPECT_NE(error_of([&] { backend->upload_quantized_weight(w); }).find("has scales [4, 2], expected [2, 4]"),
            std::string::npos);
}

}  // namespace
}  // namespace rackserve
