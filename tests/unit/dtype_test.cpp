// Scalar conversions against values fixed by the formats' definitions (IEEE 754 binary16,
// bfloat16 as truncated binary32, OCP FP8 e4m3fn), not by our own output.
#include <cmath>

#include <gtest/gtest.h>

#include "core/dtype.h"

namespace rackserve {
namespace {

TEST(DType, SafetensorsNamesRoundTrip) {
  for (const char* name : {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2", "I64", "I32", "I16", "I8", "U8", "BOOL"}) {
    auto dtype = dtype_from_safetensors(name);
    ASSERT_TRUE(dtype.has_value()) << name;
    EXPECT_EQ(dtype_name(*dtype), name);
  }
  EXPECT_FALSE(dtype_from_safetensors("F4").has_value());
  EXPECT_EQ(dtype_size(DType::BF16), 2u);
  EXPECT_EQ(dtype_size(DType::F8_E4M3), 1u);
}

TEST(DType, Bf16IsTheHighHalfOfF32) {
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
  EXPECT_EQ(bf16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  // 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7: ties go to even (1).
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::nanf("")))));
}

TEST(DType, F16KnownEncodings) {
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_f32(0xc000), -2.0f);
  EXPECT_TRUE(std::isinf(f16_to_f32(0x7c00)));
  for (uint32_t bits = 0; bits < 0x7c00; ++bits) ASSERT_EQ(f32_to_f16(f16_to_f32(bits)), bits) << bits;
}

TEST(DType, E4m3KnownEncodings) {
  EXPECT_EQ(e4m3_to_f32(0x38), 1.0f);            // exponent 7 = bias
  EXPECT_EQ(e4m3_to_f32(0x7e), 448.0f);          // largest finite
  EXPECT_EQ(e4m3_to_f32(0x01), std::ldexp(1.0f, -9));  // smallest subnormal
  EXPECT_EQ(e4m3_to_f32(0xb8), -1.0f);
  EXPECT_TRUE(std::isnan(e4m3_to_f32(0x7f)));
  EXPECT_EQ(f32_to_e4m3(1000.0f), 0x7e);  // saturates
  EXPECT_EQ(f32_to_e4m3(-1000.0f), 0xfe);
  for (uint32_t bits = 0; bits < 256; ++bits) {
    if ((bits & 0x7f) == 0x7f) continue;
    ASSERT_EQ(f32_to_e4m3(e4m3_to_f32(static_cast<uint8_t>(bits))), bits == 0x80 ? 0x80 : bits) << bits;
  }
  // 1.0625 lies halfway between 1.0 (0x38) and 1.125 (0x39): ties to even mantissa.
  EXPECT_EQ(f32_to_e4m3(1.0625f), 0x38);
  EXPECT_EQ(f32_to_e4m3(1.1f), 0x39);
}

}  // namespace
}  // namespace rackserve
