// LinearWeight: a linear layer's weight as the checkpoint stores it (dense, or FP8 with its
// scales) and the one call that runs it, so model code stays the same for both.
#pragma once

#include <initializer_list>
#include <optional>
#include <utility>

#include "backend/backend.h"
#include "core/error.h"
#include "models/layers/activation.h"

namespace rackserve {

struct LinearWeight {
  Tensor dense;                        // [(experts,) out, in] in the backend's weight layout; empty when fp8
  std::optional<QuantizedWeight> fp8;  // set when the checkpoint stores the layer in FP8
  // Set for stacked routed experts stored INT4 (the only layers kept INT4: the loader
  // dequantizes other INT4 layers to dense); they run through Backend::moe_experts only.
  std::optional<Int4Weight> int4;
  std::optional<Fp4Weight> fp4;  // the same for NVFP4 routed experts

  // How this layer wants its input quantized: nullopt for a dense weight.
  std::optional<Fp8ActivationLayout> input_fp8_layout() const {
    return fp8 ? std::optional(Fp8ActivationLayout::of(*fp8)) : std::nullopt;
  }

  // x [T, in] -> [T, out]; only for rank-2 weights (experts go through Backend::moe_experts).
  Tensor apply(Backend& backend, const Tensor& x) const {
    RS_CHECK(!int4 && !fp4, "an INT4 / NVFP4 weight runs only as routed experts (Backend::moe_experts)");
    return fp8 ? backend.linear_fp8(x, *fp8) : backend.linear(x, dense);
  }
  // The same on an activation that may carry its quantized copy: an FP8 weight takes the copy
  // when it is in its layout (the same result as quantizing x.tensor, one kernel less).
  Tensor apply(Backend& backend, const Activation& x) const {
    RS_CHECK(!int4 && !fp4, "an INT4 / NVFP4 weight runs only as routed experts (Backend::moe_experts)");
    if (fp8) return backend.linear_fp8(fp8_input(backend, x), *fp8);
    RS_CHECK(!x.tensor.empty(), "a dense linear layer got only an e4m3 copy of its input");
    return backend.linear(x.tensor, dense);
  }
  // Two layers stacked by load_linear_concat (rows [0, first_rows) and the rest) on one input:
  // their two outputs (Backend::linear_split / linear_fp8_split).
  std::pair<Tensor, Tensor> apply_split(Backend& backend, const Activation& x, int64_t first_rows) const {
    if (fp8) return backend.linear_fp8_split(fp8_input(backend, x), *fp8, first_rows);
    RS_CHECK(!x.tensor.empty(), "a dense linear layer got only an e4m3 copy of its input");
    return backend.linear_split(x.tensor, dense, first_rows);
  }

 private:
  // What the FP8 weight multiplies: x's quantized copy when it is in the weight's layout, else
  // x quantized now.
  QuantizedActivation fp8_input(Backend& backend, const Activation& x) const {
    const Fp8ActivationLayout layout = Fp8ActivationLayout::of(*fp8);
    if (const QuantizedActivation* quantized = x.fp8_in(layout)) return *quantized;
    RS_CHECK(!x.tensor.empty(), "a linear layer got only an e4m3 copy of its input, in another layout than its own");
    return backend.quantize_fp8(x.tensor, layout);
  }
};

// The layout in which one activation with several consumers is quantized: the first FP8
// consumer's (a consumer in another layout quantizes for itself); nullopt when none is FP8.
inline std::optional<Fp8ActivationLayout> first_fp8_layout(
    std::initializer_list<std::optional<Fp8ActivationLayout>> consumers) {
  for (const auto& layout : consumers)
    if (layout) return layout;
  return std::nullopt;
}

}  // namespace rackserve
