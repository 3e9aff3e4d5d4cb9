// Element types of tensors in checkpoints and on devices, their sizes and names, and
// scalar conversions to and from float32 (round to nearest even, saturating for FP8).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace rackserve {

enum class DType : uint8_t {
  F64,
  F32,
  F16,
  BF16,
  F8_E4M3,  // OCP e4m3fn: no infinities, max 448, 0x7f/0xff are NaN
  F8_E5M2,
  I64,
  I32,
  I16,
  I8,
  U64,
  U32,
  U16,
  U8,  // also packed NVFP4 (two e2m1 per byte) in modelopt checkpoints
  BOOL,
};

size_t dtype_size(DType dtype);
std::string_view dtype_name(DType dtype);  // safetensors spelling: "BF16", "F8_E4M3", ...
std::optional<DType> dtype_from_safetensors(std::string_view name);

float bf16_to_f32(uint16_t bits);
uint16_t f32_to_bf16(float value);
float f16_to_f32(uint16_t bits);
uint16_t f32_to_f16(float value);
float e4m3_to_f32(uint8_t bits);
uint8_t f32_to_e4m3(float value);  // saturates to ±448; NaN stays NaN
// An e2m1 (FP4) code, the low 4 bits of `code` (bit 3 the sign): 0, 0.5, 1, 1.5, 2, 3, 4, 6.
float e2m1_to_f32(uint8_t code);
float e5m2_to_f32(uint8_t bits);

// Converts `count` elements of `dtype` at `src` to float32. Only floating dtypes.
void convert_to_f32(DType dtype, const void* src, float* dst, size_t count);

}  // namespace rackserve
