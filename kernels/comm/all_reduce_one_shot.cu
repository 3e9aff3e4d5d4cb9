// One-shot all-reduce over peer-accessible buffers: the protocol and the contracts are in
// include/rackserve/kernels/all_reduce_params.h. Each block owns one contiguous range of
// 16-byte packs (the same range on every rank); the last block also owns the elements past
// the last whole pack.
#include <algorithm>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "common/device_utils.cuh"
#include "rackserve/kernels/all_reduce_params.h"

namespace rackserve::kernels {

namespace {

__device__ __forceinline__ uint64_t load_acquire_system(const uint64_t* address) {
  uint64_t value;
  asm volatile("ld.acquire.sys.global.u64 %0, [%1];" : "=l"(value) : "l"(address) : "memory");
  return value;
}

__device__ __forceinline__ void store_release_system(uint64_t* address, uint64_t value) {
  asm volatile("st.release.sys.global.u64 [%0], %1;" ::"l"(address), "l"(value) : "memory");
}

template <typename T>
__device__ __forceinline__ float to_f32(T value);
template <>
__device__ __forceinline__ float to_f32<float>(float value) { return value; }
template <>
__device__ __forceinline__ float to_f32<__nv_bfloat16>(__nv_bfloat16 value) { return __bfloat162float(value); }

template <typename T>
__device__ __forceinline__ T from_f32(float value);
template <>
__device__ __forceinline__ float from_f32<float>(float value) { return value; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float value) { return __float2bfloat16_rn(value); }

// 16 bytes of T, loaded past L1 (a peer's buffer changes between calls; L1 is not coherent).
template <typename T>
union Pack {
  static constexpr int kElements = 16 / sizeof(T);
  uint4 raw;
  T values[kElements];
};

template <typename T>
__global__ void __launch_bounds__(kAllReduceThreads) one_shot_all_reduce(const OneShotAllReduceParams params) {
  wait_for_prior_kernel();
  constexpr int kPer = Pack<T>::kElements;
  // Every block reads the counter before the last block to finish increments it.
  const uint64_t call = *static_cast<volatile uint64_t*>(params.call_counter) + 1;
  const size_t half = static_cast<size_t>(call & 1) * static_cast<size_t>(params.capacity_bytes);
  const int64_t packs = params.count / kPer;
  const int64_t per_block = (packs + gridDim.x - 1) / gridDim.x;
  const int64_t begin = min(packs, static_cast<int64_t>(blockIdx.x) * per_block);
  const int64_t end = min(packs, begin + per_block);
  const bool owns_tail = blockIdx.x == gridDim.x - 1;

  T* own = reinterpret_cast<T*>(static_cast<char*>(params.buffers[params.rank]) + half);
  T* inout = static_cast<T*>(params.inout);
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x)
    reinterpret_cast<uint4*>(own)[i] = reinterpret_cast<const uint4*>(inout)[i];
  if (owns_tail)
    for (int64_t i = packs * kPer + threadIdx.x; i < params.count; i += blockDim.x) own[i] = inout[i];
  __syncthreads();

  // Thread q tells rank q that this block's slice is in place (the release store is
  // cumulative over the block's writes ordered before it by the barrier), then waits for
  // rank q's slice of the same block.
  if (threadIdx.x < params.world) {
    const int q = threadIdx.x;
    store_release_system(params.flags[q] + params.rank * kAllReduceMaxBlocks + blockIdx.x, call);
    const uint64_t* arrived = params.flags[params.rank] + q * kAllReduceMaxBlocks + blockIdx.x;
    for (uint32_t spins = 1; load_acquire_system(arrived) < call; ++spins)
      if (spins % 256 == 0 && *params.abort != 0) break;  // the group failed: give up, results are undefined
  }
  __syncthreads();

  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    float sum[kPer];
#pragma unroll
    for (int q = 0; q < kAllReduceMaxRanks; ++q) {  // unrolled: params.buffers[q] stays in parameter space
      if (q >= params.world) break;
      Pack<T> pack;
      pack.raw = __ldcg(reinterpret_cast<const uint4*>(static_cast<const char*>(params.buffers[q]) + half) + i);
#pragma unroll
      for (int e = 0; e < kPer; ++e) sum[e] = q == 0 ? to_f32(pack.values[e]) : sum[e] + to_f32(pack.values[e]);
    }
    Pack<T> out;
#pragma unroll
    for (int e = 0; e < kPer; ++e) out.values[e] = from_f32<T>(sum[e]);
    reinterpret_cast<uint4*>(inout)[i] = out.raw;
  }
  if (owns_tail)
    for (int64_t i = packs * kPer + threadIdx.x; i < params.count; i += blockDim.x) {
      float sum = 0.0f;
#pragma unroll
      for (int q = 0; q < kAllReduceMaxRanks; ++q) {
        if (q >= params.world) break;
        const T value = reinterpret_cast<const T*>(static_cast<const char*>(params.buffers[q]) + half)[i];
        sum = q == 0 ? to_f32(value) : sum + to_f32(value);
      }
      inout[i] = from_f32<T>(sum);
    }

  // The last block to finish advances the call counter (the next call, later on the same
  // stream, sees it).
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();
    const unsigned long long finished =
        atomicAdd(reinterpret_cast<unsigned long long*>(params.call_counter + 1), 1ull) + 1;
    if (finished == gridDim.x) {
      params.call_counter[1] = 0;
      params.call_counter[0] = call;
    }
  }
}

}  // namespace

int launch_one_shot_all_reduce(const OneShotAllReduceParams& params, Stream stream) {
  const int64_t element = params.type == ElementType::F32 ? 4 : 2;
  bool valid = params.world >= 2 && params.world <= kAllReduceMaxRanks && params.rank >= 0 &&
               params.rank < params.world && params.call_counter && params.abort && params.inout &&
               params.count >= 0 && params.count * element <= params.capacity_bytes && params.capacity_bytes % 16 == 0 &&
               reinterpret_cast<uintptr_t>(params.inout) % 16 == 0 && params.max_blocks >= 1 &&
               params.max_blocks <= kAllReduceMaxBlocks &&
               (params.type == ElementType::F32 || params.type == ElementType::BF16);
  for (int q = 0; valid && q < params.world; ++q) valid = params.buffers[q] && params.flags[q];
  if (!valid) return static_cast<int>(cudaErrorInvalidValue);
  if (params.count == 0) return 0;  // every rank skips it alike: the call numbers stay in step
  const int64_t per_pack = 16 / element;
  const int64_t packs = params.count / per_pack;
  const int64_t wanted = (packs + kAllReduceThreads - 1) / kAllReduceThreads;
  const int blocks = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(params.max_blocks, wanted)));
  auto cuda_stream = static_cast<cudaStream_t>(stream);
  if (params.type == ElementType::F32)
    one_shot_all_reduce<float><<<blocks, kAllReduceThreads, 0, cuda_stream>>>(params);
  else
    one_shot_all_reduce<__nv_bfloat16><<<blocks, kAllReduceThreads, 0, cuda_stream>>>(params);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace rackserve::kernels
