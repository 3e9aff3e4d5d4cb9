// Row-wise and element-wise kernels (kernels/common/*.cu): embedding gather, RMSNorm
// (optionally fused with the residual add, or given the mean of squares), mean of squares,
// SiLU-and-mul, row gather, fill, add, bias add.
#pragma once

#include "rackserve/kernels/common.h"

namespace rackserve::kernels {

struct EmbeddingParams {
  const void* table;        // [vocab, hidden] bf16
  const int32_t* token_ids; // [tokens]
  float* output;            // [tokens, hidden]
  int64_t tokens, hidden, vocab;
};
int launch_embedding(const EmbeddingParams& params, Stream stream);

// output = x / sqrt(mean(x^2) + eps) * weight; with residual != nullptr the kernel first
// does residual += x and normalises the sum (x then is the block output being added); with
// mean_squares != nullptr (and no residual) mean(x^2) is that row's given value instead.
struct RmsNormParams {
  const void* x;           // [rows, width] x_type
  ElementType x_type;
  float* residual;         // [rows, width] f32 or nullptr
  const void* weight;      // [width] bf16
  void* output;            // [rows, width] bf16
  int64_t rows, width;
  float eps;
  const float* mean_squares = nullptr;  // [rows] or nullptr
};
int launch_rms_norm(const RmsNormParams& params, Stream stream);

struct AddParams {
  void* target;            // [count] target_type, target += source
  ElementType target_type;
  const void* source;      // [count] source_type
  ElementType source_type;
  int64_t count;
};
int launch_add(const AddParams& params, Stream stream);

// output[r] = sum over c of x[r, c]^2 / row_width (row_width >= width: a row split across ranks).
struct MeanSquaresParams {
  const void* x;  // [rows, width] x_type
  ElementType x_type;
  float* output;  // [rows]
  int64_t rows, width, row_width;
};
int launch_mean_squares(const MeanSquaresParams& params, Stream stream);

struct AddBiasParams {
  void* x;           // [rows, width] bf16, x[r, c] += bias[c]
  const void* bias;  // [width] bf16
  int64_t rows, width;
};
int launch_add_bias(const AddBiasParams& params, Stream stream);

struct SiluMulParams {
  const void* gate_up;  // [rows, 2 * width] bf16, gate columns first
  void* output;         // [rows, width] bf16
  int64_t rows, width;
};
int launch_silu_mul(const SiluMulParams& params, Stream stream);

struct GatherRowsParams {
  const void* input;          // [input_rows, row_bytes]
  const int32_t* row_indices; // [rows]
  void* output;               // [rows, row_bytes]
  int64_t rows, input_rows, row_bytes;  // row_bytes a multiple of 4
};
int launch_gather_rows(const GatherRowsParams& params, Stream stream);

struct FillParams {
  void* data;  // [count] type
  ElementType type;
  int64_t count;
  float value;
};
int launch_fill(const FillParams& params, Stream stream);

struct FillRandomParams {
  void* data;  // [count] type; element i = uniform_symmetric(seed, i, scale) (rackserve/random_hash.h)
  ElementType type;  // F8_E4M3: rounded to nearest even, saturated to +-448 (as f32_to_e4m3 in core/dtype.h)
  int64_t count;
  uint64_t seed;
  float scale;
};
int launch_fill_random(const FillRandomParams& params, Stream stream);

}  // namespace rackserve::kernels
