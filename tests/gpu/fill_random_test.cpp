// Backend::fill_random gives the same values on the CUDA and CPU backends (the contract
// dummy weights rely on): float32 bit-exact, bf16 equal to the float32 value rounded, e4m3
// (FP8 dummy weights) the same codes as the CPU's rounding (nearest even, saturated).
#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "core/dtype.h"

namespace rackserve {
namespace {

TEST(FillRandom, CudaMatchesCpuAndIsUniform) {
  ASSERT_TRUE(cuda_device_available()) << "the gpu tests need a CUDA device";
  auto cpu = make_cpu_backend(0);
  auto gpu = make_cuda_backend(CudaBackendOptions{});
  const int64_t count = (1 << 20) + 3;
  const uint64_t seed = 1234567;
  const float scale = 0.5f;
  Tensor expected = cpu->allocate_persistent(DType::F32, {count});
  cpu->fill_random(expected, seed, scale);
  Tensor as_f32 = gpu->allocate_persistent(DType::F32, {count});
  Tensor as_bf16 = gpu->allocate_persistent(DType::BF16, {count});
  gpu->fill_random(as_f32, seed, scale);
  gpu->fill_random(as_bf16, seed, scale);
  auto reference = cpu->download_f32(expected);
  auto f32 = gpu->download_f32(as_f32);
  auto bf16 = gpu->download_f32(as_bf16);
  int64_t f32_mismatches = 0, bf16_mismatches = 0;
  double sum = 0.0, sum_squares = 0.0;
  for (int64_t i = 0; i < count; ++i) {
    f32_mismatches += f32[i] != reference[i];
    bf16_mismatches += bf16[i] != bf16_to_f32(f32_to_bf16(reference[i]));
    sum += reference[i];
    sum_squares += double(reference[i]) * reference[i];
  }
  EXPECT_EQ(f32_mismatches, 0);
  EXPECT_EQ(bf16_mismatches, 0);
  // Uniform on [-0.5, 0.5): mean 0 (standard error 0.29 / sqrt(count) ~ 3e-4), variance 1/12.
  EXPECT_NEAR(sum / count, 0.0, 2e-3);
  EXPECT_NEAR(sum_squares / count, scale * scale * 4.0 / 12.0, 2e-3);
}

TEST(FillRandom, E4m3CodesMatchTheCpu) {
  ASSERT_TRUE(cuda_device_available()) << "the gpu tests need a CUDA device";
  auto cpu = make_cpu_backend(0);
  auto gpu = make_cuda_backend(CudaBackendOptions{});
  const int64_t count = (1 << 20) + 5;
  // 448 spans the whole e4m3 range (subnormals included); 500 also exercises saturation.
  for (const float scale : {448.0f, 500.0f}) {
    Tensor expected = cpu->allocate_persistent(DType::F8_E4M3, {count});
    Tensor on_gpu = gpu->allocate_persistent(DType::F8_E4M3, {count});
    cpu->fill_random(expected, 99, scale);
    gpu->fill_random(on_gpu, 99, scale);
    const std::vector<float> reference = cpu->download_f32(expected), values = gpu->download_f32(on_gpu);
    int64_t mismatches = 0, first = -1;
    for (int64_t i = 0; i < count; ++i)
      if (std::bit_cast<uint32_t>(values[i]) != std::bit_cast<uint32_t>(reference[i]) && mismatches++ == 0) first = i;
    EXPECT_EQ(mismatches, 0) << "scale " << scale << ", first at " << first << ": gpu "
                             << (first >= 0 ? values[first] : 0.0f) << " cpu "
                             << (first >= 0 ? reference[first] : 0.0f);
  }
}

// Regression: uploads once went through the legacy default stream while allocation
// zeroed memory on the backend's non-blocking stream, so with work queued ahead (here a
// 1 GiB fill) the zeroing landed after the upload and erased it.
TEST(Upload, IsOrderedAfterQueuedWork) {
  ASSERT_TRUE(cuda_device_available()) << "the gpu tests need a CUDA device";
  auto gpu = make_cuda_backend(CudaBackendOptions{});
  Tensor big = gpu->allocate_persistent(DType::F32, {int64_t(1) << 28});
  gpu->fill_random(big, 5, 1.0f);
  std::vector<int32_t> values(1000);
  for (int32_t i = 0; i < 1000; ++i) values[i] = 7 * i + 1;
  Tensor uploaded = gpu->upload_persistent(Tensor{values.data(), DType::I32, {1000}, Device{}}, DType::I32);
  auto back = gpu->download_f32(uploaded);
  for (int32_t i = 0; i < 1000; ++i) ASSERT_EQ(back[i], float(values[i])) << "element " << i;
}

}  // namespace
}  // namespace rackserve
