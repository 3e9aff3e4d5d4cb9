// The benchmarks' own device code (bench_kernels.h): the mma.sync peak kernels and the
// same-size streaming read. Compiled for the project's CUDA architectures with the bench target.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_kernels.h"

namespace rackserve::bench {
namespace {

// Plain exceptions: this file is compiled by nvcc as C++17, without the fmt-based RS_CHECK.
void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(status));
}

constexpr int kPeakThreads = 256;
// Independent accumulators per warp: with the SM full of 8-warp CTAs (12-16 warps per
// sub-partition) that is ~100 MMAs in flight per tensor pipe, far past latency x issue rate.
constexpr int kPeakChains = 8;

__device__ __forceinline__ uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Fragments are m16n8k32 e4m3 (A 4 registers, B 2) or m16n8k16 bf16 (the same register
// counts). `asm volatile` keeps every MMA: the chains compute the same function of the same
// registers, so a plain asm could be merged by common-subexpression elimination.
template <MmaKind kind>
__device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  if constexpr (kind == MmaKind::E4m3) {
    asm volatile(
        "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
}

// Operands are random magnitudes in [0.5, 2) with random signs (not zeros, which draw less
// power and could run faster than real data); `sink` (nullptr in the timed launches) only
// gives the accumulators a use.
template <MmaKind kind>
__global__ void __launch_bounds__(kPeakThreads) mma_peak_kernel(int iterations, float* sink) {
  const uint32_t thread = blockIdx.x * kPeakThreads + threadIdx.x;
  // e4m3 bytes 0x30-0x3f (or 0xb0-0xbf): exponent 6-7 of bias 7. bf16 halves 0x3f00-0x3f7f: [0.5, 1).
  const uint32_t keep = kind == MmaKind::E4m3 ? 0x8f8f8f8fU : 0x807f807fU;
  const uint32_t set = kind == MmaKind::E4m3 ? 0x30303030U : 0x3f003f00U;
  uint32_t a[4], b[2];
  for (int i = 0; i < 4; ++i) a[i] = (uint32_t(splitmix64(thread * 8 + i)) & keep) | set;
  for (int i = 0; i < 2; ++i) b[i] = (uint32_t(splitmix64(thread * 8 + 4 + i)) & keep) | set;
  float acc[kPeakChains][4] = {};
  for (int it = 0; it < iterations; ++it) {
#pragma unroll
    for (int c = 0; c < kPeakChains; ++c) mma<kind>(acc[c], a, b);
  }
  if (sink) {
    float total = 0.0f;
    for (int c = 0; c < kPeakChains; ++c) total += acc[c][0] + acc[c][1] + acc[c][2] + acc[c][3];
    sink[thread] = total;
  }
}

constexpr int kReadThreads = 256;

// Reads `count` 16-byte words once (L1 bypassed) and folds them into one word, stored only if
// it matches an impossible value: the loads must happen, nothing is written.
__global__ void __launch_bounds__(kReadThreads) stream_read_kernel(const uint4* data, int64_t count, uint32_t* sink) {
  uint32_t fold = 0;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
#pragma unroll 4
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(data + i));
    fold ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (fold == 0x9e3779b9u && threadIdx.x == 0xffff) *sink = fold;
}

}  // namespace

double measure_stream_read_seconds(int64_t bytes, int copies, void* stream) {
  auto s = static_cast<cudaStream_t>(stream);
  const int64_t words = std::max<int64_t>(1, (bytes + 15) / 16);
  copies = std::max(1, copies);
  uint4* data = nullptr;
  uint32_t* sink = nullptr;
  check_cuda(cudaMalloc(&data, static_cast<size_t>(words) * 16 * copies), "cudaMalloc (read ceiling)");
  check_cuda(cudaMalloc(&sink, sizeof(uint32_t)), "cudaMalloc (read ceiling)");
  check_cuda(cudaMemsetAsync(data, 0x5a, static_cast<size_t>(words) * 16 * copies, s), "cudaMemset (read ceiling)");
  int device = 0, sms = 0, per_sm = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  check_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "SM count");
  check_cuda(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, stream_read_kernel, kReadThreads, 0), "occupancy");
  // One full wave at most, fewer CTAs when there are fewer words than threads.
  const int64_t blocks = std::clamp<int64_t>((words + kReadThreads - 1) / kReadThreads, 1, int64_t{sms} * per_sm);
  constexpr int kCalls = 20;
  cudaGraph_t graph = nullptr;
  check_cuda(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed), "cudaStreamBeginCapture");
  for (int call = 0; call < kCalls; ++call)
    stream_read_kernel<<<static_cast<unsigned>(blocks), kReadThreads, 0, s>>>(data + (call % copies) * words, words,
                                                                              sink);
  check_cuda(cudaStreamEndCapture(s, &graph), "cudaStreamEndCapture");
  cudaGraphExec_t exec = nullptr;
  check_cuda(cudaGraphInstantiate(&exec, graph, 0), "cudaGraphInstantiate");
  cudaGraphDestroy(graph);
  cudaEvent_t start, stop;
  check_cuda(cudaEventCreate(&start), "cudaEventCreate");
  check_cuda(cudaEventCreate(&stop), "cudaEventCreate");
  check_cuda(cudaGraphLaunch(exec, s), "cudaGraphLaunch");  // warm-up
  std::vector<float> samples;
  for (int repeat = 0; repeat < 5; ++repeat) {
    check_cuda(cudaEventRecord(start, s), "cudaEventRecord");
    check_cuda(cudaGraphLaunch(exec, s), "cudaGraphLaunch");
    check_cuda(cudaEventRecord(stop, s), "cudaEventRecord");
    check_cuda(cudaEventSynchronize(stop), "cudaEventSynchronize");
    float ms = 0;
    check_cuda(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
    samples.push_back(ms);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaGraphExecDestroy(exec);
  cudaFree(sink);
  cudaFree(data);
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2] * 1e-3 / kCalls;
}

double measure_mma_sync_flops(MmaKind kind) {
  int device = 0, sms = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  check_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "SM count");
  auto kernel = kind == MmaKind::E4m3 ? mma_peak_kernel<MmaKind::E4m3> : mma_peak_kernel<MmaKind::Bf16>;
  int ctas_per_sm = 0;
  check_cuda(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&ctas_per_sm, kernel, kPeakThreads, 0), "occupancy");
  const int ctas = sms * std::max(ctas_per_sm, 1);  // one full wave
  cudaEvent_t start, stop;
  check_cuda(cudaEventCreate(&start), "cudaEventCreate");
  check_cuda(cudaEventCreate(&stop), "cudaEventCreate");
  auto seconds = [&](int iterations) {
    check_cuda(cudaEventRecord(start), "cudaEventRecord");
    kernel<<<ctas, kPeakThreads>>>(iterations, nullptr);
    check_cuda(cudaGetLastError(), "mma_peak_kernel launch");
    check_cuda(cudaEventRecord(stop), "cudaEventRecord");
    check_cuda(cudaEventSynchronize(stop), "mma_peak_kernel");
    float ms = 0.0f;
    check_cuda(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
    return ms * 1e-3;
  };
  seconds(64);  // warm-up: module load, clocks
  const int probe = 1024;
  const int iterations =
      static_cast<int>(std::clamp(probe * 20e-3 / std::max(seconds(probe), 1e-6), 1024.0, double(1 << 22)));
  std::vector<double> samples;
  for (int r = 0; r < 5; ++r) samples.push_back(seconds(iterations));
  std::sort(samples.begin(), samples.end());
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  const double flops_per_mma = kind == MmaKind::E4m3 ? 2.0 * 16 * 8 * 32 : 2.0 * 16 * 8 * 16;
  const double mmas = double(ctas) * (kPeakThreads / 32) * double(iterations) * kPeakChains;
  return mmas * flops_per_mma / samples[samples.size() / 2];
}
}  // namespace rackserve::bench
