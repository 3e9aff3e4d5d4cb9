#include "models/layers/int4_checkpoint.h"

#include <cstring>

#include "core/error.h"

namespace rackserve {

Int4Module::Int4Module(const WeightStore& store, const std::string& module, const LinearScheme& scheme, int64_t rows,
                       int64_t cols)
    : module_(module), rows_(rows), cols_(cols), group_(scheme.group_size) {
  RS_CHECK(scheme.format == WeightFormat::Int4Group && group_ > 0 && group_ % 8 == 0 && cols % group_ == 0,
           "{}: an INT4 module of {} inputs needs groups of a multiple of 8 dividing them, got {}", module, cols,
           scheme.describe());
  packed_ = &store.get(module + ".weight_packed");
  scales_ = &store.get(module + ".weight_scale");
  RS_CHECK(packed_->dtype == DType::I32 && packed_->shape == Shape({rows, cols / 8}),
           "tensor {}.weight_packed is {} {}, {} implies I32 [{}, {}]", module, dtype_name(packed_->dtype),
           shape_string(packed_->shape), scheme.describe(), rows, cols / 8);
  RS_CHECK((scales_->dtype == DType::BF16 || scales_->dtype == DType::F16 || scales_->dtype == DType::F32) &&
               scales_->shape == Shape({rows, cols / group_}),
           "tensor {}.weight_scale is {} {}, {} implies a float [{}, {}]", module, dtype_name(scales_->dtype),
           shape_string(scales_->shape), scheme.describe(), rows, cols / group_);
}

float Int4Module::scale(int64_t row, int64_t group_index) const {
  float value = 0.0f;
  const size_t element = dtype_size(scales_->dtype);
  convert_to_f32(scales_->dtype, scales_->data + static_cast<size_t>(row * (cols_ / group_) + group_index) * element,
                 &value, 1);
  return value;
}

void Int4Module::dequantize(const TensorSlice& slice, float* out) const {
  const auto* words = reinterpret_cast<const uint32_t*>(packed_->data);
  for (int64_t r = 0; r < slice.rows; ++r) {
    const int64_t row = slice.row_begin + r;
    for (int64_t c = 0; c < slice.cols; ++c) {
      const int64_t col = slice.col_begin + c;
      const uint32_t word = words[row * (cols_ / 8) + col / 8];
      const int code = static_cast<int>((word >> (4 * (col % 8))) & 0xfu);
      out[r * slice.cols + c] = static_cast<float>(code - 8) * scale(row, col / group_);
    }
  }
}

void Int4Module::append_packed(const TensorSlice& slice, std::vector<int32_t>& packed, std::vector<float>& scales) const {
  RS_CHECK(slice.col_begin % group_ == 0 && slice.cols % group_ == 0,
           "{}: columns [{}, {}) of this rank cut a group of {} INT4 weights; choose a tensor-parallel size that "
           "keeps whole groups",
           module_, slice.col_begin, slice.col_begin + slice.cols, group_);
  const auto* words = reinterpret_cast<const int32_t*>(packed_->data);
  for (int64_t r = 0; r < slice.rows; ++r) {
    const int64_t row = slice.row_begin + r;
    const int32_t* first = words + row * (cols_ / 8) + slice.col_begin / 8;
    packed.insert(packed.end(), first, first + slice.cols / 8);
    for (int64_t g = 0; g < slice.cols / group_; ++g) scales.push_back(scale(row, slice.col_begin / group_ + g));
  }
}

}  // namespace rackserve
