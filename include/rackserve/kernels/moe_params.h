// Mixture-of-experts kernels (kernels/moe/): routing and expert evaluation.
#pragma once

#include "rackserve/kernels/common.h"

namespace rackserve::kernels {

struct MoeRouteParams {
  const float* logits;       // [tokens, experts]
  const float* bias;         // [experts] or nullptr (selection only)
  int32_t* expert_ids;       // [tokens, top_k]
  float* weights;            // [tokens, top_k]
  int64_t tokens, experts, top_k, groups, top_k_groups;
  bool sigmoid, normalize;
  float scaling;
};
int launch_moe_route(const MoeRouteParams& params, Stream stream);

struct MoeExpertsParams {
  const void* x;             // [tokens, hidden] bf16
  const int32_t* expert_ids; // [tokens, top_k]
  const float* weights;      // [tokens, top_k]
  const void* gate_up;       // [experts, 2 * inter, hidden] bf16
  const void* down;          // [experts, hidden, inter] bf16
  float* activated;          // [tokens, top_k, inter] f32 workspace
  float* output;             // [tokens, hidden] f32
  int64_t tokens, top_k, experts, hidden, inter;  // hidden, inter multiples of 8
};
int launch_moe_experts(const MoeExpertsParams& params, Stream stream);

}  // namespace rackserve::kernels
