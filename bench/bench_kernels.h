// Device code the benchmarks need that the backend does not provide (bench_kernels.cu):
// the mma.sync peak microbenchmark the large-M GEMMs are reported against.
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

}  // namespace rackserve::bench
