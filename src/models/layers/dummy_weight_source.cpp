#include "models/layers/dummy_weight_source.h"

#include <cmath>

#include "core/error.h"
#include "models/dummy_weight_plan.h"
#include "rackserve/random_hash.h"

namespace rackserve {

namespace {

// FNV-1a: a stable key per tensor name, independent of load order.
uint64_t name_key(const std::string& name, uint64_t key = 0xcbf29ce484222325ull) {
  for (unsigned char c : name) key = (key ^ c) * 0x100000001b3ull;
  return key;
}

}  // namespace

DummyWeightInit dummy_weight_init(WeightRole role, const Shape& shape) {
  RS_CHECK(!shape.empty() && shape.back() > 0, "dummy weight of shape {}", shape_string(shape));
  switch (role) {
    case WeightRole::Norm: return {1.0f, 0.0f};
    case WeightRole::Bias: return {0.0f, 0.1f};
    case WeightRole::Embedding: return {0.0f, 1.0f};
    case WeightRole::RouterBias: return {0.0f, 0.01f};
    case WeightRole::Linear:
    case WeightRole::RouterGate:
    case WeightRole::ExpertGateUp:
    case WeightRole::ExpertDown:
    case WeightRole::MlaKvB: return {0.0f, static_cast<float>(1.0 / std::sqrt(static_cast<double>(shape.back())))};
    case WeightRole::RopeFrequencies: break;  // computed from the config, never loaded
  }
  RS_FAIL("no dummy initialisation for weight role {}", static_cast<int>(role));
}

DummyWeightSource::DummyWeightSource(const ModelConfig& config, Backend& backend, uint64_t seed, ShardSpec shard,
                                     Fp8Weights fp8_weights, const std::optional<QuantConfig>& stated)
    : WeightSource(shard),
      backend_(backend),
      seed_(seed),
      prefix_(config.checkpoint_prefix),
      quant_(dummy_quant_config(config, fp8_weights, stated)),
      manifest_(dummy_weight_manifest(config, quant_)) {
  for (size_t i = 0; i < manifest_.entries().size(); ++i) index_.emplace(manifest_.entries()[i].name, i);
}

namespace {
int split_axis(TpSplit split) {
  switch (split) {
    case TpSplit::Replicated: return -1;
    case TpSplit::Row: return 1;
    default: return 0;
  }
}
}  // namespace

void DummyWeightSource::check_requested(const std::string& model_name, const Shape& shape, TpSplit split) {
  const std::string name = prefix_ + model_name;
  auto it = index_.find(name);
  RS_CHECK(it != index_.end(), "dummy weights: the model asks for {}, which the config's manifest does not hold", name);
  const ManifestEntry& entry = manifest_.entries()[it->second];
  RS_CHECK(entry.shape == shape, "dummy weights: the model asks for {} as {}, the manifest has {}", name,
           shape_string(shape), shape_string(entry.shape));
  RS_CHECK(shard().world == 1 || split_axis(split) == entry.split_axis,
           "dummy weights: the model splits {} as {} (axis {}), the manifest as {} (axis {})", name,
           tp_split_name(split), split_axis(split), tp_split_name(entry.split), entry.split_axis);
  requested_.insert(name);
  // An FP8 weight's scales come with it (loaded dense, as kv_b_proj is, they are folded in).
  if (entry.format == WeightFormat::Dense || entry.format == WeightFormat::Int4Group ||
      entry.format == WeightFormat::Nvfp4 || !name.ends_with(".weight"))
    return;
  const std::string module = name.substr(0, name.size() - 7);
  const LinearScheme& scheme = quant_.linear(module);
  requested_.insert(module + "." + (scheme.format == WeightFormat::Fp8Block ? scheme.scale_name : "weight_scale"));
}

uint64_t DummyWeightSource::shard_key(uint64_t key, TpSplit split) const {
  if (split == TpSplit::Replicated || shard().world == 1) return key;
  return mix_hash(key, static_cast<uint64_t>(shard().rank) + 1);
}

Tensor DummyWeightSource::generate(uint64_t key, const Shape& shape, WeightRole role) {
  const DummyWeightInit init = dummy_weight_init(role, shape);
  Tensor tensor = backend_.allocate_weight(shape, role);
  if (init.scale == 0.0f)
    backend_.fill(tensor, init.center);
  else
    backend_.fill_random(tensor, mix_hash(seed_, key), init.scale);  // center is 0 for every random role
  return tensor;
}

Tensor DummyWeightSource::load(const std::string& name, const Shape& shape, WeightRole role,
                               const TensorSharding& sharding) {
  check_requested(name, shape, sharding.split);
  if (sharding.split == TpSplit::Replicated && !sharding.append_zero_row) return generate(name_key(name), shape, role);
  const bool vector = shape.size() == 1;  // a column split of a vector: a bias or norm of split heads
  RS_CHECK(shape.size() == 2 || (vector && sharding.split == TpSplit::Column && !sharding.append_zero_row),
           "{}: only matrices and column-split vectors are split for tensor parallelism, not {}", name,
           shape_string(shape));
  const TensorSlice slice = shard_slice(name, shape[0], vector ? 1 : shape[1], sharding.split, shard());
  const int64_t rows = slice.rows + (sharding.append_zero_row ? 1 : 0);
  Tensor tensor =
      generate(shard_key(name_key(name), sharding.split), vector ? Shape{rows} : Shape{rows, slice.cols}, role);
  if (sharding.append_zero_row) backend_.fill(tensor.rows(slice.rows, rows), 0.0f);
  return tensor;
}

Tensor DummyWeightSource::load_row_concat(const std::vector<std::string>& names, const std::vector<int64_t>& rows,
                                          int64_t cols, WeightRole role, TpSplit split) {
  RS_CHECK(names.size() == rows.size() && !names.empty(), "load_row_concat: {} names for {} row counts", names.size(),
           rows.size());
  int64_t total_rows = 0, local_cols = cols;
  uint64_t key = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < names.size(); ++i) {
    check_requested(names[i], {rows[i], cols}, split);
    const TensorSlice slice = shard_slice(names[i], rows[i], cols, split, shard());
    total_rows += slice.rows;
    local_cols = slice.cols;
    key = name_key(names[i], key);
  }
  return generate(shard_key(key, split), {total_rows, local_cols}, role);
}

const LinearScheme& DummyWeightSource::request_scheme(const LinearRequest& request) const {
  RS_CHECK(!request.modules.empty(), "load_linear: no modules");
  const LinearScheme& scheme = quant_.linear(prefix_ + request.modules.front());
  for (const std::string& module : request.modules)
    RS_CHECK(quant_.linear(prefix_ + module).format == scheme.format,
             "{} and {} are fused into one weight but stored as {} and {}", request.modules.front(), module,
             weight_format_name(scheme.format), weight_format_name(quant_.linear(prefix_ + module).format));
  return scheme;
}

bool DummyWeightSource::can_stack_linear(const LinearRequest& request) const {
  std::vector<LinearScheme> schemes;
  for (const std::string& module : request.modules) schemes.push_back(quant_.linear(prefix_ + module));
  return pieces_stack(request, schemes, shard());
}

LinearWeight DummyWeightSource::load_linear(const LinearRequest& request) {
  const LinearScheme& scheme = request_scheme(request);
  if (scheme.format == WeightFormat::Dense) return WeightSource::load_linear(request);
  if (scheme.format == WeightFormat::Int4Group) return load_int4(request, scheme);
  if (scheme.format == WeightFormat::Nvfp4) return load_fp4(request);
  const bool block = scheme.format == WeightFormat::Fp8Block;
  const std::vector<TensorSlice> slices = fp8_linear_slices(request, scheme, shard());
  int64_t per_matrix = 0;
  for (const TensorSlice& slice : slices) per_matrix += slice.rows;
  const int64_t cols = slices.front().cols;
  uint64_t key = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < request.modules.size(); ++i) {
    const std::string name = request.modules[i] + ".weight";
    check_requested(name, {request.rows[i % slices.size()], request.cols}, request.split);
    key = name_key(name, key);
  }

  constexpr float kE4m3Max = 448.0f;
  const float scale = dummy_weight_init(request.role, {per_matrix, cols}).scale / kE4m3Max;
  Shape values_shape{per_matrix, cols};
  Shape scales_shape = block ? Shape{(per_matrix + scheme.block_out - 1) / scheme.block_out, cols / scheme.block_in}
                             : Shape{per_matrix};
  if (request.matrices > 1) {
    values_shape.insert(values_shape.begin(), request.matrices);
    scales_shape.insert(scales_shape.begin(), request.matrices);
  }
  QuantizedWeight fp8;
  fp8.scaling = block ? Fp8Scaling::Block : Fp8Scaling::Channel;
  fp8.block_out = block ? scheme.block_out : 0;
  fp8.block_in = block ? scheme.block_in : 0;
  fp8.values = backend_.allocate_persistent(DType::F8_E4M3, values_shape);
  backend_.fill_random(fp8.values, mix_hash(seed_, shard_key(key, request.split)), kE4m3Max);
  // Scales vary per entry, in [0.5, 1.5) x the BF16 dummy's magnitude / 448, the same values on
  // every backend: a kernel that applies another block's or row's scale gives other numbers.
  std::vector<float> scales(static_cast<size_t>(shape_numel(scales_shape)));
  const uint64_t scales_seed = mix_hash(seed_, shard_key(key, request.split) + 1);
  for (size_t i = 0; i < scales.size(); ++i) scales[i] = scale * (1.0f + uniform_symmetric(scales_seed, i, 0.5f));
  fp8.scales = backend_.upload_persistent(Tensor{scales.data(), DType::F32, scales_shape, Device{}}, DType::F32);
  LinearWeight weight;
  weight.fp8 = std::move(fp8);
  return weight;
}

TensorSlice DummyWeightSource::request_packed(const std::string& module, int64_t rows, int64_t cols, TpSplit split,
                                              const std::string& packed_name, const Shape& packed_shape,
                                              std::initializer_list<const char*> other_suffixes, int64_t group) {
  check_requested(module + "." + packed_name, packed_shape, split);  // the packed codes carry the split
  for (const char* suffix : other_suffixes) requested_.insert(prefix_ + module + "." + suffix);
  const TensorSlice slice = shard_slice(module, rows, cols, split, shard());
  RS_CHECK(slice.cols % group == 0, "{}: {} inputs per rank cut a group of {} 4-bit weights", module, slice.cols, group);
  return slice;
}

LinearWeight DummyWeightSource::load_int4(const LinearRequest& request, const LinearScheme& scheme) {
  const size_t pieces = request.rows.size();
  int64_t per_matrix = 0, cols = request.cols;
  uint64_t key = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < request.modules.size(); ++i) {
    const int64_t rows = request.rows[i % pieces];
    const TensorSlice slice = request_packed(request.modules[i], rows, request.cols, request.split, "weight_packed",
                                            {rows, request.cols / 8}, {"weight_scale", "weight_shape"},
                                            scheme.group_size);
    if (i < pieces) per_matrix += slice.rows;
    cols = slice.cols;
    key = name_key(request.modules[i], key);
  }
  Int4Weight weight;
  weight.group = scheme.group_size;
  // Uniform random code words (every nibble independent and uniform over its 16 values).
  const Shape packed_shape{request.matrices, per_matrix, cols / 8};
  std::vector<int32_t> words(static_cast<size_t>(shape_numel(packed_shape)));
  const uint64_t words_seed = mix_hash(seed_, shard_key(key, request.split));
  for (size_t i = 0; i < words.size(); ++i) words[i] = static_cast<int32_t>(mix_hash(words_seed, i));
  weight.packed = backend_.upload_persistent(Tensor{words.data(), DType::I32, packed_shape, Device{}}, DType::I32);
  const float scale = dummy_weight_init(request.role, {per_matrix, cols}).scale / 8.0f;
  std::vector<float> scales(static_cast<size_t>(request.matrices * per_matrix * (cols / scheme.group_size)));
  const uint64_t scales_seed = mix_hash(seed_, shard_key(key, request.split) + 1);
  for (size_t i = 0; i < scales.size(); ++i) scales[i] = scale * (1.0f + uniform_symmetric(scales_seed, i, 0.5f));
  weight.scales = backend_.upload_persistent(
      Tensor{scales.data(), DType::F32, {request.matrices, per_matrix, cols / scheme.group_size}, Device{}},
      backend_.activation_dtype());
  LinearWeight linear;
  linear.int4 = weight;
  return linear;
}

LinearWeight DummyWeightSource::load_fp4(const LinearRequest& request) {
  const size_t pieces = request.rows.size();
  int64_t per_matrix = 0, cols = request.cols;
  uint64_t key = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < request.modules.size(); ++i) {
    const int64_t rows = request.rows[i % pieces];
    const TensorSlice slice =
        request_packed(request.modules[i], rows, request.cols, request.split, "weight", {rows, request.cols / 2},
                       {"weight_scale", "weight_scale_2", "input_scale"}, Fp4Weight::kGroup);
    if (i < pieces) per_matrix += slice.rows;
    cols = slice.cols;
    key = name_key(request.modules[i], key);
  }
  Fp4Weight weight;
  // Uniform random code pairs (every e2m1 code equally likely).
  const Shape packed_shape{request.matrices, per_matrix, cols / 2};
  std::vector<uint8_t> pairs(static_cast<size_t>(shape_numel(packed_shape)));
  const uint64_t pairs_seed = mix_hash(seed_, shard_key(key, request.split));
  for (size_t i = 0; i < pairs.size(); ++i) pairs[i] = static_cast<uint8_t>(mix_hash(pairs_seed, i));
  weight.packed = backend_.upload_persistent(Tensor{pairs.data(), DType::U8, packed_shape, Device{}}, DType::U8);
  std::vector<uint8_t> blocks(static_cast<size_t>(request.matrices * per_matrix * (cols / Fp4Weight::kGroup)));
  const uint64_t scales_seed = mix_hash(seed_, shard_key(key, request.split) + 1);
  for (size_t i = 0; i < blocks.size(); ++i) blocks[i] = f32_to_e4m3(1.0f + uniform_symmetric(scales_seed, i, 0.5f));
  weight.block_scales = backend_.upload_persistent(
      Tensor{blocks.data(), DType::F8_E4M3, {request.matrices, per_matrix, cols / Fp4Weight::kGroup}, Device{}},
      DType::F8_E4M3);
  std::vector<float> rows(static_cast<size_t>(request.matrices * per_matrix),
                          dummy_weight_init(request.role, {per_matrix, cols}).scale / 6.0f);
  weight.row_scales =
      backend_.upload_persistent(Tensor{rows.data(), DType::F32, {request.matrices, per_matrix}, Device{}}, DType::F32);
  LinearWeight linear;
  linear.fp4 = weight;
  return linear;
}

void DummyWeightSource::check_complete() const {
  for (const ManifestEntry& entry : manifest_.entries())
    RS_CHECK(entry.optional || requested_.contains(entry.name),
             "dummy weights: the model never loaded {} {}, which a checkpoint of this config holds", entry.name,
             shape_string(entry.shape));
}

}  // namespace rackserve
