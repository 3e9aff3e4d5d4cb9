// The device's copy bandwidth, the ceiling benches report memory-bound work against:
// a 1 GiB device-to-device cudaMemcpy, counted as bytes read + bytes written per second
// (median of several batches). Measured in the same run as the work it is compared with.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "core/error.h"

namespace rackserve::bench {

inline double measure_copy_bandwidth(int repeats = 5, int copies_per_repeat = 10) {
  auto check = [](cudaError_t status, const char* what) {
    RS_CHECK(status == cudaSuccess, "{}: {}", what, cudaGetErrorString(status));
  };
  const size_t bytes = size_t{1} << 30;
  void *source = nullptr, *target = nullptr;
  check(cudaMalloc(&source, bytes), "cudaMalloc (copy bandwidth)");
  check(cudaMalloc(&target, bytes), "cudaMalloc (copy bandwidth)");
  check(cudaMemset(source, 0x5a, bytes), "cudaMemset");
  check(cudaMemcpy(target, source, bytes, cudaMemcpyDeviceToDevice), "warm-up copy");
  check(cudaDeviceSynchronize(), "warm-up copy");
  std::vector<double> seconds;
  for (int r = 0; r < repeats; ++r) {
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < copies_per_repeat; ++i)
      check(cudaMemcpyAsync(target, source, bytes, cudaMemcpyDeviceToDevice), "copy");
    check(cudaDeviceSynchronize(), "copy");
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() /
                      copies_per_repeat);
  }
  cudaFree(source);
  cudaFree(target);
  std::sort(seconds.begin(), seconds.end());
  return 2.0 * static_cast<double>(bytes) / seconds[seconds.size() / 2];
}

}  // namespace rackserve::bench
