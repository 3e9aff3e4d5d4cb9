// Tensor: a non-owning, contiguous, row-major view (pointer + dtype + shape) of memory
// that lives on the host or on a device. Whoever allocated the memory owns it; a
// Tensor never frees anything and is cheap to copy.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"

namespace rackserve {

enum class DeviceKind : uint8_t { Host, Cuda };

struct Device {
  DeviceKind kind = DeviceKind::Host;
  int index = 0;
  bool operator==(const Device&) const = default;
};

using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& shape);
std::string shape_string(const Shape& shape);  // "[2, 3]"

struct Tensor {
  void* data = nullptr;
  DType dtype = DType::F32;
  Shape shape;
  Device device;

  int64_t numel() const { return shape_numel(shape); }
  size_t bytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  int rank() const { return static_cast<int>(shape.size()); }
  int64_t dim(int axis) const { return shape.at(axis < 0 ? axis + rank() : axis); }
  bool empty() const { return data == nullptr; }

  template <typename T>
  T* as() const { return static_cast<T*>(data); }

  // The same memory seen with another shape of equal element count.
  Tensor reshaped(Shape new_shape) const;
  // Rows [begin, end) along the first axis (contiguous, so still a plain view).
  Tensor rows(int64_t begin, int64_t end) const;
};

}  // namespace rackserve
