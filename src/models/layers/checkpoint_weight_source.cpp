#include "models/layers/checkpoint_weight_source.h"

#include <cstring>

#include "core/error.h"

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

void CheckpointWeightSource::append_scales(const std::string& module, const LinearScheme& scheme, int64_t rows,
                                           int64_t cols, std::vector<float>& scales) const {
  Shape shape = scheme.format == WeightFormat::Fp8Block
                    ? Shape{ceil_div(rows, scheme.block_out), ceil_div(cols, scheme.block_in)}
                    : Shape{rows, 1};
  const std::string name = module + "." + (scheme.format == WeightFormat::Fp8Block ? scheme.scale_name : "weight_scale");
  const TensorRecord& record = store_.get(name);
  RS_CHECK(record.shape == shape, "tensor {} has shape {}, {} implies {}", name, shape_string(record.shape),
           scheme.describe(), shape_string(shape));
  RS_CHECK(record.dtype == DType::F32 || record.dtype == DType::BF16 || record.dtype == DType::F16,
           "tensor {} has dtype {}; FP8 scales must be a float dtype", name, dtype_name(record.dtype));
  const size_t at = scales.size();
  scales.resize(at + static_cast<size_t>(shape_numel(record.shape)));
  convert_to_f32(record.dtype, record.data, scales.data() + at, static_cast<size_t>(shape_numel(record.shape)));
}

bool CheckpointWeightSource::is_fp8_weight(const std::string& name) const {
  return name.ends_with(".weight") && store_.get(name).dtype == DType::F8_E4M3;
}

void CheckpointWeightSource::read_f32(const std::string& name, const Shape& shape, float* out) const {
  if (!is_fp8_weight(name) || shape.size() != 2) {
    const TensorRecord& record = checked(name, shape);
    convert_to_f32(record.dtype, record.data, out, static_cast<size_t>(shape_numel(shape)));
    return;
  }
  const TensorRecord& record = store_.get(name);
  const std::string module = name.substr(0, name.size() - 7);
  RS_CHECK(record.shape == shape, "tensor {} has shape {}, the config implies {}", name, shape_string(record.shape),
           shape_string(shape));
  RS_CHECK(quant_.linear(module).format != WeightFormat::Dense, "tensor {} is F8_E4M3, but {} keeps it unquantized",
           name, quant_.describe());
  const LinearScheme& scheme = fp8_scheme(module);
  std::vector<float> scales;
  append_scales(module, scheme, shape[0], shape[1], scales);
  const int64_t rows = shape[0], cols = shape[1];
  convert_to_f32(DType::F8_E4M3, record.data, out, static_cast<size_t>(rows * cols));
  const int64_t scale_cols = scheme.format == WeightFormat::Fp8Block ? ceil_div(cols, scheme.block_in) : 1;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      out[r * cols + c] *= scheme.format == WeightFormat::Fp8Block
                               ? scales[(r / scheme.block_out) * scale_cols + c / scheme.block_in]
                               : scales[r];
}

Tensor CheckpointWeightSource::load(const std::string& name, const Shape& shape, WeightRole role) {
  if (!is_fp8_weight(name)) return backend_.upload_weight(checked(name, shape).view(), role);
  std::vector<float> staging(static_cast<size_t>(shape_numel(shape)));
  read_f32(name, shape, staging.data());
  return backend_.upload_weight(Tensor{staging.data(), DType::F32, shape, Device{}}, role);
}

Tensor CheckpointWeightSource::load_row_concat(const std::vector<std::string>& names, const std::vector<int64_t>& rows,
                                               int64_t cols, WeightRole role) {
  RS_CHECK(names.size() == rows.size(), "load_row_concat: {} names for {} row counts", names.size(), rows.size());
  int64_t total_rows = 0;
  for (int64_t r : rows) total_rows += r;
  std::vector<float> staging(static_cast<size_t>(total_rows * cols));
  int64_t offset = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    read_f32(names[i], {rows[i], cols}, staging.data() + offset * cols);
    offset += rows[i];
  }
  Tensor host{staging.data(), DType::F32, {total_rows, cols}, Device{}};
  return backend_.upload_weight(host, role);
}

LinearWeight CheckpointWeightSource::load_linear(const LinearRequest& request) {
  RS_CHECK(!request.modules.empty(), "load_linear: no modules");
  const WeightFormat format = quant_.linear(request.modules.front()).format;
  for (const std::string& module : request.modules)
    RS_CHECK(quant_.linear(module).format == format, "{} and {} are fused into one weight but stored as {} and {}",
             request.modules.front(), module, weight_format_name(format),
             weight_format_name(quant_.linear(module).format));
  if (format == WeightFormat::Dense || fp8_weights_ == Fp8Weights::Dequantize) return WeightSource::load_linear(request);

  const LinearScheme& scheme = fp8_scheme(request.modules.front());
  const bool block = scheme.format == WeightFormat::Fp8Block;
  const size_t pieces = request.rows.size();
  RS_CHECK(request.modules.size() == pieces * request.matrices, "load_linear: {} modules for {} matrices of {} pieces",
           request.modules.size(), request.matrices, pieces);
  // Activations are quantized in groups of block_in columns; like DeepSeek's act_quant (and
  // vLLM's per-token-group quantization) the width must be a whole number of groups.
  RS_CHECK(!block || request.cols % scheme.block_in == 0,
           "{}: input width {} is not a multiple of the FP8 block width {}", request.modules.front(), request.cols,
           scheme.block_in);
  int64_t per_matrix = 0;
  for (size_t i = 0; i < pieces; ++i) {
    RS_CHECK(!block || i + 1 == pieces || request.rows[i] % scheme.block_out == 0,
             "{}: {} rows do not fill whole FP8 blocks of {} rows, so it cannot be fused with {}",
             request.modules[i], request.rows[i], scheme.block_out, request.modules[i + 1]);
    per_matrix += request.rows[i];
  }
  std::vector<uint8_t> values(static_cast<size_t>(request.matrices * per_matrix * request.cols));
  std::vector<float> scales;
  size_t offset = 0;
  for (size_t i = 0; i < request.modules.size(); ++i) {
    const std::string& module = request.modules[i];
    const int64_t rows = request.rows[i % pieces];
    const TensorRecord& record = store_.get(module + ".weight");
    RS_CHECK(record.shape == Shape({rows, request.cols}), "tensor {}.weight has shape {}, the config implies {}",
             module, shape_string(record.shape), shape_string({rows, request.cols}));
    RS_CHECK(record.dtype == DType::F8_E4M3, "tensor {}.weight has dtype {}, but {} says it is FP8", module,
             dtype_name(record.dtype), quant_.describe());
    std::memcpy(values.data() + offset, record.data, static_cast<size_t>(shape_numel(record.shape)));
    offset += static_cast<size_t>(shape_numel(record.shape));
    append_scales(module, scheme, rows, request.cols, scales);
  }

  QuantizedWeight host;
  host.scaling = block ? Fp8Scaling::Block : Fp8Scaling::Channel;
  host.block_out = block ? scheme.block_out : 0;
  host.block_in = block ? scheme.block_in : 0;
  Shape values_shape{per_matrix, request.cols};
  Shape scales_shape = block ? Shape{ceil_div(per_matrix, scheme.block_out), request.cols / scheme.block_in}
                             : Shape{per_matrix};
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

}  // namespace rackserve
