// Split-K pieces shared by the GEMMs that cut K across CTAs (linear_fp8_small_m.cu,
// linear_fp8_tiled.cu, linear_bf16_small_m_mma.cu): the plan arithmetic, and the reduction of
// the per-split f32 partials into y in split order, so the result does not depend on which
// CTA finished first. Defined in linear_split_k.cu.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "rackserve/kernels/common.h"

namespace rackserve::kernels {

// K cut into whole blocks: split s takes blocks [s * k_blocks_per_split, (s + 1) * k_blocks_per_split),
// the last maybe shorter, none empty.
struct SplitK {
  int splits = 1;
  int k_blocks_per_split = 1;
};

// At most `splits` near-equal ranges (fewer when more would leave one empty); k_blocks >= 1.
SplitK split_k_evenly(int64_t k_blocks, int64_t splits);

// The small-M kernels' rule, for CTAs whose k_warps warps share a split's blocks round-robin:
// the split count in [1, max_splits] with the least modelled time, waves x (blocks per warp + 2),
// where waves = ceil(row_ctas x splits / resident_ctas) and the + 2 is a CTA's fixed cost: its
// pipeline fill (about one DRAM latency ~ one block per warp at an SM's bandwidth share) and its
// epilogue (cross-warp reduction, stores, split finish; measured on the H200, 2026-12-05: with
// + 1, o_proj/4 at m = 1 split in two and slowed 12.8 -> 15.7 us); ties go to fewer splits. E.g. on 132 SMs, 2 CTAs each: kv_a 576 x 7168 (36 row CTAs, 112 blocks) -> 7,
// dense gate_up/8 4608 x 7168 (288 row CTAs, more than one wave alone) -> 2.
SplitK plan_small_m_split_k(int64_t row_ctas, int64_t resident_ctas, int64_t k_blocks, int k_warps,
                            int64_t max_splits);

// y[i] = sum over s = 0, 1, ..., splits - 1 of workspace[s * count + i] (that order), stored
// as y_type; count = m x n. The workspace holds [splits, m, n] floats.
int launch_linear_split_reduce(const float* workspace, void* y, ElementType y_type, int64_t count, int splits,
                               cudaStream_t stream);

}  // namespace rackserve::kernels
