// What the kernel_roofline sections share: the ceilings measured once per run, the timing
// loop, and the L2 rotation rule. Sections live in kernel_roofline.cpp (BF16, MLA, MoE),
// roofline_fp8.cpp and roofline_moe_fp8.cpp; each prints markdown tables.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"

namespace rackserve::bench {

// Measured at the start of the run; every fraction a section prints is against one of these.
struct Ceilings {
  double bandwidth;   // bytes/s: 1 GiB device-to-device copy, read + write (copy_bandwidth.h)
  double flops;       // flop/s: cuBLAS BF16 GEMM at 8192^3
  double mma_e4m3;    // flop/s: mma.sync m16n8k32 e4m3, registers only (bench_kernels.h)
  double mma_bf16;    // flop/s: mma.sync m16n8k16 bf16, registers only
};

inline void check_cuda(cudaError_t status, const char* what) {
  RS_CHECK(status == cudaSuccess, "{}: {}", what, cudaGetErrorString(status));
}

// Median seconds per call of `body` over `repeats` batches of `iterations` calls (one warm-up
// call first), wall clock around each batch with the device synchronised.
inline double seconds_per_call(const std::function<void(int)>& body, int iterations, int repeats = 5) {
  body(0);
  check_cuda(cudaDeviceSynchronize(), "warm-up");
  std::vector<double> samples;
  for (int r = 0; r < repeats; ++r) {
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < iterations; ++i) body(i);
    check_cuda(cudaDeviceSynchronize(), "timed batch");
    samples.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / iterations);
  }
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

// Median seconds per call of `body` (call i) when `calls` calls are captured into one CUDA
// graph on `stream` (a cudaStream_t) and the graph is replayed: the host's launch cost is gone
// and the GPU's own gaps between kernels stay, as in a decode step replaying its graph. The
// eager seconds_per_call of a small op can measure the host instead (it enqueues slower than
// the GPU runs). `body` must only enqueue work (no allocation outside the step arena, no sync).
inline double seconds_per_call_in_graph(void* stream, const std::function<void(int)>& body, int calls,
                                        int repeats = 5) {
  auto s = static_cast<cudaStream_t>(stream);
  cudaGraph_t graph = nullptr;
  check_cuda(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed), "cudaStreamBeginCapture");
  for (int i = 0; i < calls; ++i) body(i);
  check_cuda(cudaStreamEndCapture(s, &graph), "cudaStreamEndCapture");
  cudaGraphExec_t exec = nullptr;
  check_cuda(cudaGraphInstantiate(&exec, graph, 0), "cudaGraphInstantiate");
  cudaGraphDestroy(graph);
  const double per_replay =
      seconds_per_call([&](int) { check_cuda(cudaGraphLaunch(exec, s), "cudaGraphLaunch"); }, 3, repeats);
  cudaGraphExecDestroy(exec);
  return per_replay / calls;
}

inline int64_t l2_bytes() {
  int value = 0;
  check_cuda(cudaDeviceGetAttribute(&value, cudaDevAttrL2CacheSize, 0), "L2 size");
  return value;
}

// How many copies of a `bytes`-sized operand rotate so that together they exceed 4x the L2.
inline int rotation_copies(int64_t bytes) {
  return static_cast<int>(std::clamp<int64_t>((4 * l2_bytes() + bytes - 1) / bytes, 1, 64));
}

// A device FP8 weight [(experts,) out, in] of random e4m3 codes and random f32 scales, in the
// layout a checkpoint of `scaling` ships (Block: 128 x 128 tiles). roofline_fp8.cpp.
QuantizedWeight random_fp8_weight(Backend& backend, const Shape& shape, Fp8Scaling scaling, uint64_t seed);

// roofline_fp8.cpp: W8A8 linear on the FP8 models' per-GPU projections, decode and prefill.
void bench_fp8_linear(const Ceilings& ceilings, bool quick);
// roofline_moe_fp8.cpp: fused FP8 routed experts at decode sizes.
void bench_moe_fp8(const Ceilings& ceilings, bool quick);

}  // namespace rackserve::bench
