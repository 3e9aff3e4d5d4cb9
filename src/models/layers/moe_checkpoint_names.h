// Where a family's checkpoints keep the tensors of a routed MoE block, relative to the
// decoder layer ("model.layers.N."): DeepSeek-V3, Kimi K2 and GLM-4.x/5 name them
//   mlp.gate.weight, mlp.gate.e_score_correction_bias,
//   mlp.experts.E.{gate_proj, up_proj, down_proj}, mlp.shared_experts.*
// and MiniMax-M2 (Mixtral's names)
//   block_sparse_moe.gate.weight, block_sparse_moe.e_score_correction_bias,
//   block_sparse_moe.experts.E.{w1 (gate), w3 (up), w2 (down)}.
#pragma once

#include <string>

#include "config/model_config.h"

namespace rackserve {

struct MoeCheckpointNames {
  std::string block;        // the block's module under the layer
  std::string router_bias;  // the score-correction bias under the block
  std::string gate_proj, up_proj, down_proj;  // each expert's projections under block.experts.E

  static MoeCheckpointNames of(const ModelConfig& config) {
    if (config.model_type == "minimax_m2") return {"block_sparse_moe", "e_score_correction_bias", "w1", "w3", "w2"};
    return {"mlp", "gate.e_score_correction_bias", "gate_proj", "up_proj", "down_proj"};
  }
};

}  // namespace rackserve
