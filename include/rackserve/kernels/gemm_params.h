// Dense GEMM y = x W^T for BF16 weights (kernels/gemm/).
#pragma once

#include "rackserve/kernels/common.h"

namespace rackserve::kernels {

struct LinearBf16Params {
  const void* x;        // [m, k] bf16, row-major
  const void* weight;   // [n, k] bf16, row-major (one output feature per row)
  void* y;              // [m, n] y_type
  ElementType y_type;
  int64_t m, n, k;      // k a multiple of 8
  float* workspace = nullptr;  // [splits, m, n] f32 partials of the small-M tensor-core kernel when it
                               // splits K (linear_bf16_workspace_floats); else may be nullptr
  // Small-M tensor-core kernel only (the others refuse a nonzero value): 0 < segment_rows < n
  // stores y as two contiguous blocks, [m, segment_rows] for weight rows below segment_rows,
  // then [m, n - segment_rows] (two stacked linears' outputs from one launch).
  int64_t segment_rows = 0;
  // Small-M tensor-core kernel with splits > 1: one zeroed counter per row CTA (at least
  // kLinearSplitCounters of them, left zeroed again after each launch). The last split CTA of
  // each row group then sums the splits' partials into y itself, in split order (the reduction
  // kernel's sums, bit for bit), and no reduction kernel is launched. nullptr: that kernel runs.
  unsigned* split_counters = nullptr;
};
// Counters split_counters must hold; row groups beyond it fall back to the reduction kernel.
constexpr int64_t kLinearSplitCounters = 65536;

// Decode (m <= 64), tensor cores: weight rows are the 16-row A operand of mma.sync m16n8k16,
// tokens the 8-column B operand, so every weight byte is read once for up to 64 tokens,
// streamed through a per-warp 16-byte cp.async ring; float32 accumulation. A CTA of 8 warps
// owns 16 x row_warps weight rows; its 8 / row_warps K-parallel warps share a split's K blocks
// (64 bf16 wide). With splits > 1 every split writes its partial y to the workspace and a
// second kernel sums them in split order (deterministic) into y.
constexpr int kLinearBf16SmallMBlockK = 64;
constexpr int kLinearBf16SmallMMaxTokens = 64;
struct LinearBf16SmallMConfig {
  int row_warps = 1;           // 1, 2 or 4: warps side by side over rows (CTA rows = 16 x row_warps)
  int splits = 1;              // K ranges, split s = blocks [s * k_blocks_per_split, ...), none empty
  int k_blocks_per_split = 1;
  // Programmatic dependent launch (sm_90+): start while the previous kernel on the stream
  // finishes, streaming the first weight blocks before waiting for it (only weights are read
  // before the wait, so any previous kernel is safe).
  bool overlap_prior = false;
};
// The config that fills `sm_count` SMs (<= 0: the current device's); the reasons are in the
// definition (linear_bf16_small_m_mma.cu).
// resident_per_sm: as plan_linear_fp8_small_m's (linear_bf16_small_m_resident_per_sm).
LinearBf16SmallMConfig plan_linear_bf16_small_m(int64_t m, int64_t n, int64_t k, int sm_count = 0,
                                                int resident_per_sm = 0);
// CTAs of the small-M kernel for m tokens that one SM of the current device holds; 0 when it
// cannot be told. A device constant per m's token tiles: callers cache it.
int linear_bf16_small_m_resident_per_sm(int64_t m);
// K cut into at most `splits` near-equal ranges (fewer when more would leave one empty), and
// row_warps (0: the plan's minimum for m): for benchmarks and tests that force a config.
LinearBf16SmallMConfig linear_bf16_small_m_config(int64_t m, int64_t k, int splits, int row_warps = 0);
// Floats of workspace the config needs, 0 when splits == 1.
int64_t linear_bf16_workspace_floats(int64_t m, int64_t n, const LinearBf16SmallMConfig& config);
// cudaErrorInvalidValue for m > 64, a bad config, or splits > 1 without a workspace;
// cudaErrorInvalidConfiguration (said on stderr) where shared memory per block is too small.
int launch_linear_bf16_small_m_mma(const LinearBf16Params& params, const LinearBf16SmallMConfig& config,
                                   Stream stream);

// CUDA-core design for small m, kept for comparison with the tensor-core kernel until the
// GPU run decides (bench/kernel_roofline.cpp): every weight row is read once per group of
// 8 tokens with 16-byte loads; float32 accumulation. `split` warps share one output
// feature's K range (1, 2, 4 or 8; 0: plan_linear_small_m_split). Benchmarks force it.
int launch_linear_bf16_small_m(const LinearBf16Params& params, Stream stream, int split = 0);
// Split-K for n output features of width k: 1 unless n alone cannot fill the GPU.
int plan_linear_small_m_split(int64_t n, int64_t k);
// Tiled tensor-core design for large m (prefill): 128x128 tiles of y, a 4-stage cp.async
// pipeline within the SM120 99 KB shared-memory budget, mma.sync BF16, float32 accumulation.
// Any m, n; x and weight 16-byte aligned. Returns cudaErrorInvalidConfiguration (and says
// why on stderr) on a device whose shared memory per block is smaller than the tile needs.
int launch_linear_bf16_tiled(const LinearBf16Params& params, Stream stream);

}  // namespace rackserve::kernels
