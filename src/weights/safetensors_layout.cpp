// Header validation for safetensors files: every number is checked before it is used,
// in the order length prefix -> JSON -> each entry -> how the entries tile the data.
#include "weights/safetensors_layout.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <string_view>
#include <tuple>

#include "core/error.h"
#include "weights/strict_json.h"

namespace rackserve {

namespace {

using nlohmann::json;

constexpr uint64_t kMaxInt64 = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

// The header's bytes, after checking that the length prefix keeps them inside `file`.
std::string_view locate_header(std::span<const std::byte> file, const std::string& file_name) {
  RS_CHECK(file.size() >= 8, "{}: file is {} bytes, shorter than the 8-byte header length that starts a safetensors file",
           file_name, file.size());
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | static_cast<uint64_t>(file[i]);  // little-endian
  RS_CHECK(length <= kMaxSafetensorsHeaderBytes, "{}: header length {} exceeds the limit of {} bytes", file_name, length,
           kMaxSafetensorsHeaderBytes);
  RS_CHECK(length <= file.size() - 8, "{}: header length {} runs past the end of the file ({} bytes)", file_name, length,
           file.size());
  return {reinterpret_cast<const char*>(file.data()) + 8, static_cast<size_t>(length)};
}

// A JSON integer >= 0 (nlohmann stores "-0" as a signed zero), else nullopt.
std::optional<uint64_t> non_negative_integer(const json& value) {
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_number_integer() && value.get<int64_t>() >= 0) return static_cast<uint64_t>(value.get<int64_t>());
  return std::nullopt;
}

const json& required_field(const json& entry, const char* key, const std::string& where) {
  auto field = entry.find(key);
  RS_CHECK(field != entry.end(), "{}: entry has no \"{}\"", where, key);
  return *field;
}

DType parse_dtype(const json& value, const std::string& where) {
  RS_CHECK(value.is_string(), "{}: dtype is {}, not a string", where, describe_json(value));
  const auto& name = value.get_ref<const json::string_t&>();
  auto dtype = dtype_from_safetensors(name);
  RS_CHECK(dtype.has_value(), "{}: unknown dtype {}", where, describe_json(value));
  return *dtype;
}

// The shape and its element count; the count fits int64 (Tensor::numel's type).
std::pair<Shape, uint64_t> parse_shape(const json& value, const std::string& where) {
  RS_CHECK(value.is_array(), "{}: shape is {}, not an array", where, describe_json(value));
  Shape shape;
  uint64_t numel = 1;
  for (const json& dimension : value) {
    auto size = non_negative_integer(dimension);
    RS_CHECK(size.has_value(), "{}: shape entry {} is not a non-negative integer", where, describe_json(dimension));
    RS_CHECK(*size <= kMaxInt64, "{}: shape entry {} overflows int64", where, *size);
    RS_CHECK(!__builtin_mul_overflow(numel, *size, &numel) && numel <= kMaxInt64,
             "{}: shape overflows int64 element count at entry {} ({})", where, shape.size(), *size);
    shape.push_back(static_cast<int64_t>(*size));
  }
  return {std::move(shape), numel};
}

std::pair<uint64_t, uint64_t> parse_offsets(const json& value, uint64_t data_bytes, const std::string& where) {
  RS_CHECK(value.is_array() && value.size() == 2, "{}: data_offsets is {}, not an array of two integers", where,
           value.is_array() ? fmt::format("an array of {} elements", value.size()) : describe_json(value));
  auto begin = non_negative_integer(value[0]);
  auto end = non_negative_integer(value[1]);
  RS_CHECK(begin && end, "{}: data_offsets [{}, {}] are not two non-negative integers", where, describe_json(value[0]),
           describe_json(value[1]));
  RS_CHECK(*begin <= *end, "{}: data_offsets [{}, {}] end before they begin", where, *begin, *end);
  RS_CHECK(*end <= data_bytes, "{}: data_offsets [{}, {}] lie outside the data section of {} bytes", where, *begin, *end,
           data_bytes);
  return {*begin, *end};
}

TensorLayout parse_tensor_entry(const std::string& name, const json& entry, uint64_t data_bytes,
                                const std::string& file_name) {
  const std::string where = fmt::format("{}: tensor '{}'", file_name, name);
  RS_CHECK(entry.is_object(), "{}: entry is {}, not an object", where, describe_json(entry));
  TensorLayout tensor;
  tensor.name = name;
  tensor.dtype = parse_dtype(required_field(entry, "dtype", where), where);
  auto [shape, numel] = parse_shape(required_field(entry, "shape", where), where);
  tensor.shape = std::move(shape);
  std::tie(tensor.begin, tensor.end) = parse_offsets(required_field(entry, "data_offsets", where), data_bytes, where);
  uint64_t expected_bytes = 0;
  RS_CHECK(!__builtin_mul_overflow(numel, dtype_size(tensor.dtype), &expected_bytes) && expected_bytes <= kMaxInt64,
           "{}: shape {} of {} overflows the byte count", where, shape_string(tensor.shape), dtype_name(tensor.dtype));
  RS_CHECK(tensor.end - tensor.begin == expected_bytes,
           "{}: shape {} of {} needs {} bytes but data_offsets [{}, {}] hold {}", where, shape_string(tensor.shape),
           dtype_name(tensor.dtype), expected_bytes, tensor.begin, tensor.end, tensor.end - tensor.begin);
  return tensor;
}

std::map<std::string, std::string> parse_metadata(const json& value, const std::string& file_name) {
  if (value.is_null()) return {};  // the reference reads null as "no metadata"
  RS_CHECK(value.is_object(), "{}: __metadata__ is {}, not an object of strings", file_name, describe_json(value));
  std::map<std::string, std::string> metadata;
  for (const auto& [key, text] : value.get_ref<const json::object_t&>()) {
    RS_CHECK(text.is_string(), "{}: __metadata__ value of \"{}\" is {}, not a string", file_name, key, describe_json(text));
    metadata.emplace(key, text.get<std::string>());
  }
  return metadata;
}

// `tensors` sorted by begin must cover [0, data_bytes) exactly once.
void check_tiling(const std::vector<TensorLayout>& tensors, uint64_t data_bytes, const std::string& file_name) {
  uint64_t covered = 0;
  const TensorLayout* previous = nullptr;
  for (const TensorLayout& tensor : tensors) {
    if (tensor.begin < covered) {  // covered > 0, so there is a previous tensor
      RS_FAIL("{}: tensors '{}' [{}, {}) and '{}' [{}, {}) overlap", file_name, previous->name, previous->begin,
              previous->end, tensor.name, tensor.begin, tensor.end);
    }
    RS_CHECK(tensor.begin == covered, "{}: bytes [{}, {}) of the data section, before tensor '{}', belong to no tensor",
             file_name, covered, tensor.begin, tensor.name);
    covered = tensor.end;
    previous = &tensor;
  }
  RS_CHECK(covered == data_bytes, "{}: bytes [{}, {}) at the end of the data section belong to no tensor", file_name,
           covered, data_bytes);
}

}  // namespace

SafetensorsLayout parse_safetensors_layout(std::span<const std::byte> file, const std::string& file_name) {
  const std::string_view header = locate_header(file, file_name);
  const json root = parse_strict_json(header, fmt::format("{}: header", file_name));
  RS_CHECK(root.is_object(), "{}: header is {}, not a JSON object", file_name, describe_json(root));

  SafetensorsLayout layout;
  layout.data_offset = 8 + header.size();
  const uint64_t data_bytes = file.size() - layout.data_offset;
  for (const auto& [key, value] : root.get_ref<const json::object_t&>()) {
    if (key == "__metadata__") {
      layout.metadata = parse_metadata(value, file_name);
    } else {
      layout.tensors.push_back(parse_tensor_entry(key, value, data_bytes, file_name));
    }
  }
  std::sort(layout.tensors.begin(), layout.tensors.end(), [](const TensorLayout& a, const TensorLayout& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  check_tiling(layout.tensors, data_bytes, file_name);
  return layout;
}

}  // namespace rackserve
