// Device code the benchmarks need that the backend does not provide (bench_kernels.cu): the
// mma.sync peak microbenchmark the large-M GEMMs are reported against, and the same-size read
// ceiling the decode kernels are.
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

// The read ceiling of a decode kernel that streams `bytes` once: seconds per launch of a kernel
// that only reads that many bytes (16-byte loads, L1 bypassed, one wave of full-occupancy
// CTAs), replayed 20 times in a CUDA graph over `copies` rotating buffers (so, with copies
// past the L2, from DRAM), median of 5 replays. For small operands it is well below the copy
// bandwidth: launch, ramp-up and DRAM latency are part of any one kernel's time, and this is
// what a kernel reading those bytes can reach on this GPU, measured the way the graph columns are.
double measure_stream_read_seconds(int64_t bytes, int copies, void* stream);

}  // namespace rackserve::bench
