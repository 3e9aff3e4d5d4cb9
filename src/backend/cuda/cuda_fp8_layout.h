// The FP8 scale layouts the CUDA kernels take (kernels/gemm, kernels/moe, the fused producers of
// kernels/common), shared by the backend's FP8 products (cuda_fp8_ops.cpp) and the ops that make
// quantized activations (cuda_fp8_activation_ops.cpp).
#pragma once

#include <cstdint>

#include "backend/ops.h"
#include "core/error.h"
#include "rackserve/kernels/fp8_gemm_params.h"

namespace rackserve {

// The kernels' K block: a Block layout's group (the weight's block_in) must be this (DeepSeek's 128).
inline constexpr int64_t kCudaFp8BlockIn = 128;
// A Channel layout's width granule (16-byte loads of e4m3).
inline constexpr int64_t kCudaFp8ChannelGranule = 16;

inline kernels::Fp8ScaleLayout cuda_fp8_scale_layout(Fp8Scaling scaling) {
  return scaling == Fp8Scaling::Block ? kernels::Fp8ScaleLayout::Block : kernels::Fp8ScaleLayout::Channel;
}

// Throws unless activations `width` wide quantized in `layout` are what the GEMMs read.
inline void check_cuda_fp8_activation_layout(const char* op, const Fp8ActivationLayout& layout, int64_t width) {
  if (layout.scaling == Fp8Scaling::Block) {
    RS_CHECK(layout.group == kCudaFp8BlockIn && width % kCudaFp8BlockIn == 0,
             "{}: the CUDA FP8 kernels take activation groups of {} columns dividing the width, not {} of {}", op,
             kCudaFp8BlockIn, layout.group, width);
  } else {
    RS_CHECK(layout.group == 0 && width % kCudaFp8ChannelGranule == 0,
             "{}: the CUDA FP8 kernels need per-token activations whose width is a multiple of {}, got {}", op,
             kCudaFp8ChannelGranule, width);
  }
}

}  // namespace rackserve
