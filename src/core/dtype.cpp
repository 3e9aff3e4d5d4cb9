#include "core/dtype.h"

#include <bit>
#include <cmath>
#include <cstring>

#include "core/error.h"

namespace rackserve {

namespace {
struct DTypeInfo {
  DType dtype;
  std::string_view name;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {DType::F64, "F64", 8},         {DType::F32, "F32", 4},     {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2},       {DType::F8_E4M3, "F8_E4M3", 1}, {DType::F8_E5M2, "F8_E5M2", 1},
    {DType::I64, "I64", 8},         {DType::I32, "I32", 4},     {DType::I16, "I16", 2},
    {DType::I8, "I8", 1},           {DType::U64, "U64", 8},     {DType::U32, "U32", 4},
    {DType::U16, "U16", 2},         {DType::U8, "U8", 1},       {DType::BOOL, "BOOL", 1},
};
const DTypeInfo& info(DType dtype) {
  for (const auto& entry : kDTypes)
    if (entry.dtype == dtype) return entry;
  RS_FAIL("unknown dtype {}", static_cast<int>(dtype));
}
}  // namespace

size_t dtype_size(DType dtype) { return info(dtype).size; }
std::string_view dtype_name(DType dtype) { return info(dtype).name; }

std::optional<DType> dtype_from_safetensors(std::string_view name) {
  for (const auto& entry : kDTypes)
    if (entry.name == name) return entry.dtype;
  return std::nullopt;
}

float bf16_to_f32(uint16_t bits) { return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16); }

uint16_t f32_to_bf16(float value) {
  uint32_t bits = std::bit_cast<uint32_t>(value);
  if (std::isnan(value)) return static_cast<uint16_t>((bits >> 16) | 0x40);
  uint32_t rounding = 0x7fff + ((bits >> 16) & 1);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

float f16_to_f32(uint16_t bits) {
  uint32_t sign = (bits & 0x8000u) << 16;
  uint32_t exponent = (bits >> 10) & 0x1f;
  uint32_t mantissa = bits & 0x3ff;
  if (exponent == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
  if (exponent == 0) {
    float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  return std::bit_cast<float>(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

uint16_t f32_to_f16(float value) {
  uint32_t bits = std::bit_cast<uint32_t>(value);
  uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000);
  if (std::isnan(value)) return sign | 0x7e00;
  float magnitude = std::fabs(value);
  if (magnitude >= 65520.0f) return sign | 0x7c00;
  if (magnitude < std::ldexp(1.0f, -14)) {  // subnormal: multiples of 2^-24, round half even
    float units = std::nearbyint(magnitude * std::ldexp(1.0f, 24));
    return sign | static_cast<uint16_t>(units);
  }
  uint32_t rounding = 0xfff + ((bits >> 13) & 1);
  uint32_t rounded = (bits & 0x7fffffffu) + rounding;
  return sign | static_cast<uint16_t>(((rounded >> 23) - 112) << 10 | ((rounded >> 13) & 0x3ff));
}

float e2m1_to_f32(uint8_t code) {
  static constexpr float kMagnitudes[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
  const float magnitude = kMagnitudes[code & 0x7u];
  return (code & 0x8u) ? -magnitude : magnitude;
}

float e4m3_to_f32(uint8_t bits) {
  uint32_t exponent = (bits >> 3) & 0xf;
  uint32_t mantissa = bits & 0x7;
  bool negative = bits & 0x80;
  if (exponent == 0xf && mantissa == 0x7) return std::nanf("");
  float magnitude = exponent == 0 ? std::ldexp(static_cast<float>(mantissa), -9)
                                  : std::ldexp(1.0f + mantissa / 8.0f, static_cast<int>(exponent) - 7);
  return negative ? -magnitude : magnitude;
}

uint8_t f32_to_e4m3(float value) {
  if (std::isnan(value)) return 0x7f;
  uint8_t sign = std::signbit(value) ? 0x80 : 0;
  float magnitude = std::fmin(std::fabs(value), 448.0f);
  // Pick the representable neighbour by rounding in units of the local spacing.
  int exponent;
  std::frexp(magnitude, &exponent);  // magnitude = m * 2^exponent, m in [0.5, 1)
  int unbiased = std::max(exponent - 1, -6);  // subnormals share the spacing of 2^-6
  float spacing = std::ldexp(1.0f, unbiased - 3);
  float units = std::nearbyint(magnitude / spacing);  // round half to even
  float rounded = units * spacing;
  if (rounded == 0.0f) return sign;
  int out_exponent;
  std::frexp(rounded, &out_exponent);
  int biased = out_exponent - 1 + 7;
  if (biased <= 0) return sign | static_cast<uint8_t>(std::lround(rounded / std::ldexp(1.0f, -9)));
  uint8_t mantissa = static_cast<uint8_t>(std::lround((rounded / std::ldexp(1.0f, out_exponent - 1) - 1.0f) * 8));
  return sign | static_cast<uint8_t>(biased << 3) | mantissa;
}

float e5m2_to_f32(uint8_t bits) { return f16_to_f32(static_cast<uint16_t>(bits) << 8); }

void convert_to_f32(DType dtype, const void* src, float* dst, size_t count) {
  switch (dtype) {
    case DType::F32:
      std::memcpy(dst, src, count * sizeof(float));
      return;
    case DType::F64:
      for (size_t i = 0; i < count; ++i) dst[i] = static_cast<float>(static_cast<const double*>(src)[i]);
      return;
    case DType::BF16:
      for (size_t i = 0; i < count; ++i) dst[i] = bf16_to_f32(static_cast<const uint16_t*>(src)[i]);
      return;
    case DType::F16:
      for (size_t i = 0; i < count; ++i) dst[i] = f16_to_f32(static_cast<const uint16_t*>(src)[i]);
      return;
    case DType::F8_E4M3:
      for (size_t i = 0; i < count; ++i) dst[i] = e4m3_to_f32(static_cast<const uint8_t*>(src)[i]);
      return;
    case DType::F8_E5M2:
      for (size_t i = 0; i < count; ++i) dst[i] = e5m2_to_f32(static_cast<const uint8_t*>(src)[i]);
      return;
    default:
      RS_FAIL("cannot convert {} to F32", dtype_name(dtype));
  }
}

}  // namespace rackserve
