// LinearWeight: a linear layer's weight as the checkpoint stores it (dense, or FP8 with its
// scales) and the one call that runs it, so model code stays the same for both.
#pragma once

#include <optional>

#include "backend/backend.h"

namespace rackserve {

struct LinearWeight {
  Tensor dense;                        // [(experts,) out, in] in the backend's weight layout; empty when fp8
  std::optional<QuantizedWeight> fp8;  // set when the checkpoint stores the layer in FP8

  // x [T, in] -> [T, out]; only for rank-2 weights (experts go through Backend::moe_experts).
  Tensor apply(Backend& backend, const Tensor& x) const {
    return fp8 ? backend.linear_fp8(x, *fp8) : backend.linear(x, dense);
  }
};

}  // namespace rackserve
