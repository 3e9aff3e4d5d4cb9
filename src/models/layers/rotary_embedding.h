// Rotary embedding tables from a RopeConfig: the inverse frequencies (plain or YaRN)
// and the cos/sin scale, computed in float32 the way Hugging Face transformers does.
#pragma once

#include <vector>

#include "backend/ops.h"
#include "config/model_config.h"

namespace rackserve {

struct RotaryFrequencies {
  std::vector<float> inv_freq;  // [dim / 2]
  float scale = 1.0f;           // YaRN attention factor applied to cos and sin
};

// `dim` is the rotated width (qk_rope_head_dim).
RotaryFrequencies rotary_frequencies(const RopeConfig& rope, int64_t dim);

}  // namespace rackserve
