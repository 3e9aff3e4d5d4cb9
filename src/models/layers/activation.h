// Activation: a layer input as the op that produced it made it: the activation-dtype tensor
// and, when an FP8 consumer asked for it, its e4m3 copy quantized by that same op
// (Backend::rms_norm_fp8 / add_rms_norm_fp8 / silu_mul_fp8). A consumer takes the copy when it
// is in its own layout and quantizes the tensor itself otherwise; the two give the same bytes,
// so the copy saves a kernel and a round trip, never changes a result.
// The producers below (*_activation) ask the backend for the copy only when given a layout:
// with nullopt (a BF16 model, or dense consumers) they run exactly the plain op.
#pragma once

#include <optional>

#include "backend/backend.h"

namespace rackserve {

struct Activation {
  Tensor tensor;                           // [T, K]; empty when only `fp8` was made (silu_mul_fp8)
  std::optional<QuantizedActivation> fp8;  // the same values in e4m3

  // The quantized copy if it is in `layout`, else nullptr.
  const QuantizedActivation* fp8_in(const Fp8ActivationLayout& layout) const {
    return fp8 && fp8->layout == layout ? &*fp8 : nullptr;
  }
};

inline Activation rms_norm_activation(Backend& backend, const Tensor& x, const Tensor& weight, float eps,
                                      const std::optional<Fp8ActivationLayout>& fp8) {
  if (!fp8) return {backend.rms_norm(x, weight, eps), std::nullopt};
  NormedActivation out = backend.rms_norm_fp8(x, weight, eps, *fp8);
  return {out.normed, out.fp8};
}

// residual += x, then rms_norm of the sum (Backend::add_rms_norm).
inline Activation add_rms_norm_activation(Backend& backend, const Tensor& residual, const Tensor& x,
                                          const Tensor& weight, float eps,
                                          const std::optional<Fp8ActivationLayout>& fp8) {
  if (!fp8) return {backend.add_rms_norm(residual, x, weight, eps), std::nullopt};
  NormedActivation out = backend.add_rms_norm_fp8(residual, x, weight, eps, *fp8);
  return {out.normed, out.fp8};
}

// silu(gate) * up; with a layout only its e4m3 copy is made (its one consumer is the FP8 down_proj).
inline Activation silu_mul_activation(Backend& backend, const Tensor& gate_up,
                                      const std::optional<Fp8ActivationLayout>& fp8) {
  if (!fp8) return {backend.silu_mul(gate_up), std::nullopt};
  return {Tensor{}, backend.silu_mul_fp8(gate_up, *fp8)};
}

}  // namespace rackserve
