// The CPU oracle's W8A8 FP8 math: dynamic activation quantization to e4m3 and the scaled
// product with an FP8 weight (QuantizedWeight). The CUDA FP8 kernels are tested against it.
//
// Contract (both layouts; e4m3 = OCP e4m3fn, max 448, no infinities):
//   activation quantization of a group x[0..n):
//     amax  = max |x[i]|
//     scale = max(amax / 448, min_scale)                         (f32)
//     q[i]  = e4m3(x[i] / scale)   round to nearest even, saturating to ±448
//   Block (DeepSeek `fp8`, compressed-tensors strategy "block"): a group is one token's
//     block_in consecutive columns; min_scale = 1e-10 / 448. This is DeepSeek-V3's reference
//     `act_quant` (scale = amax / 448, then x / scale cast to e4m3) with vLLM's
//     per-token-group quantization rules added: amax floored at eps = 1e-10 so an all-zero
//     group gives zeros rather than 0/0, and the quotient clamped to ±448.
//       y[t, n] = sum over groups g of  (sum_{k in g} q[t, k] * W[n, k]) * a_scale[t, g] * w_scale[n / block_out, g]
//     as DeepSeek's reference `fp8_gemm` accumulates: an f32 partial dot per 128-wide K block,
//     scaled by both scales, added to an f32 accumulator.
//   Channel (compressed-tensors strategy "channel", dynamic "token" activations): a group is
//     one token's whole row; min_scale = 1 / (448 * 512), vLLM's dynamic per-token FP8
//     quantization floor.  y[t, n] = (sum_k q[t, k] * W[n, k]) * a_scale[t] * w_scale[n]
//     (vLLM's scaled_mm epilogue: one f32 dot, then both scales).
// Products of two e4m3 values are exact in f32; sums round in f32, in an order that is not
// part of the contract (a GPU kernel sums in its own tile order).
#pragma once

#include <cstdint>
#include <vector>

#include "backend/ops.h"

namespace rackserve::cpu {

inline constexpr float kE4m3Max = 448.0f;
inline constexpr float kBlockMinScale = 1e-10f / kE4m3Max;
inline constexpr float kTokenMinScale = 1.0f / (kE4m3Max * 512.0f);

// Quantizes x[0, count) as one group; writes the e4m3 values (decoded to f32, exact) to q and
// returns the scale, so x[i] ≈ q[i] * scale. Finite input never yields NaN.
float quantize_e4m3_group(const float* x, int64_t count, float min_scale, float* q);
// The same quantization, writing the e4m3 bytes themselves (the FP8 KV cache stores them).
float quantize_e4m3_group_codes(const float* x, int64_t count, float min_scale, uint8_t* codes);

// Every e4m3 byte decoded to f32 (the 256-entry table the loops use).
const float* e4m3_table();

// The min_scale of a layout: kBlockMinScale for Block groups, kTokenMinScale for Channel rows.
float activation_min_scale(Fp8Scaling scaling);
// Quantizes one token's row x[0, width) in `layout` (Backend::quantize_fp8 row by row): e4m3
// bytes into codes[0, width), the scale of each group (Block: width / layout.group of them;
// Channel: one) into scales.
void quantize_e4m3_row(const float* x, int64_t width, const Fp8ActivationLayout& layout, uint8_t* codes,
                       float* scales);

// out[n] = row n of (x W^T) for the W8A8 product above, for one token x[0, in) and matrix
// `expert` of w (0 for a rank-2 weight). `scratch` is reused across calls.
void fp8_matvec(const QuantizedWeight& w, int64_t expert, const float* x, float* out, std::vector<float>& scratch);
// The same product for a token already quantized in Fp8ActivationLayout::of(w): its e4m3 codes
// [0, in) and group scales. Equal, bit for bit, to fp8_matvec on the row they were made from.
void fp8_matvec_quantized(const QuantizedWeight& w, int64_t expert, const uint8_t* codes, const float* scales,
                          float* out, std::vector<float>& scratch);

// Throws unless w is a well-formed QuantizedWeight of rank `rank` held in host memory.
void check_quantized_weight(const QuantizedWeight& w, int64_t rank);

}  // namespace rackserve::cpu
