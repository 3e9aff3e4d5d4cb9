// CudaBackend memory management and data movement; the ops are in cuda_ops.cpp.
#include "backend/cuda/cuda_backend.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>

#include "backend/cuda/moe_fp8_config_file.h"
#include "backend/cuda/profiling_cuda_backend.h"
#include "core/error.h"
#include "rackserve/kernels/elementwise_params.h"

namespace rackserve {

namespace {
constexpr size_t kChunkBytes = size_t{64} << 20;
constexpr size_t kAlignment = 256;

void check_cuda(cudaError_t status, const char* what) {
  RS_CHECK(status == cudaSuccess, "CUDA error in {}: {}", what, cudaGetErrorString(status));
}
}  // namespace

bool cuda_device_available() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

std::unique_ptr<Backend> make_cuda_backend(const CudaBackendOptions& options) {
  if (options.profile_ops) return std::make_unique<ProfilingCudaBackend>(options);
  return std::make_unique<CudaBackend>(options);
}

std::unique_ptr<Backend> make_cuda_backend(int device) {
  CudaBackendOptions options;
  options.device = device;
  return make_cuda_backend(options);
}

CudaBackend::CudaBackend(const CudaBackendOptions& options) : options_(options) {
  int count = 0;
  cudaError_t status = cudaGetDeviceCount(&count);
  RS_CHECK(status == cudaSuccess && count > 0, "no CUDA device is available ({})",
           status == cudaSuccess ? "0 devices" : cudaGetErrorString(status));
  RS_CHECK(options.device >= 0 && options.device < count, "CUDA device {} does not exist ({} visible)", options.device,
           count);
  check_cuda(cudaSetDevice(options.device), "cudaSetDevice");
  check_cuda(cudaDeviceGetAttribute(&sm_count_, cudaDevAttrMultiProcessorCount, options.device), "SM count");
  for (auto& per_tiles : small_m_resident_per_sm_) per_tiles.fill(-1);
  cudaDeviceProp properties{};
  check_cuda(cudaGetDeviceProperties(&properties, options.device), "cudaGetDeviceProperties");
  const MoeDeviceInfo moe_device{properties.name, properties.major * 10 + properties.minor,
                                 properties.sharedMemPerBlockOptin};
  const MoeFp8ConfigChecks moe_checks{moe_device.max_shared_bytes, kernels::moe_fp8_config_supported};
  moe_fp8_configs_ = std::make_unique<MoeFp8ConfigSelector>(default_kernel_config_root(), moe_device, moe_checks,
                                                            kernels::default_moe_fp8_config);
  cudaStream_t stream;
  check_cuda(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  stream_ = stream;
  // Zeroed once; the small-M GEMMs leave them zeroed after every launch.
  const size_t counter_bytes = kernels::kLinearSplitCounters * sizeof(unsigned);
  check_cuda(cudaMalloc(&split_counters_, counter_bytes), "cudaMalloc (split counters)");
  persistent_.push_back(split_counters_);
  // On the backend's stream, finished before any kernel can read them (a plain cudaMemset runs
  // on the legacy stream, which the non-blocking stream does not wait for).
  check_cuda(cudaMemsetAsync(split_counters_, 0, counter_bytes, stream), "cudaMemsetAsync (split counters)");
  check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize (split counters)");
}

CudaBackend::~CudaBackend() {
  cudaSetDevice(options_.device);
  cudaStreamSynchronize(static_cast<cudaStream_t>(stream_));
  for (int64_t id = 0; id < static_cast<int64_t>(graphs_.size()); ++id) CudaBackend::release_step_graph(id);
  for (void* pointer : persistent_) cudaFree(pointer);
  for (const Chunk& chunk : chunks_) cudaFree(chunk.data);
  cudaStreamDestroy(static_cast<cudaStream_t>(stream_));
}

void CudaBackend::check(int status, const char* what) const { check_cuda(static_cast<cudaError_t>(status), what); }

std::optional<Backend::DeviceMemory> CudaBackend::device_memory() const {
  int previous = 0;
  check_cuda(cudaGetDevice(&previous), "cudaGetDevice");
  check_cuda(cudaSetDevice(options_.device), "cudaSetDevice");
  size_t free_bytes = 0, total_bytes = 0;
  const cudaError_t status = cudaMemGetInfo(&free_bytes, &total_bytes);
  cudaSetDevice(previous);
  check_cuda(status, "cudaMemGetInfo");
  return DeviceMemory{free_bytes, total_bytes};
}

Tensor CudaBackend::allocate_persistent_uninitialized(DType dtype, const Shape& shape) {
  for (int64_t extent : shape) RS_CHECK(extent >= 0, "negative extent in shape {}", shape_string(shape));
  size_t bytes = std::max<size_t>(1, static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype));
  void* pointer = nullptr;
  check_cuda(cudaMalloc(&pointer, bytes), "cudaMalloc (persistent)");
  persistent_.push_back(pointer);
  return Tensor{pointer, dtype, shape, device()};
}

Tensor CudaBackend::allocate_persistent(DType dtype, const Shape& shape) {
  Tensor tensor = allocate_persistent_uninitialized(dtype, shape);
  check_cuda(cudaMemsetAsync(tensor.data, 0, std::max<size_t>(1, tensor.bytes()), static_cast<cudaStream_t>(stream_)),
             "cudaMemset");
  return tensor;
}

void CudaBackend::begin_step() {
  chunk_index_ = 0;
  chunk_offset_ = 0;
}

Tensor CudaBackend::allocate_step(DType dtype, const Shape& shape) {
  for (int64_t extent : shape) RS_CHECK(extent >= 0, "negative extent in shape {}", shape_string(shape));
  size_t bytes = std::max<size_t>(1, static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype));
  bytes = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  while (chunk_index_ < chunks_.size() && chunk_offset_ + bytes > chunks_[chunk_index_].bytes) {
    ++chunk_index_;
    chunk_offset_ = 0;
  }
  if (chunk_index_ == chunks_.size()) {
    Chunk chunk;
    chunk.bytes = std::max(kChunkBytes, bytes);
    void* pointer = nullptr;
    check_cuda(cudaMalloc(&pointer, chunk.bytes), "cudaMalloc (step arena)");
    chunk.data = static_cast<std::byte*>(pointer);
    chunks_.push_back(chunk);
    chunk_offset_ = 0;
  }
  Tensor tensor{chunks_[chunk_index_].data + chunk_offset_, dtype, shape, device()};
  chunk_offset_ += bytes;
  if (options_.poison_step_allocations && (dtype == DType::F32 || dtype == DType::BF16)) fill(tensor, NAN);
  if (options_.poison_step_allocations && dtype == DType::F8_E4M3)  // 0x7f: e4m3fn NaN
    check_cuda(cudaMemsetAsync(tensor.data, 0x7f, tensor.bytes(), static_cast<cudaStream_t>(stream_)), "cudaMemset");
  return tensor;
}

DType CudaBackend::weight_dtype(WeightRole role) {
  const bool keep_f32 = role == WeightRole::RopeFrequencies || role == WeightRole::RouterBias;
  return keep_f32 ? DType::F32 : DType::BF16;
}

Tensor CudaBackend::upload_weight(const Tensor& host, WeightRole role) {
  return upload_persistent(host, weight_dtype(role));
}

Tensor CudaBackend::allocate_weight(const Shape& shape, WeightRole role) {
  return allocate_persistent_uninitialized(weight_dtype(role), shape);
}

// Every transfer goes through stream_ (a non-blocking stream does not order against the
// legacy default stream: a cudaMemcpy there could land before earlier work queued here).
void CudaBackend::copy_to_device(void* device_data, const void* host_data, size_t bytes) {
  check_cuda(cudaMemcpyAsync(device_data, host_data, bytes, cudaMemcpyHostToDevice, static_cast<cudaStream_t>(stream_)),
             "upload");
  check_cuda(cudaStreamSynchronize(static_cast<cudaStream_t>(stream_)), "upload");  // host buffers may die next
}

Tensor CudaBackend::upload_persistent(const Tensor& host, DType dtype) {
  Tensor copy = allocate_persistent_uninitialized(dtype, host.shape);
  const size_t count = static_cast<size_t>(host.numel());
  if (host.dtype == dtype) {  // the bytes as they are
    copy_to_device(copy.data, host.data, host.bytes());
    return copy;
  }
  RS_CHECK(dtype == DType::F32 || dtype == DType::BF16, "cannot upload {} as {}", dtype_name(host.dtype),
           dtype_name(dtype));
  std::vector<float> values(count);
  convert_to_f32(host.dtype, host.data, values.data(), count);
  if (dtype == DType::F32) {
    copy_to_device(copy.data, values.data(), count * sizeof(float));
  } else {
    std::vector<uint16_t> bf16(count);
    for (size_t i = 0; i < count; ++i) bf16[i] = f32_to_bf16(values[i]);
    copy_to_device(copy.data, bf16.data(), count * sizeof(uint16_t));
  }
  return copy;
}

Tensor CudaBackend::upload_step_ints(std::span<const int32_t> values) {
  Tensor tensor = allocate_step(DType::I32, {static_cast<int64_t>(values.size())});
  if (!values.empty())
    check_cuda(cudaMemcpyAsync(tensor.data, values.data(), values.size_bytes(), cudaMemcpyHostToDevice,
                               static_cast<cudaStream_t>(stream_)),
               "upload ints");
  // The host vector may die when the caller returns: finish the copy first.
  check_cuda(cudaStreamSynchronize(static_cast<cudaStream_t>(stream_)), "upload ints");
  return tensor;
}

std::vector<float> CudaBackend::download_f32(const Tensor& tensor) {
  const size_t count = static_cast<size_t>(tensor.numel());
  std::vector<std::byte> raw(tensor.bytes());
  check_cuda(cudaMemcpyAsync(raw.data(), tensor.data, raw.size(), cudaMemcpyDeviceToHost,
                             static_cast<cudaStream_t>(stream_)),
             "download");
  check_cuda(cudaStreamSynchronize(static_cast<cudaStream_t>(stream_)), "download");
  std::vector<float> host(count);
  if (tensor.dtype == DType::I32) {
    for (size_t i = 0; i < count; ++i) host[i] = static_cast<float>(reinterpret_cast<const int32_t*>(raw.data())[i]);
  } else {
    convert_to_f32(tensor.dtype, raw.data(), host.data(), count);
  }
  return host;
}

void CudaBackend::fill(const Tensor& tensor, float value) {
  RS_CHECK(tensor.dtype == DType::F32 || tensor.dtype == DType::BF16, "CUDA fill supports F32 and BF16, got {}",
           dtype_name(tensor.dtype));
  kernels::FillParams params{tensor.data,
                             tensor.dtype == DType::F32 ? kernels::ElementType::F32 : kernels::ElementType::BF16,
                             tensor.numel(), value};
  check(kernels::launch_fill(params, stream_), "fill");
}

void CudaBackend::fill_random(const Tensor& tensor, uint64_t seed, float scale) {
  RS_CHECK(tensor.dtype == DType::F32 || tensor.dtype == DType::BF16 || tensor.dtype == DType::F8_E4M3,
           "CUDA fill_random supports F32, BF16 and F8_E4M3, got {}", dtype_name(tensor.dtype));
  const kernels::ElementType type = tensor.dtype == DType::F32    ? kernels::ElementType::F32
                                    : tensor.dtype == DType::BF16 ? kernels::ElementType::BF16
                                                                  : kernels::ElementType::F8_E4M3;
  kernels::FillRandomParams params{tensor.data, type, tensor.numel(), seed, scale};
  check(kernels::launch_fill_random(params, stream_), "fill_random");
}

}  // namespace rackserve
