// Device code the benchmarks need that the backend does not provide (bench_kernels.cu):
// the mma.sync peak microbenchmark the large-M GEMMs are reported against, and a fill of
// random e4m3 codes for FP8 weights (the backend's fill_random takes F32 and BF16 only).
#pragma once

#include <cstddef>
#include <cstdint>

namespace rackserve::bench {

enum class MmaKind {
  E4m3,  // mma.sync.m16n8k32 e4m3 x e4m3, f32 accumulate: 8192 flops per warp instruction
  Bf16,  // mma.sync.m16n8k16 bf16 x bf16, f32 accumulate: 4096 flops per warp instruction
};

// Device-wide flop/s of `kind`: operands in registers (no memory traffic), every SM filled,
// each warp running independent accumulator chains so the tensor pipes never wait on a
// result. Median of 5 launches of ~20 ms each, timed with CUDA events on the default stream.
double measure_mma_sync_flops(MmaKind kind);

// Writes `bytes` random e4m3 codes (any finite value; never the NaN codes 0x7f / 0xff) to
// device memory at `data`, from `seed`; synchronous.
void fill_random_e4m3(void* data, size_t bytes, uint64_t seed);

}  // namespace rackserve::bench
