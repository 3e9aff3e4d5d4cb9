#include "core/tensor.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace rackserve {

int64_t shape_numel(const Shape& shape) {
  int64_t count = 1;
  for (int64_t extent : shape) count *= extent;
  return count;
}

std::string shape_string(const Shape& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

Tensor Tensor::reshaped(Shape new_shape) const {
  RS_CHECK(shape_numel(new_shape) == numel(), "cannot reshape {} to {}", shape_string(shape),
           shape_string(new_shape));
  Tensor view = *this;
  view.shape = std::move(new_shape);
  return view;
}

Tensor Tensor::rows(int64_t begin, int64_t end) const {
  RS_CHECK(rank() >= 1 && 0 <= begin && begin <= end && end <= shape[0], "rows [{}, {}) out of {}", begin, end,
           shape_string(shape));
  Tensor view = *this;
  size_t row_bytes = bytes() / (shape[0] == 0 ? 1 : shape[0]);
  view.data = static_cast<char*>(data) + begin * row_bytes;
  view.shape[0] = end - begin;
  return view;
}

}  // namespace rackserve
