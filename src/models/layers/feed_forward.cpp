#include "models/layers/feed_forward.h"

#include <fmt/format.h>

#include "models/layers/tensor_parallel.h"

namespace rackserve {

DenseMlp::DenseMlp(WeightLoader& loader, const std::string& prefix, int64_t hidden, int64_t intermediate,
                   Communicator* tp)
    : tp_(tp) {
  per_rank((prefix + " intermediate size").c_str(), intermediate, loader.shard());
  gate_up_ = loader.load_linear_concat({prefix + ".gate_proj", prefix + ".up_proj"}, {intermediate, intermediate},
                                       hidden, TpSplit::Column);
  down_ = loader.load_linear(prefix + ".down_proj", hidden, intermediate, TpSplit::Row);
}

Tensor DenseMlp::forward_partial(Backend& backend, const Activation& x) const {
  // down_proj is row-parallel: the SiLU output is this rank's slice, quantized per rank (as
  // linear_fp8 would quantize it) when down_proj is FP8.
  return down_.apply(backend, silu_mul_activation(backend, gate_up_.apply(backend, x), down_.input_fp8_layout()));
}

Tensor DenseMlp::forward(Backend& backend, const Activation& x) const {
  Tensor out = forward_partial(backend, x);
  all_reduce_partial_sums(tp_, out);
  return out;
}

MoeBlock::MoeBlock(const ModelConfig& config, WeightLoader& loader, const std::string& prefix, Communicator* tp)
    : tp_(tp) {
  const MoeConfig& moe = config.moe;
  const int64_t hidden = config.hidden_size, experts = moe.num_routed_experts;
  const int64_t intermediate = moe.expert_intermediate_size;
  per_rank("moe_intermediate_size", intermediate, loader.shard());
  router_params_.top_k = moe.experts_per_token;
  router_params_.num_groups = moe.num_groups;
  router_params_.top_k_groups = moe.top_k_groups;
  router_params_.sigmoid_scores = moe.scoring == MoeConfig::Scoring::Sigmoid;
  router_params_.use_correction_bias = moe.has_score_correction_bias;
  router_params_.normalize = moe.normalize_top_k;
  router_params_.scaling_factor = static_cast<float>(moe.routed_scaling_factor);

  router_weight_ = loader.load(prefix + ".gate.weight", {experts, hidden}, WeightRole::RouterGate);
  if (moe.has_score_correction_bias)
    correction_bias_ = loader.load(prefix + ".gate.e_score_correction_bias", {experts}, WeightRole::RouterBias);
  auto expert_prefix = [&](int64_t e) { return fmt::format("{}.experts.{}", prefix, e); };
  LinearWeight gate_up = loader.load_linear_stacked(
      experts,
      [&](int64_t e) { return std::vector<std::string>{expert_prefix(e) + ".gate_proj", expert_prefix(e) + ".up_proj"}; },
      {intermediate, intermediate}, hidden, WeightRole::ExpertGateUp, TpSplit::Column);
  LinearWeight down = loader.load_linear_stacked(
      experts, [&](int64_t e) { return std::vector<std::string>{expert_prefix(e) + ".down_proj"}; }, {hidden},
      intermediate, WeightRole::ExpertDown, TpSplit::Row);
  experts_.gate_up = gate_up.dense;
  experts_.gate_up_fp8 = gate_up.fp8;
  experts_.down = down.dense;
  experts_.down_fp8 = down.fp8;
  if (moe.num_shared_experts > 0)
    shared_experts_.emplace(loader, prefix + ".shared_experts", hidden, intermediate * moe.num_shared_experts, tp);
}

std::optional<Fp8ActivationLayout> MoeBlock::input_fp8_layout() const {
  return first_fp8_layout({experts_.gate_up_fp8 ? std::optional(Fp8ActivationLayout::of(*experts_.gate_up_fp8))
                                                : std::nullopt,
                           shared_experts_ ? shared_experts_->input_fp8_layout() : std::nullopt});
}

Tensor MoeBlock::forward(Backend& backend, const Activation& x) const {
  // Router logits in float32 from float32 weights, as the reference computes them.
  MoeRouting routing =
      backend.moe_route(backend.linear_f32(x.tensor, router_weight_), correction_bias_, router_params_);
  const QuantizedActivation* x_fp8 =
      experts_.gate_up_fp8 ? x.fp8_in(Fp8ActivationLayout::of(*experts_.gate_up_fp8)) : nullptr;
  Tensor routed =
      x_fp8 ? backend.moe_experts(*x_fp8, routing, experts_) : backend.moe_experts(x.tensor, routing, experts_);
  if (shared_experts_) backend.add_inplace(routed, shared_experts_->forward_partial(backend, x));
  all_reduce_partial_sums(tp_, routed);
  return routed;
}

}  // namespace rackserve
