// StepContext: the per-step tensors every layer of a forward pass shares (positions,
// paged-attention metadata, rotary table). Built once per step by the model.
#pragma once

#include "backend/ops.h"

namespace rackserve {

struct StepContext {
  AttentionBatch attention;
  const RopeTable* rope = nullptr;
};

}  // namespace rackserve
