// W8A8 FP8 (e4m3) linear y = x W^T (kernels/gemm/): the dynamic activation quantization and
// the scaled e4m3 GEMM. The math is the CPU oracle's contract (src/backend/cpu/fp8_linear.h):
//   group of activations x[0..g):  scale = max(amax / 448, min_scale),  q = e4m3(x / scale)
//   Block:   y[t, n] = sum over 128-wide K blocks b of
//                        (f32 dot of q[t, b] and W[n, b]) * x_scale[t, b] * w_scale[n / block_out, b]
//   Channel: y[t, n] = (f32 dot of q[t, :] and W[n, :]) * x_scale[t] * w_scale[n]
// Products of two e4m3 values are exact in f32; the summation order is the kernels' own.
#pragma once

#include "rackserve/kernels/common.h"

namespace rackserve::kernels {

enum class Fp8ScaleLayout : uint8_t {
  Block,    // DeepSeek `fp8`: a scale per [block_out, 128] weight tile and per token per 128 columns
  Channel,  // compressed-tensors: a scale per weight row and per token (whole row)
};

// Quantizes bf16 activations per token per group, with the contract's floors:
// Block min_scale = 1e-10 / 448 (group = `group` columns), Channel min_scale = 1 / (448 * 512)
// (group = the whole row). x / scale is a true (IEEE) division, rounded to e4m3 to nearest
// even and saturated to ±448.
struct Fp8QuantizeParams {
  const void* x;   // [m, k] bf16, row-major, 8-byte aligned
  void* q;         // [m, k] e4m3 (one byte each), 4-byte aligned
  float* scales;   // Block: [m, k / group]; Channel: [m]
  Fp8ScaleLayout layout;
  int64_t m, k;    // k a multiple of 4 (and of group for Block)
  int64_t group;   // Block: columns per scale, a multiple of 4 (128 for the GEMMs); Channel: ignored
};
int launch_fp8_quantize_activations(const Fp8QuantizeParams& params, Stream stream);

// The GEMM on quantized activations (launch_fp8_quantize_activations' output).
struct LinearFp8Params {
  const void* x;               // [m, k] e4m3, row-major, 16-byte aligned
  const float* x_scales;       // Block: [m, k / 128]; Channel: [m]
  const void* weight;          // [n, k] e4m3, row-major (one output feature per row), 16-byte aligned
  const float* weight_scales;  // Block: [ceil(n / block_out), k / 128]; Channel: [n]
  void* y;                     // [m, n] y_type
  float* workspace;            // [splits, m, n] f32 partial sums when config.splits > 1; else may be nullptr
  ElementType y_type;
  Fp8ScaleLayout layout;
  int64_t m, n, k;             // Block: k a multiple of 128; Channel: k a multiple of 16
  int64_t block_out;           // Block: weight rows per scale (>= 1, typically 128); Channel: ignored
  // Small-M kernel only (the tiled one refuses a nonzero value): 0 < segment_rows < n stores y
  // as two contiguous blocks, [m, segment_rows] then [m, n - segment_rows] (LinearBf16Params).
  int64_t segment_rows = 0;
  unsigned* split_counters = nullptr;  // small-M kernel: as LinearBf16Params::split_counters
};

// How to run it: K is cut into 128-wide blocks and split `splits` ways (split s takes blocks
// [s * k_blocks_per_split, (s + 1) * k_blocks_per_split), none empty). With splits > 1 each
// split writes its scaled partial y to the workspace and a reduction kernel sums them in
// split order (deterministic) into y.
struct LinearFp8Config {
  int splits = 1;
  int k_blocks_per_split = 0;
  int row_warps = 1;  // small-M kernel: warps side by side over rows (1, 2 or 4; CTA rows = 16 x
                      // row_warps); the tiled kernel ignores it
  bool overlap_prior = false;  // small-M kernel: as LinearBf16SmallMConfig::overlap_prior; the tiled one ignores it
};

// Configs that fill `sm_count` SMs (<= 0: the current device's) without empty splits. The
// small-M plan counts resident_per_sm CTAs per SM (linear_fp8_small_m_resident_per_sm; <= 0:
// the 2 or 1 its launch bounds promise, SM120's count).
LinearFp8Config plan_linear_fp8_small_m(int64_t m, int64_t n, int64_t k, int sm_count = 0, int resident_per_sm = 0);
// CTAs of the small-M kernel for m tokens that one SM of the current device holds; 0 when it
// cannot be told. A device constant per (m's token tiles, layout): callers cache it.
int linear_fp8_small_m_resident_per_sm(int64_t m, Fp8ScaleLayout layout);
LinearFp8Config plan_linear_fp8_tiled(int64_t m, int64_t n, int64_t k, int sm_count = 0);
// Floats of workspace the config needs, 0 when splits == 1.
int64_t linear_fp8_workspace_floats(int64_t m, int64_t n, const LinearFp8Config& config);

// Memory-bound design for decode (m <= 64), the BF16 small-M kernel's with e4m3 bytes: weight
// rows are the 16-row A operand of mma.sync m16n8k32 e4m3, tokens the 8-column B operand,
// weights streamed once through a per-warp 16-byte cp.async ring by ceil(n / (16 row_warps)) x
// splits CTAs. Returns cudaErrorInvalidValue for m > 64 or a malformed config.
int launch_linear_fp8_small_m(const LinearFp8Params& params, const LinearFp8Config& config, Stream stream);
// Tiled tensor-core design for prefill (any m): 128 (tokens) x 64 (features) tiles of y,
// 128-wide K slices in a 4-stage cp.async ring (96 KB of shared memory), ldmatrix + mma.sync
// m16n8k32 e4m3. Returns cudaErrorInvalidConfiguration (and says why on stderr) on a device
// whose shared memory per block is smaller than the tile needs.
int launch_linear_fp8_tiled(const LinearFp8Params& params, const LinearFp8Config& config, Stream stream);

}  // namespace rackserve::kernels
