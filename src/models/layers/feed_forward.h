// Feed-forward blocks of the DeepSeek-V3 family: the dense SwiGLU MLP (first layers and
// shared experts) and the routed mixture of experts with its shared experts.
#pragma once

#include <optional>
#include <string>

#include "backend/backend.h"
#include "config/model_config.h"
#include "models/layers/weight_loader.h"

namespace rackserve {

class DenseMlp {
 public:
  // `prefix` is e.g. "model.layers.0.mlp"; weights gate_proj/up_proj/down_proj.
  DenseMlp(WeightLoader& loader, const std::string& prefix, int64_t hidden, int64_t intermediate);
  Tensor forward(Backend& backend, const Tensor& x) const;  // [T, hidden] -> [T, hidden]

 private:
  LinearWeight gate_up_, down_;
};

class MoeBlock {
 public:
  MoeBlock(const ModelConfig& config, WeightLoader& loader, const std::string& prefix);
  Tensor forward(Backend& backend, const Tensor& x) const;  // [T, hidden] -> [T, hidden]

 private:
  MoeRouterParams router_params_;
  Tensor router_weight_, correction_bias_;
  ExpertWeights experts_;
  std::optional<DenseMlp> shared_experts_;
};

}  // namespace rackserve
