// Inline-PTX building blocks for the tensor-core kernels that fit the SM120 budget
// (sm_80+ instructions only: mma.sync, ldmatrix, cp.async; no wgmma/tcgen05), shared by
// the tiled GEMMs and the attention kernels. Fragment layouts are PTX's for m16n8k16:
//   A (16x16, row-major)  a0:(g, 2t..2t+1) a1:(g+8, 2t..) a2:(g, 2t+8..) a3:(g+8, 2t+8..)
//   B (16x8,  "col")      b0:(k 2t..2t+1, n g) b1:(k 2t+8.., n g)
//   C (16x8, f32)         c0,c1:(g, 2t..2t+1) c2,c3:(g+8, 2t..2t+1)
// with g = lane / 4, t = lane % 4. Every shared-memory address is a 32-bit shared-window
// address (smem_address); every ldmatrix row and cp.async chunk is 16-byte aligned.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace rackserve::kernels {

__device__ __forceinline__ uint32_t smem_address(const void* pointer) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(pointer));
}

// Two floats as one bf16x2 register (first in the low half, as mma operands expect).
__device__ __forceinline__ uint32_t pack_bf16x2(float low, float high) {
  __nv_bfloat162 pair = __floats2bfloat162_rn(low, high);
  return *reinterpret_cast<uint32_t*>(&pair);
}

// --- ldmatrix: lanes 8i..8i+7 give the row addresses of matrix i ------------------------

__device__ __forceinline__ void ldmatrix_x2(uint32_t (&r)[2], uint32_t address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(address));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}

__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t (&r)[2], uint32_t address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(address));
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}

// --- mma.sync m16n8k16, bf16 inputs, f32 accumulators: d += a * b ------------------------

__device__ __forceinline__ void mma_bf16_16x8x16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// --- cp.async: 16-byte global -> shared copies, grouped by commit ---------------------

// Copies 16 bytes, or writes 16 zero bytes (and reads nothing) when `valid` is false;
// `source` must still be a mapped address then (pass any valid base pointer).
__device__ __forceinline__ void cp_async_16(uint32_t destination, const void* source, bool valid = true) {
  const int source_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(destination), "l"(source), "r"(source_bytes)
               : "memory");
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

// Waits until at most `pending` of this thread's committed groups are still in flight.
template <int pending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(pending) : "memory");
}

}  // namespace rackserve::kernels
