// Parameters of the element-type conversion kernels (kernels/common/convert.cu).
#pragma once

#include <cstdint>

namespace rackserve::kernels {

struct Bf16ToF32Params {
  const uint16_t* __restrict__ input;  // [count] bf16 bits
  float* __restrict__ output;          // [count]
  int64_t count;
};

// Returns a CUDA error code (0 on success); validates pointers and count first.
int launch_bf16_to_f32(const Bf16ToF32Params& params, void* stream);

}  // namespace rackserve::kernels
