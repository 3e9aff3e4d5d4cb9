// Launch-time check of a kernel's dynamic shared memory against the device: every kernel is
// written for the SM120 budget (99 KB per block, 101,376 bytes opt-in), and a device that
// gives less must fail with a message naming the kernel, not with a bare launch error.
#pragma once

#include <cuda_runtime.h>

#include <cstdio>

namespace rackserve::kernels {

// The SM120 opt-in limit every kernel's shared memory must fit (static_assert against it).
constexpr int kSharedMemoryBudgetBytes = 99 * 1024;

// Raises `kernel`'s dynamic shared-memory limit to `bytes` on the current device. Returns
// cudaSuccess, or cudaErrorInvalidConfiguration (after one line on stderr saying what was
// needed and what the device allows) when the device's opt-in maximum is smaller than
// `bytes` plus the kernel's static shared memory. The default limit without opt-in is 48 KB
// for static and dynamic together, so a 48 KB ring plus one static byte needs the opt-in.
// Safe to call before every launch: it changes no stream state (also legal while capturing).
inline int opt_in_dynamic_shared_memory(const void* kernel, int bytes, const char* kernel_name) {
  int device = 0, optin = 0;
  if (cudaError_t error = cudaGetDevice(&device)) return error;
  if (cudaError_t error = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device)) return error;
  cudaFuncAttributes attributes{};
  if (cudaError_t error = cudaFuncGetAttributes(&attributes, kernel)) return error;
  const int total = bytes + static_cast<int>(attributes.sharedSizeBytes);
  if (total > optin) {
    std::fprintf(stderr,
                 "rackserve: kernel %s needs %d bytes of shared memory per block (%d dynamic + %d static); "
                 "device %d allows %d (cudaDevAttrMaxSharedMemoryPerBlockOptin)\n",
                 kernel_name, total, bytes, total - bytes, device, optin);
    return cudaErrorInvalidConfiguration;
  }
  if (total <= 48 * 1024) return cudaSuccess;  // within the default, no opt-in needed
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
}

}  // namespace rackserve::kernels
