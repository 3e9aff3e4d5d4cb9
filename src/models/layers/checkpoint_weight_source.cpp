#include "models/layers/checkpoint_weight_source.h"

#include <cstring>

#include "core/error.h"
#include "models/layers/int4_checkpoint.h"
#include "models/layers/nvfp4_checkpoint.h"

namespace rackserve {

namespace {
bool is_fp8_format(WeightFormat format) { return format == WeightFormat::Fp8Block || format == WeightFormat::Fp8Channel; }
int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
}  // namespace

const TensorRecord& CheckpointWeightSource::checked(const std::string& name, const Shape& shape) const {
  const TensorRecord& record = store_.get(name);
  RS_CHECK(record.shape == shape, "tensor {} in {} has shape {}, the config implies {}", name, record.file.string(),
           shape_string(record.shape), shape_string(shape));
  RS_CHECK(record.dtype == DType::F32 || record.dtype == DType::BF16 || record.dtype == DType::F16,
           "tensor {} has dtype {}, but the quantization config ({}) does not quantize it", name,
           dtype_name(record.dtype), quant_.describe());
  return record;
}

const LinearScheme& CheckpointWeightSource::fp8_scheme(const std::string& module) const {
  const LinearScheme& scheme = quant_.linear(module);
  RS_CHECK(is_fp8_format(scheme.format), "{}: {} weights are not supported by the loader yet (fp8 block, fp8 channel)",
           module, scheme.describe());
  RS_CHECK(!scheme.static_input_scale, "{}: static activation scales (input_scale) are not supported yet", module);
  return scheme;
}

std::vector<float> CheckpointWeightSource::read_scales(const std::string& module, const LinearScheme& scheme,
                                                       int64_t rows, int64_t cols) const {
  Shape shape = scheme.format == WeightFormat::Fp8Block
                    ? Shape{ceil_div(rows, scheme.block_out), ceil_div(cols, scheme.block_in)}
                    : Shape{rows, 1};
  const std::string name = module + "." + (scheme.format == WeightFormat::Fp8Block ? scheme.scale_name : "weight_scale");
  const TensorRecord& record = store_.get(name);
  RS_CHECK(record.shape == shape, "tensor {} has shape {}, {} implies {}", name, shape_string(record.shape),
           scheme.describe(), shape_string(shape));
  RS_CHECK(record.dtype == DType::F32 || record.dtype == DType::BF16 || record.dtype == DType::F16,
           "tensor {} has dtype {}; FP8 scales must be a float dtype", name, dtype_name(record.dtype));
  std::vector<float> scales(static_cast<size_t>(shape_numel(record.shape)));
  convert_to_f32(record.dtype, record.data, scales.data(), scales.size());
  return scales;
}

bool CheckpointWeightSource::is_fp8_weight(const std::string& name) const {
  return name.ends_with(".weight") && !is_int4_weight(name) && store_.get(name).dtype == DType::F8_E4M3;
}

bool CheckpointWeightSource::is_nvfp4_weight(const std::string& name) const {
  return name.ends_with(".weight") && quant_.linear(name.substr(0, name.size() - 7)).format == WeightFormat::Nvfp4;
}

bool CheckpointWeightSource::is_int4_weight(const std::string& name) const {
  return name.ends_with(".weight") &&
         quant_.linear(name.substr(0, name.size() - 7)).format == WeightFormat::Int4Group &&
         !store_.contains(name);
}

namespace {
// Converts the `slice` of a row-major [rows, full_cols] tensor of `dtype` at `data` to f32.
void convert_slice(DType dtype, const void* data, int64_t full_cols, const TensorSlice& slice, float* out) {
  const size_t element = dtype_size(dtype);
  for (int64_t r = 0; r < slice.rows; ++r)
    convert_to_f32(dtype,
                   static_cast<const std::byte*>(data) +
                       static_cast<size_t>((slice.row_begin + r) * full_cols + slice.col_begin) * element,
                   out + r * slice.cols, static_cast<size_t>(slice.cols));
}
}  // namespace

void CheckpointWeightSource::read_f32(const std::string& name, const Shape& shape, const TensorSlice& slice,
                                      float* out) const {
  const bool whole = slice.row_begin == 0 && slice.col_begin == 0 && slice.rows * slice.cols == shape_numel(shape);
  if (is_int4_weight(name)) {
    RS_CHECK(shape.size() == 2, "{}: an INT4 weight must be a matrix, not {}", name, shape_string(shape));
    const std::string module = name.substr(0, name.size() - 7);
    Int4Module(store_, module, quant_.linear(module), shape[0], shape[1]).dequantize(slice, out);
    return;
  }
  if (is_nvfp4_weight(name)) {
    RS_CHECK(shape.size() == 2, "{}: an NVFP4 weight must be a matrix, not {}", name, shape_string(shape));
    Nvfp4Module(store_, name.substr(0, name.size() - 7), shape[0], shape[1]).dequantize(slice, out);
    return;
  }
  if (!is_fp8_weight(name) || shape.size() != 2) {
    const TensorRecord& record = checked(name, shape);
    if (whole) {
      convert_to_f32(record.dtype, record.data, out, static_cast<size_t>(shape_numel(shape)));
      return;
    }
    RS_CHECK(shape.size() <= 2, "{}: only matrices and vectors are split for tensor parallelism, not {}", name,
             shape_string(shape));
    convert_slice(record.dtype, record.data, shape.size() == 2 ? shape[1] : 1, slice, out);
    return;
  }
  const TensorRecord& record = store_.get(name);
  const std::string module = name.substr(0, name.size() - 7);
  RS_CHECK(record.shape == shape, "tensor {} has shape {}, the config implies {}", name, shape_string(record.shape),
           shape_string(shape));
  RS_CHECK(quant_.linear(module).format != WeightFormat::Dense, "tensor {} is F8_E4M3, but {} keeps it unquantized",
           name, quant_.describe());
  const LinearScheme& scheme = fp8_scheme(module);
  const std::vector<float> scales = read_scales(module, scheme, shape[0], shape[1]);
  const int64_t cols = shape[1];
  convert_slice(DType::F8_E4M3, record.data, cols, slice, out);
  // Each value takes the scale of its position in the whole tensor, so a slice needs no
  // block alignment here (the values are expanded to dense weights).
  const int64_t scale_cols = scheme.format == WeightFormat::Fp8Block ? ceil_div(cols, scheme.block_in) : 1;
  for (int64_t r = 0; r < slice.rows; ++r) {
    const int64_t row = slice.row_begin + r;
    for (int64_t c = 0; c < slice.cols; ++c) {
      const int64_t col = slice.col_begin + c;
      out[r * slice.cols + c] *= scheme.format == WeightFormat::Fp8Block
                                     ? scales[static_cast<size_t>((row / scheme.block_out) * scale_cols +
                                                                  col / scheme.block_in)]
                                     : scales[static_cast<size_t>(row)];
    }
  }
}

LinearRequest CheckpointWeightSource::in_checkpoint(const LinearRequest& request) const {
  LinearRequest prefixed = request;
  for (std::string& module : prefixed.modules) module = prefix_ + module;
  return prefixed;
}

Tensor CheckpointWeightSource::load(const std::string& name, const Shape& shape, WeightRole role,
                                    const TensorSharding& sharding) {
  return load_prefixed(prefix_ + name, shape, role, sharding);
}

Tensor CheckpointWeightSource::load_prefixed(const std::string& name, const Shape& shape, WeightRole role,
                                             const TensorSharding& sharding) {
  const bool split = sharding.split != TpSplit::Replicated && shard().world > 1;
  if (!split && !sharding.append_zero_row && !is_fp8_weight(name) && !is_int4_weight(name) && !is_nvfp4_weight(name))
    return backend_.upload_weight(checked(name, shape).view(), role);
  const bool vector = shape.size() == 1;  // a column split of a vector: a bias or norm of split heads
  RS_CHECK(shape.size() == 2 || !split || (vector && sharding.split == TpSplit::Column),
           "{}: only matrices and column-split vectors are split for tensor parallelism, not {}", name,
           shape_string(shape));
  const int64_t rows = shape.empty() ? 1 : shape[0];
  const int64_t cols = rows == 0 ? 0 : shape_numel(shape) / rows;
  const TensorSlice slice = shard_slice(name, rows, cols, sharding.split, shard());
  const int64_t padded_rows = slice.rows + (sharding.append_zero_row ? 1 : 0);
  std::vector<float> staging(static_cast<size_t>(padded_rows * slice.cols), 0.0f);
  read_f32(name, shape, slice, staging.data());
  Shape local = !split && !sharding.append_zero_row ? shape
                : vector                           ? Shape{padded_rows}
                                                   : Shape{padded_rows, slice.cols};
  return backend_.upload_weight(Tensor{staging.data(), DType::F32, local, Device{}}, role);
}

Tensor CheckpointWeightSource::load_row_concat(const std::vector<std::string>& names, const std::vector<int64_t>& rows,
                                               int64_t cols, WeightRole role, TpSplit split) {
  std::vector<std::string> prefixed;
  for (const std::string& name : names) prefixed.push_back(prefix_ + name);
  return load_row_concat_prefixed(prefixed, rows, cols, role, split);
}

Tensor CheckpointWeightSource::load_row_concat_prefixed(const std::vector<std::string>& names,
                                                        const std::vector<int64_t>& rows, int64_t cols, WeightRole role,
                                                        TpSplit split) {
  RS_CHECK(names.size() == rows.size(), "load_row_concat: {} names for {} row counts", names.size(), rows.size());
  std::vector<TensorSlice> slices;
  int64_t total_rows = 0, local_cols = cols;
  for (size_t i = 0; i < names.size(); ++i) {
    slices.push_back(shard_slice(names[i], rows[i], cols, split, shard()));
    total_rows += slices.back().rows;
    local_cols = slices.back().cols;
  }
  std::vector<float> staging(static_cast<size_t>(total_rows * local_cols));
  int64_t offset = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    read_f32(names[i], {rows[i], cols}, slices[i], staging.data() + offset * local_cols);
    offset += slices[i].rows;
  }
  Tensor host{staging.data(), DType::F32, {total_rows, local_cols}, Device{}};
  return backend_.upload_weight(host, role);
}

bool CheckpointWeightSource::can_stack_linear(const LinearRequest& unprefixed) const {
  const LinearRequest request = in_checkpoint(unprefixed);
  std::vector<LinearScheme> schemes;
  for (const std::string& module : request.modules) {
    schemes.push_back(quant_.linear(module));
    if (fp8_weights_ == Fp8Weights::Dequantize && schemes.back().format != schemes.front().format) return false;
  }
  if (fp8_weights_ == Fp8Weights::Dequantize) return !schemes.empty();
  return pieces_stack(request, schemes, shard());
}

LinearWeight CheckpointWeightSource::load_linear(const LinearRequest& unprefixed) {
  RS_CHECK(!unprefixed.modules.empty(), "load_linear: no modules");
  // Quantization and tensors are looked up under the checkpoint's names; the dense default
  // (WeightSource::load_linear) goes back through load / load_row_concat, which add the prefix.
  const LinearRequest request = in_checkpoint(unprefixed);
  const WeightFormat format = quant_.linear(request.modules.front()).format;
  for (const std::string& module : request.modules)
    RS_CHECK(quant_.linear(module).format == format, "{} and {} are fused into one weight but stored as {} and {}",
             request.modules.front(), module, weight_format_name(format),
             weight_format_name(quant_.linear(module).format));
  const bool experts = request.role == WeightRole::ExpertGateUp || request.role == WeightRole::ExpertDown;
  if (format == WeightFormat::Int4Group || format == WeightFormat::Nvfp4) {
    if (!experts) return WeightSource::load_linear(unprefixed);  // dequantized to dense (read_f32)
    return format == WeightFormat::Int4Group ? load_int4_experts(request, quant_.linear(request.modules.front()))
                                             : load_fp4_experts(request);
  }
  if (format == WeightFormat::Dense || fp8_weights_ == Fp8Weights::Dequantize)
    return WeightSource::load_linear(unprefixed);

  const LinearScheme& scheme = fp8_scheme(request.modules.front());
  const bool block = scheme.format == WeightFormat::Fp8Block;
  const size_t pieces = request.rows.size();
  const std::vector<TensorSlice> slices = fp8_linear_slices(request, scheme, shard());  // the same for every matrix
  int64_t per_matrix = 0;
  for (const TensorSlice& slice : slices) per_matrix += slice.rows;
  const int64_t cols = slices.front().cols;
  const int64_t scale_cols = block ? cols / scheme.block_in : 1;
  std::vector<uint8_t> values(static_cast<size_t>(request.matrices * per_matrix * cols));
  std::vector<float> scales;
  size_t offset = 0;
  for (size_t i = 0; i < request.modules.size(); ++i) {
    const std::string& module = request.modules[i];
    const int64_t rows = request.rows[i % pieces];
    const TensorSlice& slice = slices[i % pieces];
    const TensorRecord& record = store_.get(module + ".weight");
    RS_CHECK(record.shape == Shape({rows, request.cols}), "tensor {}.weight has shape {}, the config implies {}",
             module, shape_string(record.shape), shape_string({rows, request.cols}));
    RS_CHECK(record.dtype == DType::F8_E4M3, "tensor {}.weight has dtype {}, but {} says it is FP8", module,
             dtype_name(record.dtype), quant_.describe());
    for (int64_t r = 0; r < slice.rows; ++r)  // only this rank's bytes of the mapped file are read
      std::memcpy(values.data() + offset + static_cast<size_t>(r * cols),
                  record.data + static_cast<size_t>((slice.row_begin + r) * request.cols + slice.col_begin),
                  static_cast<size_t>(cols));
    offset += static_cast<size_t>(slice.rows * cols);
    const std::vector<float> all = read_scales(module, scheme, rows, request.cols);
    if (block) {
      const int64_t all_cols = request.cols / scheme.block_in;
      const int64_t first_row = slice.row_begin / scheme.block_out, first_col = slice.col_begin / scheme.block_in;
      for (int64_t r = 0; r < ceil_div(slice.rows, scheme.block_out); ++r)
        for (int64_t c = 0; c < scale_cols; ++c)
          scales.push_back(all[static_cast<size_t>((first_row + r) * all_cols + first_col + c)]);
    } else {
      scales.insert(scales.end(), all.begin() + slice.row_begin, all.begin() + slice.row_begin + slice.rows);
    }
  }

  QuantizedWeight host;
  host.scaling = block ? Fp8Scaling::Block : Fp8Scaling::Channel;
  host.block_out = block ? scheme.block_out : 0;
  host.block_in = block ? scheme.block_in : 0;
  Shape values_shape{per_matrix, cols};
  Shape scales_shape = block ? Shape{ceil_div(per_matrix, scheme.block_out), scale_cols} : Shape{per_matrix};
  if (request.matrices > 1) {
    values_shape.insert(values_shape.begin(), request.matrices);
    scales_shape.insert(scales_shape.begin(), request.matrices);
  }
  host.values = Tensor{values.data(), DType::F8_E4M3, values_shape, Device{}};
  host.scales = Tensor{scales.data(), DType::F32, scales_shape, Device{}};
  RS_CHECK(static_cast<int64_t>(scales.size()) == shape_numel(scales_shape), "{}: {} scales for shape {}",
           request.modules.front(), scales.size(), shape_string(scales_shape));
  LinearWeight weight;
  weight.fp8 = backend_.upload_quantized_weight(host);
  return weight;
}

LinearWeight CheckpointWeightSource::load_int4_experts(const LinearRequest& request, const LinearScheme& scheme) {
  const size_t pieces = request.rows.size();
  std::vector<int32_t> packed;
  std::vector<float> scales;
  int64_t per_matrix = 0, cols = request.cols;
  for (size_t i = 0; i < request.modules.size(); ++i) {
    const std::string& module = request.modules[i];
    RS_CHECK(quant_.linear(module).group_size == scheme.group_size, "{} and {} are stacked but have INT4 groups of {} and {}",
             request.modules.front(), module, scheme.group_size, quant_.linear(module).group_size);
    const int64_t rows = request.rows[i % pieces];
    const TensorSlice slice = shard_slice(module, rows, request.cols, request.split, shard());
    Int4Module(store_, module, scheme, rows, request.cols).append_packed(slice, packed, scales);
    if (i < pieces) per_matrix += slice.rows;
    cols = slice.cols;
  }
  const Shape packed_shape{request.matrices, per_matrix, cols / 8};
  const Shape scales_shape{request.matrices, per_matrix, cols / scheme.group_size};
  RS_CHECK(static_cast<int64_t>(packed.size()) == shape_numel(packed_shape) &&
               static_cast<int64_t>(scales.size()) == shape_numel(scales_shape),
           "{}: {} packed words and {} scales for {} experts of [{}, {}]", request.modules.front(), packed.size(),
           scales.size(), request.matrices, per_matrix, cols);
  Int4Weight weight;
  weight.packed = backend_.upload_persistent(Tensor{packed.data(), DType::I32, packed_shape, Device{}}, DType::I32);
  weight.scales = backend_.upload_persistent(Tensor{scales.data(), DType::F32, scales_shape, Device{}},
                                             backend_.activation_dtype());
  weight.group = scheme.group_size;
  LinearWeight linear;
  linear.int4 = weight;
  return linear;
}

LinearWeight CheckpointWeightSource::load_fp4_experts(const LinearRequest& request) {
  const size_t pieces = request.rows.size();
  std::vector<uint8_t> packed, block_scales;
  std::vector<float> row_scales;
  int64_t per_matrix = 0, cols = request.cols;
  for (size_t i = 0; i < request.modules.size(); ++i) {
    const int64_t rows = request.rows[i % pieces];
    const TensorSlice slice = shard_slice(request.modules[i], rows, request.cols, request.split, shard());
    Nvfp4Module(store_, request.modules[i], rows, request.cols).append_packed(slice, packed, block_scales, row_scales);
    if (i < pieces) per_matrix += slice.rows;
    cols = slice.cols;
  }
  const Shape packed_shape{request.matrices, per_matrix, cols / 2};
  const Shape block_shape{request.matrices, per_matrix, cols / Fp4Weight::kGroup};
  const Shape row_shape{request.matrices, per_matrix};
  RS_CHECK(static_cast<int64_t>(packed.size()) == shape_numel(packed_shape) &&
               static_cast<int64_t>(block_scales.size()) == shape_numel(block_shape) &&
               static_cast<int64_t>(row_scales.size()) == shape_numel(row_shape),
           "{}: {} packed bytes, {} block scales and {} row scales for {} experts of [{}, {}]", request.modules.front(),
           packed.size(), block_scales.size(), row_scales.size(), request.matrices, per_matrix, cols);
  Fp4Weight weight;
  weight.packed = backend_.upload_persistent(Tensor{packed.data(), DType::U8, packed_shape, Device{}}, DType::U8);
  weight.block_scales =
      backend_.upload_persistent(Tensor{block_scales.data(), DType::F8_E4M3, block_shape, Device{}}, DType::F8_E4M3);
  weight.row_scales = backend_.upload_persistent(Tensor{row_scales.data(), DType::F32, row_shape, Device{}}, DType::F32);
  LinearWeight linear;
  linear.fp4 = weight;
  return linear;
}

}  // namespace rackserve
