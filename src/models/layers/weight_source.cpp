// The dense default of WeightSource::load_linear and the TP slice arithmetic.
#include "models/layers/weight_source.h"

#include <algorithm>

#include "core/error.h"

namespace rackserve {

TensorSlice shard_slice(const std::string& name, int64_t rows, int64_t cols, TpSplit split, const ShardSpec& shard) {
  RS_CHECK(shard.world >= 1 && shard.rank >= 0 && shard.rank < shard.world, "{}: rank {} of a TP group of {}", name,
           shard.rank, shard.world);
  TensorSlice slice{0, rows, 0, cols};
  if (split == TpSplit::Replicated || shard.world == 1) return slice;
  const bool by_rows = split != TpSplit::Row;
  const int64_t extent = by_rows ? rows : cols;
  RS_CHECK(extent % shard.world == 0, "{}: {} {} {} is not divisible by the tensor-parallel size {}", name,
           tp_split_name(split), by_rows ? "rows" : "columns", extent, shard.world);
  const int64_t part = extent / shard.world;
  if (by_rows)
    slice = {shard.rank * part, part, 0, cols};
  else
    slice = {0, rows, shard.rank * part, part};
  return slice;
}

std::vector<TensorSlice> fp8_linear_slices(const LinearRequest& request, const LinearScheme& scheme,
                                           const ShardSpec& shard) {
  const bool block = scheme.format == WeightFormat::Fp8Block;
  const size_t pieces = request.rows.size();
  RS_CHECK(pieces > 0 && request.matrices > 0 && request.modules.size() == pieces * request.matrices,
           "load_linear: {} modules for {} matrices of {} pieces", request.modules.size(), request.matrices, pieces);
  std::vector<TensorSlice> slices;
  for (size_t i = 0; i < pieces; ++i) {
    slices.push_back(shard_slice(request.modules[i], request.rows[i], request.cols, request.split, shard));
    const TensorSlice& slice = slices.back();
    if (!block) continue;
    // A block's scale covers block_out x block_in values: a rank's slice must hold whole blocks.
    RS_CHECK(slice.row_begin % scheme.block_out == 0 &&
                 (slice.rows % scheme.block_out == 0 || slice.row_begin + slice.rows == request.rows[i]) &&
                 slice.col_begin % scheme.block_in == 0,
             "{}: the tensor-parallel slice (rows [{}, {}), columns [{}, {})) of a {} weight does not fall on "
             "FP8 block boundaries; use a smaller --tp or --dequantize-fp8",
             request.modules[i], slice.row_begin, slice.row_begin + slice.rows, slice.col_begin,
             slice.col_begin + slice.cols, scheme.describe());
    RS_CHECK(i + 1 == pieces || slice.rows % scheme.block_out == 0,
             "{}: {} rows do not fill whole FP8 blocks of {} rows, so it cannot be fused with {}",
             request.modules[i], slice.rows, scheme.block_out, request.modules[i + 1]);
  }
  // Like DeepSeek's act_quant (and vLLM's per-token-group quantization) the width must be a
  // whole number of groups.
  RS_CHECK(!block || slices.front().cols % scheme.block_in == 0,
           "{}: input width {} is not a multiple of the FP8 block width {}", request.modules.front(),
           slices.front().cols, scheme.block_in);
  return slices;
}

LinearWeight WeightSource::load_linear(const LinearRequest& request) {
  const size_t pieces = request.rows.size();
  RS_CHECK(pieces > 0 && request.matrices > 0 && request.modules.size() == pieces * request.matrices,
           "load_linear: {} modules for {} matrices of {} pieces", request.modules.size(), request.matrices, pieces);
  std::vector<std::string> names;
  std::vector<int64_t> rows;
  int64_t per_matrix = 0, local_cols = request.cols;
  for (size_t i = 0; i < pieces; ++i) {
    const TensorSlice slice = shard_slice(request.modules[i], request.rows[i], request.cols, request.split, shard_);
    per_matrix += slice.rows;
    local_cols = slice.cols;
  }
  for (size_t i = 0; i < request.modules.size(); ++i) {
    names.push_back(request.modules[i] + ".weight");
    rows.push_back(request.rows[i % pieces]);
  }
  LinearWeight weight;
  if (request.modules.size() == 1) {  // a plain load: the same tensor (and dummy values) as load()
    weight.dense = load(names.front(), {rows.front(), request.cols}, request.role, {request.split});
    return weight;
  }
  weight.dense = load_row_concat(names, rows, request.cols, request.role, request.split);
  if (request.matrices > 1) weight.dense = weight.dense.reshaped({request.matrices, per_matrix, local_cols});
  return weight;
}

bool pieces_stack(const LinearRequest& request, const std::vector<LinearScheme>& schemes, const ShardSpec& shard) {
  if (schemes.empty() || schemes.size() != request.modules.size()) return false;
  const LinearScheme& first = schemes.front();
  for (const LinearScheme& scheme : schemes)
    if (scheme.format != first.format || scheme.block_out != first.block_out || scheme.block_in != first.block_in ||
        scheme.static_input_scale)  // a static activation scale belongs to one module's input: load it alone
      return false;
  // Per-row scales stack along rows freely (INT4 groups run along the inputs).
  if (first.format == WeightFormat::Dense || first.format == WeightFormat::Fp8Channel) return true;
  if (first.format == WeightFormat::Int4Group)
    return std::all_of(schemes.begin(), schemes.end(),
                       [&](const LinearScheme& scheme) { return scheme.group_size == first.group_size; });
  if (first.format != WeightFormat::Fp8Block || first.block_out <= 0) return false;
  const size_t pieces = request.rows.size();
  for (size_t i = 0; i + 1 < pieces; ++i) {
    const TensorSlice slice = shard_slice(request.modules[i], request.rows[i], request.cols, request.split, shard);
    if (slice.rows % first.block_out != 0 || slice.row_begin % first.block_out != 0) return false;
  }
  return true;
}

}  // namespace rackserve
