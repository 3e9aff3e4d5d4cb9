// Feed-forward blocks: the dense SwiGLU MLP (first layers and shared experts) and the routed
// mixture of experts with its shared experts.
// Tensor parallelism: every rank holds a slice of the intermediate dimension of every MLP
// and every expert (gate/up by rows, down by columns), computes partial sums of the
// output, and one all-reduce per block adds them (routed and shared experts together).
// The router is replicated: every rank routes the same (bit-identical) input alike.
#pragma once

#include <optional>
#include <string>

#include "backend/backend.h"
#include "config/model_config.h"
#include "models/layers/activation.h"
#include "models/layers/moe_checkpoint_names.h"
#include "models/layers/weight_loader.h"
#include "parallel/communicator.h"

namespace rackserve {

class DenseMlp {
 public:
  // `prefix` is e.g. "model.layers.0.mlp"; weights gate_proj/up_proj/down_proj of the full
  // `intermediate`, which loader.shard().world must divide.
  DenseMlp(WeightLoader& loader, const std::string& prefix, int64_t hidden, int64_t intermediate,
           Communicator* tp = nullptr);
  Tensor forward(Backend& backend, const Activation& x) const;  // [T, hidden] -> [T, hidden]
  // This rank's partial sum of forward (before the all-reduce).
  Tensor forward_partial(Backend& backend, const Activation& x) const;
  // The layout x's producer should quantize it in (gate_up_proj's), nullopt when it is dense.
  std::optional<Fp8ActivationLayout> input_fp8_layout() const { return gate_up_.input_fp8_layout(); }

 private:
  LinearWeight gate_up_, down_;
  Communicator* tp_;
};

class MoeBlock {
 public:
  // `prefix` is the block's module ("model.layers.3.mlp"), whose tensors `names` names.
  MoeBlock(const ModelConfig& config, WeightLoader& loader, const std::string& prefix, const MoeCheckpointNames& names,
           Communicator* tp = nullptr);
  // [T, hidden] -> [T, hidden]. The router reads x.tensor (f32 logits from the bf16 / f32
  // values); FP8 routed and shared experts take x.fp8 when it is in their layout. A shared
  // expert of the routed experts' width and format runs among them (experts_.shared).
  Tensor forward(Backend& backend, const Activation& x) const;
  // The layout x's producer should quantize it in: the routed experts' when FP8, else the
  // shared experts'; nullopt when neither is FP8.
  std::optional<Fp8ActivationLayout> input_fp8_layout() const;

 private:
  MoeRouterParams router_params_;
  Tensor router_weight_, correction_bias_;
  ExpertWeights experts_;
  std::optional<DenseMlp> shared_experts_;  // a shared expert not stacked with the routed ones
  Communicator* tp_;
};

}  // namespace rackserve
