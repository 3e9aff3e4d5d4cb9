// AttentionBlock: the attention of one decoder layer, whatever its family (multi-head latent
// attention, grouped-query attention). The decoder model runs every layer through this.
#pragma once

#include <optional>

#include "backend/backend.h"
#include "models/kv_cache.h"
#include "models/layers/activation.h"
#include "models/layers/step_context.h"

namespace rackserve {

class AttentionBlock {
 public:
  virtual ~AttentionBlock() = default;
  // x [T, hidden] (already normalised) -> [T, hidden] summed over the tensor-parallel ranks;
  // writes the step's keys (and values) into this layer's cache entries (and, for an FP8
  // cache, their scales; DSA models also their indexer keys).
  virtual Tensor forward(Backend& backend, const Activation& x, const StepContext& step,
                         const LayerKvCache& cache) const = 0;
  // The layout the producer of x should quantize it in; nullopt when no projection of x is FP8.
  virtual std::optional<Fp8ActivationLayout> input_fp8_layout() const = 0;
};

}  // namespace rackserve
