#include "models/layers/checkpoint_weight_source.h"

#include "core/error.h"

namespace rackserve {

const TensorRecord& CheckpointWeightSource::checked(const std::string& name, const Shape& shape) const {
  const TensorRecord& record = store_.get(name);
  RS_CHECK(record.shape == shape, "tensor {} in {} has shape {}, the config implies {}", name, record.file.string(),
           shape_string(record.shape), shape_string(shape));
  RS_CHECK(record.dtype == DType::F32 || record.dtype == DType::BF16 || record.dtype == DType::F16,
           "tensor {} has dtype {}; quantized checkpoints are not supported by this loader yet", name,
           dtype_name(record.dtype));
  return record;
}

Tensor CheckpointWeightSource::load(const std::string& name, const Shape& shape, WeightRole role) {
  return backend_.upload_weight(checked(name, shape).view(), role);
}

Tensor CheckpointWeightSource::load_row_concat(const std::vector<std::string>& names, const std::vector<int64_t>& rows,
                                               int64_t cols, WeightRole role) {
  RS_CHECK(names.size() == rows.size(), "load_row_concat: {} names for {} row counts", names.size(), rows.size());
  int64_t total_rows = 0;
  for (int64_t r : rows) total_rows += r;
  std::vector<float> staging(static_cast<size_t>(total_rows * cols));
  int64_t offset = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    const TensorRecord& record = checked(names[i], {rows[i], cols});
    convert_to_f32(record.dtype, record.data, staging.data() + offset * cols, static_cast<size_t>(rows[i] * cols));
    offset += rows[i];
  }
  Tensor host{staging.data(), DType::F32, {total_rows, cols}, Device{}};
  return backend_.upload_weight(host, role);
}

}  // namespace rackserve
