// Multi-head latent attention block of the DeepSeek-V3 family (with or without query
// compression): projections, latent cache write, absorbed attention, output projection.
#pragma once

#include <string>

#include "backend/backend.h"
#include "config/model_config.h"
#include "models/layers/step_context.h"
#include "models/layers/weight_loader.h"

namespace rackserve {

class MlaAttentionBlock {
 public:
  // `prefix` is e.g. "model.layers.3.self_attn".
  MlaAttentionBlock(const ModelConfig& config, WeightLoader& loader, const std::string& prefix);

  // x [T, hidden] (already normalised) -> [T, hidden]; writes the step's latents into cache_layer
  // (and, for an FP8 cache, their scales into cache_scales; empty otherwise).
  Tensor forward(Backend& backend, const Tensor& x, const StepContext& step, const Tensor& cache_layer,
                 const Tensor& cache_scales = Tensor{}) const;

 private:
  MlaConfig shape_;
  float norm_eps_;
  float softmax_scale_;
  LinearWeight q_a_proj_, q_b_proj_;  // with query compression (q_lora_rank > 0)
  Tensor q_a_norm_;
  LinearWeight q_proj_;               // without
  LinearWeight kv_a_proj_, o_proj_;
  Tensor kv_a_norm_, kv_b_proj_;
};

}  // namespace rackserve
