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

MoeBlock::MoeBlock(const ModelConfig& config, WeightLoader& loader, const std::string& prefix,
                   const MoeCheckpointNames& names, Communicator* tp)
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
    correction_bias_ = loader.load(prefix + "." + names.router_bias, {experts}, WeightRole::RouterBias);
  // Expert e's modules; e == experts is the shared expert when it is stacked after them.
  auto module_prefix = [&](int64_t e) {
    return e < experts ? fmt::format("{}.experts.{}", prefix, e) : prefix + ".shared_experts";
  };
  // The shared expert is a DenseMlp: gate_proj / up_proj / down_proj in every family.
  auto projection = [&](int64_t e, const std::string& routed, const char* shared) {
    return module_prefix(e) + "." + (e < experts ? routed : std::string(shared));
  };
  auto gate_up_modules = [&](int64_t e) {
    return std::vector<std::string>{projection(e, names.gate_proj, "gate_proj"), projection(e, names.up_proj, "up_proj")};
  };
  auto down_modules = [&](int64_t e) { return std::vector<std::string>{projection(e, names.down_proj, "down_proj")}; };
  // One shared expert as wide as a routed one (DeepSeek-V3, Kimi-K2) joins the routed experts
  // as expert `experts`, which the router appends to every token with weight 1 (SGLang's
  // shared-experts fusion): one moe_experts call instead of a separate MLP and an add. Only
  // where the checkpoint stores it as it stores the experts.
  const bool stack_shared =
      moe.num_shared_experts == 1 && loader.fusions().shared_expert &&
      loader.can_load_stacked(experts + 1, gate_up_modules, {intermediate, intermediate}, hidden,
                              WeightRole::ExpertGateUp, TpSplit::Column) &&
      loader.can_load_stacked(experts + 1, down_modules, {hidden}, intermediate, WeightRole::ExpertDown, TpSplit::Row);
  const int64_t stacked = experts + (stack_shared ? 1 : 0);
  LinearWeight gate_up = loader.load_linear_stacked(stacked, gate_up_modules, {intermediate, intermediate}, hidden,
                                                    WeightRole::ExpertGateUp, TpSplit::Column);
  LinearWeight down =
      loader.load_linear_stacked(stacked, down_modules, {hidden}, intermediate, WeightRole::ExpertDown, TpSplit::Row);
  experts_.gate_up = gate_up.dense;
  experts_.gate_up_fp8 = gate_up.fp8;
  experts_.down = down.dense;
  experts_.down_fp8 = down.fp8;
  experts_.gate_up_int4 = gate_up.int4;
  experts_.down_int4 = down.int4;
  experts_.gate_up_fp4 = gate_up.fp4;
  experts_.down_fp4 = down.fp4;
  experts_.shared = stack_shared ? 1 : 0;
  router_params_.shared_slots = experts_.shared;
  if (moe.num_shared_experts > 0 && !stack_shared)
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
