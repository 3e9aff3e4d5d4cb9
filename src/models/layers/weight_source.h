// WeightSource: where a model's weights come from while it is built: a checkpoint on disk
// (CheckpointWeightSource) or random values generated on the backend (DummyWeightSource).
// The model names each tensor and the shape it expects; the source checks the name and
// shape and returns the tensor on the backend in the layout upload_weight gives `role`.
// Model code sees only WeightLoader, never which source is behind it.
//
// Tensor parallelism: a source loads for one rank of a ShardSpec. Each layer declares how
// its tensors split (a TpSplit, next to the load call); shapes passed in are always the
// full checkpoint shapes, the tensor returned is this rank's slice of it (shard_slice).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "models/layers/linear_weight.h"
#include "models/weight_manifest.h"

namespace rackserve {

// Which rank of how many tensor-parallel ranks a model (and its source) is built for.
struct ShardSpec {
  int rank = 0;
  int world = 1;
};

// How one load divides a tensor among the ranks (TpSplit of the manifest: Column splits
// axis 0, the output features; Row splits axis 1, the input features; Vocab splits axis 0).
struct TensorSharding {
  TpSplit split = TpSplit::Replicated;
  // A zero row appended after this rank's rows: the vocab-parallel embedding maps token
  // ids that other ranks hold to it, so their rows add nothing to the all-reduce.
  bool append_zero_row = false;
};

// The rectangle [row_begin, row_begin + rows) x [col_begin, col_begin + cols) of a matrix.
struct TensorSlice {
  int64_t row_begin = 0, rows = 0, col_begin = 0, cols = 0;
};

// Rank shard.rank's part of `name`, a [rows, cols] matrix (cols = 1 for a vector, which
// must be Replicated), under `split`: the split axis divided into shard.world equal
// contiguous parts. Throws naming the tensor when the axis is not divisible.
TensorSlice shard_slice(const std::string& name, int64_t rows, int64_t cols, TpSplit split, const ShardSpec& shard);

// The weight of one linear layer (matrices == 1) or of `matrices` stacked ones (MoE experts).
// Each matrix is the row concatenation of consecutive `modules` (checkpoint module names
// without ".weight", e.g. gate_proj then up_proj), modules[i] being [rows[i], cols]. With
// a split, each module is sliced on its own (gate and up each keep this rank's rows), so
// the result is [(matrices,) sum(local rows), local cols].
struct LinearRequest {
  std::vector<std::string> modules;  // matrices * pieces entries, matrix by matrix
  std::vector<int64_t> rows;         // one per piece of a matrix
  int64_t cols = 0;
  int64_t matrices = 1;
  WeightRole role = WeightRole::Linear;
  TpSplit split = TpSplit::Replicated;
};

// This rank's slice of each piece (modules[0 .. rows.size())) of an FP8 `request` stored as
// `scheme`, checked so the slices keep whole scales: a block-scaled slice starts and ends
// on block boundaries, every piece but the last of a matrix fills whole blocks (its block
// scales are concatenated along rows), and the input width is a whole number of block_in
// groups (activations are quantized per group). Throws naming the module otherwise.
std::vector<TensorSlice> fp8_linear_slices(const LinearRequest& request, const LinearScheme& scheme,
                                           const ShardSpec& shard);

// Whether the pieces of `request`, stored as `schemes` (one per module), can be stacked into
// one weight: one format (dense, FP8 channel, or FP8 block with the same block sizes), and
// with block scales every piece but the last keeps whole scale blocks on this rank; no piece
// has a static activation scale (input_scale belongs to one module).
bool pieces_stack(const LinearRequest& request, const std::vector<LinearScheme>& schemes, const ShardSpec& shard);

class WeightSource {
 public:
  explicit WeightSource(ShardSpec shard = {}) : shard_(shard) {}
  virtual ~WeightSource() = default;

  const ShardSpec& shard() const { return shard_; }

  // Whether the source holds a tensor of this name (optional tensors such as lm_head).
  virtual bool contains(const std::string& name) const = 0;
  // One tensor (this rank's part of it); throws naming it when it is absent or its shape is
  // not `shape`.
  virtual Tensor load(const std::string& name, const Shape& shape, WeightRole role,
                      const TensorSharding& sharding = {}) = 0;
  // [rows_i, cols] tensors, each sliced by `split`, concatenated along rows.
  virtual Tensor load_row_concat(const std::vector<std::string>& names, const std::vector<int64_t>& rows,
                                 int64_t cols, WeightRole role, TpSplit split = TpSplit::Replicated) = 0;
  // A linear layer in the format the checkpoint stores it. This default loads it dense
  // ("<module>.weight" through load_row_concat); a checkpoint with a quantization config
  // returns FP8 layers as QuantizedWeight.
  virtual LinearWeight load_linear(const LinearRequest& request);
  // Whether load_linear can stack the request's modules into one weight (pieces_stack of how
  // they are stored). This default: always (every layer dense).
  virtual bool can_stack_linear(const LinearRequest& request) const { return !request.modules.empty(); }

 private:
  ShardSpec shard_;
};

}  // namespace rackserve
