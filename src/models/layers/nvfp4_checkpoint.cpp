#include "models/layers/nvfp4_checkpoint.h"

#include "core/dtype.h"
#include "core/error.h"

namespace rackserve {

Nvfp4Module::Nvfp4Module(const WeightStore& store, const std::string& module, int64_t rows, int64_t cols)
    : module_(module), rows_(rows), cols_(cols) {
  RS_CHECK(cols % kGroup == 0, "{}: an NVFP4 module of {} inputs: they must be a multiple of {}", module, cols, kGroup);
  packed_ = &store.get(module + ".weight");
  block_scales_ = &store.get(module + ".weight_scale");
  RS_CHECK(packed_->dtype == DType::U8 && packed_->shape == Shape({rows, cols / 2}),
           "tensor {}.weight is {} {}, NVFP4 [{}, {}] implies U8 [{}, {}]", module, dtype_name(packed_->dtype),
           shape_string(packed_->shape), rows, cols, rows, cols / 2);
  RS_CHECK(block_scales_->dtype == DType::F8_E4M3 && block_scales_->shape == Shape({rows, cols / kGroup}),
           "tensor {}.weight_scale is {} {}, NVFP4 implies F8_E4M3 [{}, {}]", module,
           dtype_name(block_scales_->dtype), shape_string(block_scales_->shape), rows, cols / kGroup);
  const TensorRecord& global = store.get(module + ".weight_scale_2");
  RS_CHECK(global.dtype == DType::F32 && shape_numel(global.shape) == 1,
           "tensor {}.weight_scale_2 is {} {}, NVFP4 implies one F32", module, dtype_name(global.dtype),
           shape_string(global.shape));
  convert_to_f32(DType::F32, global.data, &global_scale_, 1);
}

void Nvfp4Module::dequantize(const TensorSlice& slice, float* out) const {
  const auto* bytes = reinterpret_cast<const uint8_t*>(packed_->data);
  const auto* scales = reinterpret_cast<const uint8_t*>(block_scales_->data);
  for (int64_t r = 0; r < slice.rows; ++r) {
    const int64_t row = slice.row_begin + r;
    for (int64_t c = 0; c < slice.cols; ++c) {
      const int64_t col = slice.col_begin + c;
      const uint8_t pair = bytes[row * (cols_ / 2) + col / 2];
      const uint8_t code = col % 2 == 0 ? pair & 0xfu : pair >> 4;
      float block = 0.0f;
      convert_to_f32(DType::F8_E4M3, &scales[row * (cols_ / kGroup) + col / kGroup], &block, 1);
      out[r * slice.cols + c] = e2m1_to_f32(code) * block * global_scale_;
    }
  }
}

void Nvfp4Module::append_packed(const TensorSlice& slice, std::vector<uint8_t>& packed,
                                std::vector<uint8_t>& block_scales, std::vector<float>& row_scales) const {
  RS_CHECK(slice.col_begin % kGroup == 0 && slice.cols % kGroup == 0,
           "{}: columns [{}, {}) of this rank cut a block of {} NVFP4 weights; choose a tensor-parallel size that "
           "keeps whole blocks",
           module_, slice.col_begin, slice.col_begin + slice.cols, kGroup);
  const auto* bytes = reinterpret_cast<const uint8_t*>(packed_->data);
  const auto* scales = reinterpret_cast<const uint8_t*>(block_scales_->data);
  for (int64_t r = 0; r < slice.rows; ++r) {
    const int64_t row = slice.row_begin + r;
    const uint8_t* first = bytes + row * (cols_ / 2) + slice.col_begin / 2;
    packed.insert(packed.end(), first, first + slice.cols / 2);
    const uint8_t* first_scale = scales + row * (cols_ / kGroup) + slice.col_begin / kGroup;
    block_scales.insert(block_scales.end(), first_scale, first_scale + slice.cols / kGroup);
    row_scales.push_back(global_scale_);
  }
}

}  // namespace rackserve
