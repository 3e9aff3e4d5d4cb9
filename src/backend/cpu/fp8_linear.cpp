// W8A8 FP8 math of the CPU oracle; the contract is in fp8_linear.h.
#include "backend/cpu/fp8_linear.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "core/dtype.h"
#include "core/error.h"

namespace rackserve::cpu {

const float* e4m3_table() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> values{};
    for (int bits = 0; bits < 256; ++bits) values[bits] = e4m3_to_f32(static_cast<uint8_t>(bits));
    return values;
  }();
  return table.data();
}

namespace {
float group_scale(const float* x, int64_t count, float min_scale) {
  float amax = 0.0f;
  for (int64_t i = 0; i < count; ++i) amax = std::max(amax, std::fabs(x[i]));
  return std::max(amax / kE4m3Max, min_scale);
}
}  // namespace

float quantize_e4m3_group(const float* x, int64_t count, float min_scale, float* q) {
  const float scale = group_scale(x, count, min_scale);
  const float* table = e4m3_table();
  // f32_to_e4m3 rounds to nearest even and saturates at ±448 (the clamp of the reference).
  for (int64_t i = 0; i < count; ++i) q[i] = table[f32_to_e4m3(x[i] / scale)];
  return scale;
}

float quantize_e4m3_group_codes(const float* x, int64_t count, float min_scale, uint8_t* codes) {
  const float scale = group_scale(x, count, min_scale);
  for (int64_t i = 0; i < count; ++i) codes[i] = f32_to_e4m3(x[i] / scale);
  return scale;
}

void check_quantized_weight(const QuantizedWeight& w, int64_t rank) {
  RS_CHECK(w.values.dtype == DType::F8_E4M3 && w.values.rank() == rank,
           "FP8 weight values must be a rank-{} F8_E4M3 tensor, got {} {}", rank, dtype_name(w.values.dtype),
           shape_string(w.values.shape));
  RS_CHECK(w.scales.dtype == DType::F32, "FP8 weight scales must be F32, got {}", dtype_name(w.scales.dtype));
  const int64_t out = w.out_features(), in = w.in_features();
  Shape expected;
  if (rank == 3) expected.push_back(w.values.dim(0));
  if (w.scaling == Fp8Scaling::Block) {
    RS_CHECK(w.block_out > 0 && w.block_in > 0 && in % w.block_in == 0,
             "FP8 block weight [{}, {}]: blocks [{}, {}] must divide the input width", out, in, w.block_out, w.block_in);
    expected.push_back((out + w.block_out - 1) / w.block_out);
    expected.push_back(in / w.block_in);
  } else {
    expected.push_back(out);
  }
  RS_CHECK(w.scales.shape == expected, "FP8 weight {} has scales {}, expected {}", shape_string(w.values.shape),
           shape_string(w.scales.shape), shape_string(expected));
}

float activation_min_scale(Fp8Scaling scaling) {
  return scaling == Fp8Scaling::Block ? kBlockMinScale : kTokenMinScale;
}

void quantize_e4m3_row(const float* x, int64_t width, const Fp8ActivationLayout& layout, uint8_t* codes,
                       float* scales) {
  const int64_t group = layout.scaling == Fp8Scaling::Block ? layout.group : width;
  const float min_scale = activation_min_scale(layout.scaling);
  for (int64_t g = 0; g * group < width; ++g)
    scales[g] = quantize_e4m3_group_codes(x + g * group, group, min_scale, codes + g * group);
}

namespace {

// out[n] = sum over groups g of (f32 dot of q[g] and W[n, g]) * activation_scales[g] * weight scale,
// for q the token's e4m3 values decoded to f32 (exact).
void fp8_dot_rows(const QuantizedWeight& w, int64_t expert, const float* q, const float* activation_scales,
                  float* out) {
  const int64_t rows = w.out_features(), in = w.in_features();
  const bool block = w.scaling == Fp8Scaling::Block;
  const int64_t group = block ? w.block_in : in;
  const int64_t groups = in / group;
  const uint8_t* values = w.values.as<uint8_t>() + expert * rows * in;
  const int64_t scale_rows = block ? (rows + w.block_out - 1) / w.block_out : rows;
  const float* weight_scales = w.scales.as<float>() + expert * scale_rows * groups;
  const float* table = e4m3_table();
  for (int64_t n = 0; n < rows; ++n) {
    const uint8_t* row = values + n * in;
    float accumulator = 0.0f;
    for (int64_t g = 0; g < groups; ++g) {
      float partial = 0.0f;
      for (int64_t k = g * group; k < (g + 1) * group; ++k) partial += q[k] * table[row[k]];
      const float weight_scale = block ? weight_scales[(n / w.block_out) * groups + g] : weight_scales[n];
      accumulator += partial * activation_scales[g] * weight_scale;
    }
    out[n] = accumulator;
  }
}

}  // namespace

void fp8_matvec(const QuantizedWeight& w, int64_t expert, const float* x, float* out, std::vector<float>& scratch) {
  const int64_t in = w.in_features();
  const bool block = w.scaling == Fp8Scaling::Block;
  const int64_t group = block ? w.block_in : in;
  const int64_t groups = in / group;
  scratch.resize(static_cast<size_t>(in + groups));
  float* q = scratch.data();
  float* activation_scales = q + in;
  for (int64_t g = 0; g < groups; ++g)
    activation_scales[g] = quantize_e4m3_group(x + g * group, group, activation_min_scale(w.scaling), q + g * group);
  fp8_dot_rows(w, expert, q, activation_scales, out);
}

void fp8_matvec_quantized(const QuantizedWeight& w, int64_t expert, const uint8_t* codes, const float* scales,
                          float* out, std::vector<float>& scratch) {
  const int64_t in = w.in_features();
  scratch.resize(static_cast<size_t>(in));
  const float* table = e4m3_table();
  for (int64_t k = 0; k < in; ++k) scratch[k] = table[codes[k]];
  fp8_dot_rows(w, expert, scratch.data(), scales, out);
}

}  // namespace rackserve::cpu
