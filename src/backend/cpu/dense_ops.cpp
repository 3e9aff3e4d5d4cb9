// Dense ops of the CPU backend: embedding, RMSNorm, bias, linear, SiLU-and-mul, row gather.
#include <cmath>
#include <cstring>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"

namespace rackserve {

namespace cpu {

float dot(const float* a, const float* b, int64_t count) {
  // Eight independent partial sums: vectorisable without reassociation flags.
  float lanes[8] = {};
  int64_t i = 0;
  for (; i + 8 <= count; i += 8)
    for (int lane = 0; lane < 8; ++lane) lanes[lane] += a[i + lane] * b[i + lane];
  float sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
  for (; i < count; ++i) sum += a[i] * b[i];
  return sum;
}

void matvec(const float* weight, const float* x, float* out, int64_t rows, int64_t cols) {
  for (int64_t row = 0; row < rows; ++row) out[row] = dot(weight + row * cols, x, cols);
}

// out = weight * x / sqrt(mean_squares + eps) over one row.
void scale_rms_row(const float* x, const float* weight, float* out, int64_t width, float mean_squares, float eps) {
  float inverse_rms = 1.0f / std::sqrt(mean_squares + eps);
  for (int64_t i = 0; i < width; ++i) out[i] = weight[i] * (x[i] * inverse_rms);
}

void rms_norm_row(const float* x, const float* weight, float* out, int64_t width, float eps) {
  scale_rms_row(x, weight, out, width, dot(x, x, width) / static_cast<float>(width), eps);
}

void silu_mul_row(const float* gate_up, int64_t half, float* out) {
  const float* up = gate_up + half;
  for (int64_t i = 0; i < half; ++i) out[i] = gate_up[i] / (1.0f + std::exp(-gate_up[i])) * up[i];
}

}  // namespace cpu

namespace {
void check_f32_matrix(const Tensor& tensor, const char* what) {
  RS_CHECK(tensor.dtype == DType::F32 && tensor.rank() == 2, "{} must be a 2-D F32 tensor, got {} {}", what,
           dtype_name(tensor.dtype), shape_string(tensor.shape));
}
}  // namespace

Tensor CpuBackend::embedding(const Tensor& table, const Tensor& token_ids) {
  check_f32_matrix(table, "embedding table");
  RS_CHECK(token_ids.dtype == DType::I32 && token_ids.rank() == 1, "token ids must be a 1-D I32 tensor");
  int64_t vocab = table.dim(0), hidden = table.dim(1), tokens = token_ids.dim(0);
  Tensor out = allocate_step(DType::F32, {tokens, hidden});
  for (int64_t t = 0; t < tokens; ++t) {
    int32_t id = token_ids.as<int32_t>()[t];
    RS_CHECK(id >= 0 && id < vocab, "token id {} is outside the vocabulary [0, {})", id, vocab);
    std::memcpy(out.as<float>() + t * hidden, table.as<float>() + id * hidden, hidden * sizeof(float));
  }
  return out;
}

Tensor CpuBackend::rms_norm(const Tensor& x, const Tensor& weight, float eps) {
  check_f32_matrix(x, "rms_norm input");
  int64_t rows = x.dim(0), width = x.dim(1);
  RS_CHECK(weight.numel() == width, "rms_norm weight has {} elements for width {}", weight.numel(), width);
  Tensor out = allocate_step(DType::F32, x.shape);
  pool_.parallel_for(rows, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      cpu::rms_norm_row(x.as<float>() + r * width, weight.as<float>(), out.as<float>() + r * width, width, eps);
  });
  return out;
}

Tensor CpuBackend::mean_squares(const Tensor& x, int64_t row_width) {
  check_f32_matrix(x, "mean_squares input");
  RS_CHECK(row_width >= x.dim(1), "mean_squares: a row of width {} is part of one of {}", x.dim(1), row_width);
  Tensor out = allocate_step(DType::F32, {x.dim(0)});
  for (int64_t r = 0; r < x.dim(0); ++r) {
    const float* row = x.as<float>() + r * x.dim(1);
    out.as<float>()[r] = cpu::dot(row, row, x.dim(1)) / static_cast<float>(row_width);
  }
  return out;
}

Tensor CpuBackend::rms_norm_given_mean_squares(const Tensor& x, const Tensor& mean_squares, const Tensor& weight,
                                               float eps) {
  check_f32_matrix(x, "rms_norm_given_mean_squares input");
  const int64_t rows = x.dim(0), width = x.dim(1);
  RS_CHECK(weight.numel() == width && mean_squares.dtype == DType::F32 && mean_squares.numel() == rows,
           "rms_norm_given_mean_squares: weight {} and mean squares {} for x {}", shape_string(weight.shape),
           shape_string(mean_squares.shape), shape_string(x.shape));
  Tensor out = allocate_step(DType::F32, x.shape);
  for (int64_t r = 0; r < rows; ++r)
    cpu::scale_rms_row(x.as<float>() + r * width, weight.as<float>(), out.as<float>() + r * width, width,
                       mean_squares.as<float>()[r], eps);
  return out;
}

void CpuBackend::add_bias(const Tensor& x, const Tensor& bias) {
  check_f32_matrix(x, "add_bias input");
  RS_CHECK(bias.dtype == DType::F32 && bias.numel() == x.dim(1), "add_bias: bias {} for x {}",
           shape_string(bias.shape), shape_string(x.shape));
  for (int64_t r = 0; r < x.dim(0); ++r)
    for (int64_t c = 0; c < x.dim(1); ++c) x.as<float>()[r * x.dim(1) + c] += bias.as<float>()[c];
}

void CpuBackend::add_inplace(const Tensor& residual, const Tensor& x) {
  RS_CHECK(residual.shape == x.shape, "add: shapes {} and {} differ", shape_string(residual.shape),
           shape_string(x.shape));
  float* target = residual.as<float>();
  const float* source = x.as<float>();
  for (int64_t i = 0; i < x.numel(); ++i) target[i] += source[i];
}

Tensor CpuBackend::add_rms_norm(const Tensor& residual, const Tensor& x, const Tensor& weight, float eps) {
  add_inplace(residual, x);
  return rms_norm(residual, weight, eps);
}

Tensor CpuBackend::linear(const Tensor& x, const Tensor& weight) {
  check_f32_matrix(x, "linear input");
  check_f32_matrix(weight, "linear weight");
  int64_t tokens = x.dim(0), in = x.dim(1), out_features = weight.dim(0);
  RS_CHECK(weight.dim(1) == in, "linear: input width {} does not match weight {}", in, shape_string(weight.shape));
  Tensor out = allocate_step(DType::F32, {tokens, out_features});
  // Parallel over output features: each weight row is read once per token block.
  pool_.parallel_for(out_features, 16, [&](int64_t begin, int64_t end) {
    for (int64_t t = 0; t < tokens; ++t) {
      const float* row = x.as<float>() + t * in;
      float* target = out.as<float>() + t * out_features;
      for (int64_t n = begin; n < end; ++n) target[n] = cpu::dot(weight.as<float>() + n * in, row, in);
    }
  });
  return out;
}

Tensor CpuBackend::silu_mul(const Tensor& gate_up) {
  check_f32_matrix(gate_up, "silu_mul input");
  RS_CHECK(gate_up.dim(1) % 2 == 0, "silu_mul input width {} is odd", gate_up.dim(1));
  int64_t tokens = gate_up.dim(0), half = gate_up.dim(1) / 2;
  Tensor out = allocate_step(DType::F32, {tokens, half});
  for (int64_t t = 0; t < tokens; ++t)
    cpu::silu_mul_row(gate_up.as<float>() + t * 2 * half, half, out.as<float>() + t * half);
  return out;
}

Tensor CpuBackend::gather_rows(const Tensor& x, const Tensor& row_indices) {
  check_f32_matrix(x, "gather_rows input");
  int64_t rows = row_indices.numel(), width = x.dim(1);
  Tensor out = allocate_step(DType::F32, {rows, width});
  for (int64_t r = 0; r < rows; ++r) {
    int32_t source = row_indices.as<int32_t>()[r];
    RS_CHECK(source >= 0 && source < x.dim(0), "gather_rows: row {} out of [0, {})", source, x.dim(0));
    std::memcpy(out.as<float>() + r * width, x.as<float>() + source * width, width * sizeof(float));
  }
  return out;
}

}  // namespace rackserve
