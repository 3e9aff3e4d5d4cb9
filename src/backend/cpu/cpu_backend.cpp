// CpuBackend memory management and the factory; the ops live in *_ops.cpp beside it.
#include "backend/cpu/cpu_backend.h"

#include <cstring>

#include "backend/cpu/sampling_reference.h"
#include "core/dtype.h"
#include "core/error.h"
#include "rackserve/random_hash.h"

namespace rackserve {

CpuBackend::CpuBackend(unsigned threads) : pool_(threads) {}

std::unique_ptr<Backend> make_cpu_backend(unsigned threads) { return std::make_unique<CpuBackend>(threads); }

namespace {
Tensor allocate_into(std::vector<std::unique_ptr<std::byte[]>>& owner, DType dtype, const Shape& shape) {
  for (int64_t extent : shape) RS_CHECK(extent >= 0, "negative extent in shape {}", shape_string(shape));
  size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  owner.push_back(std::make_unique<std::byte[]>(bytes == 0 ? 1 : bytes));  // value-initialised: zeros
  return Tensor{owner.back().get(), dtype, shape, Device{}};
}
}  // namespace

Tensor CpuBackend::allocate_step(DType dtype, const Shape& shape) { return allocate_into(step_buffers_, dtype, shape); }

Tensor CpuBackend::allocate_persistent(DType dtype, const Shape& shape) {
  return allocate_into(persistent_buffers_, dtype, shape);
}

Tensor CpuBackend::upload_weight(const Tensor& host, WeightRole) {
  Tensor weight = allocate_persistent(DType::F32, host.shape);
  convert_to_f32(host.dtype, host.data, weight.as<float>(), static_cast<size_t>(host.numel()));
  return weight;
}

Tensor CpuBackend::upload_persistent(const Tensor& host, DType dtype) {
  RS_CHECK(dtype == DType::F32 || dtype == host.dtype, "the CPU backend stores F32 or the host's own dtype, not {} from {}",
           dtype_name(dtype), dtype_name(host.dtype));
  Tensor copy = allocate_persistent(dtype, host.shape);
  if (dtype == host.dtype)
    std::memcpy(copy.data, host.data, host.bytes());
  else
    convert_to_f32(host.dtype, host.data, copy.as<float>(), static_cast<size_t>(host.numel()));
  return copy;
}

Tensor CpuBackend::upload_step_ints(std::span<const int32_t> values) {
  Tensor tensor = allocate_step(DType::I32, {static_cast<int64_t>(values.size())});
  if (!values.empty()) std::memcpy(tensor.data, values.data(), values.size_bytes());
  return tensor;
}

std::vector<float> CpuBackend::download_f32(const Tensor& tensor) {
  std::vector<float> host(static_cast<size_t>(tensor.numel()));
  if (tensor.dtype == DType::I32) {
    for (size_t i = 0; i < host.size(); ++i) host[i] = static_cast<float>(tensor.as<int32_t>()[i]);
  } else {
    convert_to_f32(tensor.dtype, tensor.data, host.data(), host.size());
  }
  return host;
}

void CpuBackend::fill_random(const Tensor& tensor, uint64_t seed, float scale) {
  RS_CHECK(tensor.dtype == DType::F32 || tensor.dtype == DType::F8_E4M3,
           "CPU fill_random supports F32 and F8_E4M3 tensors, got {}", dtype_name(tensor.dtype));
  if (tensor.dtype == DType::F8_E4M3) {  // FP8 weights: the CUDA kernel's rounding (nearest even, saturated)
    uint8_t* codes = static_cast<uint8_t*>(tensor.data);
    for (int64_t i = 0; i < tensor.numel(); ++i)
      codes[i] = f32_to_e4m3(uniform_symmetric(seed, static_cast<uint64_t>(i), scale));
    return;
  }
  float* data = tensor.as<float>();
  for (int64_t i = 0; i < tensor.numel(); ++i) data[i] = uniform_symmetric(seed, static_cast<uint64_t>(i), scale);
}

void CpuBackend::fill(const Tensor& tensor, float value) {
  RS_CHECK(tensor.dtype == DType::F32, "CPU fill supports F32 tensors, got {}", dtype_name(tensor.dtype));
  std::fill_n(tensor.as<float>(), tensor.numel(), value);
}

std::vector<SampledRow> CpuBackend::sample(const Tensor& logits, std::span<const SamplingRow> rows) {
  RS_CHECK(logits.dtype == DType::F32 && logits.rank() == 2, "sample: logits must be a 2-D F32 tensor, got {} {}",
           dtype_name(logits.dtype), shape_string(logits.shape));
  RS_CHECK(static_cast<int64_t>(rows.size()) == logits.dim(0), "sample: {} rows of parameters for {} rows of logits",
           rows.size(), logits.dim(0));
  const int64_t vocab = logits.dim(1);
  std::vector<SampledRow> sampled;
  sampled.reserve(rows.size());
  for (size_t r = 0; r < rows.size(); ++r)
    sampled.push_back(cpu::sample_row(std::span(logits.as<float>() + r * vocab, vocab), rows[r]));
  return sampled;
}

int64_t CpuBackend::capture_step_graph(const std::function<void()>&) {
  RS_FAIL("the CPU backend has no step graphs (supports_step_graphs() is false)");
}
void CpuBackend::replay_step_graph(int64_t) { RS_FAIL("the CPU backend has no step graphs"); }
void CpuBackend::release_step_graph(int64_t) { RS_FAIL("the CPU backend has no step graphs"); }

}  // namespace rackserve
