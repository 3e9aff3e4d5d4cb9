// Mixture-of-experts routing and expert evaluation on the CPU.
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/fp8_linear.h"
#include "core/error.h"

namespace rackserve {

namespace {

// Indices of the k largest values, highest first; ties keep the lower index.
std::vector<int64_t> top_k_indices(const std::vector<float>& values, int64_t k) {
  std::vector<int64_t> order(values.size());
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int64_t a, int64_t b) {
    return values[a] > values[b] || (values[a] == values[b] && a < b);
  });
  order.resize(k);
  return order;
}

}  // namespace

MoeRouting CpuBackend::moe_route(const Tensor& router_logits, const Tensor& score_correction_bias,
                                 const MoeRouterParams& params) {
  RS_CHECK(router_logits.rank() == 2 && router_logits.dtype == DType::F32, "router logits must be [T, experts] F32");
  const int64_t tokens = router_logits.dim(0), experts = router_logits.dim(1);
  RS_CHECK(params.top_k >= 1 && params.top_k <= experts, "top_k {} out of [1, {}]", params.top_k, experts);
  RS_CHECK(params.num_groups >= 1 && experts % params.num_groups == 0 && params.top_k_groups >= 1 &&
               params.top_k_groups <= params.num_groups,
           "bad expert groups: {} groups, {} chosen, {} experts", params.num_groups, params.top_k_groups, experts);
  RS_CHECK(!params.use_correction_bias || score_correction_bias.numel() == experts,
           "score correction bias has {} entries for {} experts", score_correction_bias.numel(), experts);
  const int64_t per_group = experts / params.num_groups;
  RS_CHECK(params.num_groups == 1 || per_group >= 2, "group-limited routing needs >= 2 experts per group");

  RS_CHECK(params.shared_slots >= 0, "shared_slots {} < 0", params.shared_slots);
  const int64_t slots = params.top_k + params.shared_slots;
  MoeRouting routing{allocate_step(DType::I32, {tokens, slots}), allocate_step(DType::F32, {tokens, slots})};
  std::vector<float> scores(experts), choice(experts), group_scores(params.num_groups);
  for (int64_t t = 0; t < tokens; ++t) {
    const float* logits = router_logits.as<float>() + t * experts;
    if (params.sigmoid_scores) {
      for (int64_t e = 0; e < experts; ++e) scores[e] = 1.0f / (1.0f + std::exp(-logits[e]));
    } else {
      float max_logit = *std::max_element(logits, logits + experts), total = 0.0f;
      for (int64_t e = 0; e < experts; ++e) total += scores[e] = std::exp(logits[e] - max_logit);
      for (float& score : scores) score /= total;
    }
    // The correction bias steers selection only; the weights come from the raw scores.
    for (int64_t e = 0; e < experts; ++e)
      choice[e] = scores[e] + (params.use_correction_bias ? score_correction_bias.as<float>()[e] : 0.0f);
    if (params.num_groups > 1) {
      // A group's score is the sum of its two best experts; experts outside the best
      // top_k_groups groups are excluded.
      for (int64_t g = 0; g < params.num_groups; ++g) {
        std::vector<float> members(choice.begin() + g * per_group, choice.begin() + (g + 1) * per_group);
        auto best = top_k_indices(members, 2);
        group_scores[g] = members[best[0]] + members[best[1]];
      }
      std::vector<bool> keep(params.num_groups, false);
      for (int64_t g : top_k_indices(group_scores, params.top_k_groups)) keep[g] = true;
      for (int64_t e = 0; e < experts; ++e)
        if (!keep[e / per_group]) choice[e] = -std::numeric_limits<float>::infinity();
    }
    auto chosen = top_k_indices(choice, params.top_k);
    float sum = 0.0f;
    for (int64_t k = 0; k < params.top_k; ++k) sum += scores[chosen[k]];
    for (int64_t k = 0; k < params.top_k; ++k) {
      float weight = scores[chosen[k]];
      if (params.normalize) weight /= sum + 1e-20f;
      routing.expert_ids.as<int32_t>()[t * slots + k] = static_cast<int32_t>(chosen[k]);
      routing.weights.as<float>()[t * slots + k] = weight * params.scaling_factor;
    }
    for (int64_t s = 0; s < params.shared_slots; ++s) {
      routing.expert_ids.as<int32_t>()[t * slots + params.top_k + s] = static_cast<int32_t>(experts + s);
      routing.weights.as<float>()[t * slots + params.top_k + s] = 1.0f;
    }
  }
  return routing;
}

namespace {

// Checks an INT4 expert weight's tensors (Int4Weight in ops.h); returns its [experts, out, in].
Shape check_int4_experts(const Int4Weight& w, const char* what) {
  RS_CHECK(w.packed.rank() == 3 && w.packed.dtype == DType::I32 && w.group > 0 && w.group % 8 == 0 &&
               w.in_features() % w.group == 0 && w.scales.dtype == DType::F32 &&
               w.scales.shape == Shape({w.packed.dim(0), w.packed.dim(1), w.in_features() / w.group}),
           "INT4 expert {}: packed {} {} and scales {} {} (group {}) do not fit together", what,
           dtype_name(w.packed.dtype), shape_string(w.packed.shape), dtype_name(w.scales.dtype),
           shape_string(w.scales.shape), w.group);
  return {w.packed.dim(0), w.out_features(), w.in_features()};
}

// out[r] = sum_c ((code(r, c) - 8) * scale(r, c / group)) * x[c] for the rows of `expert`
// (W4A16: the f32 weight as Int4Weight defines it, dotted with x in f32). `row` is scratch.
void int4_matvec(const Int4Weight& w, int64_t expert, const float* x, float* out, std::vector<float>& row) {
  const int64_t rows = w.out_features(), cols = w.in_features(), groups = cols / w.group;
  row.resize(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    const auto* words = reinterpret_cast<const uint32_t*>(w.packed.as<int32_t>()) + (expert * rows + r) * (cols / 8);
    const float* scales = w.scales.as<float>() + (expert * rows + r) * groups;
    for (int64_t c = 0; c < cols; ++c)
      row[c] = static_cast<float>(static_cast<int>((words[c / 8] >> (4 * (c % 8))) & 0xfu) - 8) * scales[c / w.group];
    out[r] = cpu::dot(row.data(), x, cols);
  }
}

// Checks an NVFP4 expert weight's tensors (Fp4Weight in ops.h); returns its [experts, out, in].
Shape check_fp4_experts(const Fp4Weight& w, const char* what) {
  const Shape shape{w.packed.dim(0), w.out_features(), w.in_features()};
  RS_CHECK(w.packed.rank() == 3 && w.packed.dtype == DType::U8 && w.block_scales.dtype == DType::F8_E4M3 &&
               w.block_scales.shape == Shape({shape[0], shape[1], shape[2] / Fp4Weight::kGroup}) &&
               w.row_scales.dtype == DType::F32 && w.row_scales.shape == Shape({shape[0], shape[1]}),
           "NVFP4 expert {}: packed {} {}, block scales {} {} and row scales {} {} do not fit together", what,
           dtype_name(w.packed.dtype), shape_string(w.packed.shape), dtype_name(w.block_scales.dtype),
           shape_string(w.block_scales.shape), dtype_name(w.row_scales.dtype), shape_string(w.row_scales.shape));
  return shape;
}

// The same for NVFP4: weight = e2m1(code) * e4m3(block scale) * row scale, in f32.
void fp4_matvec(const Fp4Weight& w, int64_t expert, const float* x, float* out, std::vector<float>& row) {
  const int64_t rows = w.out_features(), cols = w.in_features();
  const float* e4m3 = cpu::e4m3_table();
  row.resize(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* bytes = w.packed.as<uint8_t>() + (expert * rows + r) * (cols / 2);
    const uint8_t* blocks = w.block_scales.as<uint8_t>() + (expert * rows + r) * (cols / Fp4Weight::kGroup);
    const float row_scale = w.row_scales.as<float>()[expert * rows + r];
    for (int64_t c = 0; c < cols; ++c)
      row[c] = e2m1_to_f32(c % 2 == 0 ? bytes[c / 2] & 0xfu : bytes[c / 2] >> 4) * e4m3[blocks[c / Fp4Weight::kGroup]] *
               row_scale;
    out[r] = cpu::dot(row.data(), x, cols);
  }
}

// Checks the expert weights (dense, FP8, INT4 or NVFP4; gate_up and down alike) against x
// [tokens, hidden] and the routing; returns the intermediate width.
int64_t check_experts(int64_t tokens, int64_t hidden, const MoeRouting& routing, const ExpertWeights& experts) {
  RS_CHECK(routing.expert_ids.rank() == 2 && routing.expert_ids.dim(0) == tokens &&
               routing.weights.numel() == routing.expert_ids.numel(),
           "moe routing {} does not match {} tokens", shape_string(routing.expert_ids.shape), tokens);
  const bool fp8 = experts.gate_up_fp8.has_value(), int4 = experts.gate_up_int4.has_value(),
             fp4 = experts.gate_up_fp4.has_value();
  RS_CHECK(fp8 == experts.down_fp8.has_value() && int4 == experts.down_int4.has_value() &&
               fp4 == experts.down_fp4.has_value() && int(fp8) + int(int4) + int(fp4) <= 1,
           "expert gate_up and down must both be FP8, both INT4, both NVFP4 or both dense");
  if (fp8) {
    cpu::check_quantized_weight(*experts.gate_up_fp8, 3);
    cpu::check_quantized_weight(*experts.down_fp8, 3);
  }
  const Shape gate_up_shape = fp8    ? experts.gate_up_fp8->values.shape
                              : int4 ? check_int4_experts(*experts.gate_up_int4, "gate_up")
                              : fp4  ? check_fp4_experts(*experts.gate_up_fp4, "gate_up")
                                     : experts.gate_up.shape;
  const Shape down_shape = fp8    ? experts.down_fp8->values.shape
                           : int4 ? check_int4_experts(*experts.down_int4, "down")
                           : fp4  ? check_fp4_experts(*experts.down_fp4, "down")
                                  : experts.down.shape;
  RS_CHECK(gate_up_shape.size() == 3 && gate_up_shape[2] == hidden, "expert gate_up {} does not take hidden {}",
           shape_string(gate_up_shape), hidden);
  const int64_t num_experts = gate_up_shape[0], intermediate = gate_up_shape[1] / 2;
  RS_CHECK(down_shape == Shape({num_experts, hidden, intermediate}), "expert down {} is not [{}, {}, {}]",
           shape_string(down_shape), num_experts, hidden, intermediate);
  for (int64_t item = 0; item < routing.expert_ids.numel(); ++item) {
    int32_t expert = routing.expert_ids.as<int32_t>()[item];
    RS_CHECK(expert >= 0 && expert < num_experts, "expert id {} out of [0, {})", expert, num_experts);
  }
  return intermediate;
}

}  // namespace

// One (token, slot) pair per work item: `expert_output(item, target, scratch)` writes the chosen
// expert's down(silu(gate(x)) * up(x)) for the pair into target [hidden]; the per-token sum of the
// weighted contributions runs in slot order afterwards.
Tensor CpuBackend::sum_expert_outputs(int64_t tokens, int64_t hidden, const MoeRouting& routing,
                                      const ExpertOutput& expert_output) {
  const int64_t top_k = routing.expert_ids.dim(1);
  Tensor out = allocate_step(DType::F32, {tokens, hidden});
  std::vector<float> contributions(static_cast<size_t>(tokens * top_k * hidden));
  pool_.parallel_for(tokens * top_k, 1, [&](int64_t begin, int64_t end) {
    ExpertScratch scratch;
    for (int64_t item = begin; item < end; ++item) {
      float* target = contributions.data() + item * hidden;
      expert_output(item, target, scratch);
      float weight = routing.weights.as<float>()[item];
      for (int64_t i = 0; i < hidden; ++i) target[i] *= weight;
    }
  });
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t k = 0; k < top_k; ++k)
      for (int64_t i = 0; i < hidden; ++i) out.as<float>()[t * hidden + i] += contributions[(t * top_k + k) * hidden + i];
  return out;
}

Tensor CpuBackend::moe_experts(const Tensor& x, const MoeRouting& routing, const ExpertWeights& experts) {
  RS_CHECK(x.rank() == 2, "moe input must be [T, hidden]");
  if (experts.gate_up_fp8)  // x quantized once per token, then the FP8 experts below
    return moe_experts(quantize_fp8(x, Fp8ActivationLayout::of(*experts.gate_up_fp8)), routing, experts);
  const int64_t tokens = x.dim(0), hidden = x.dim(1), top_k = routing.expert_ids.dim(1);
  const int64_t intermediate = check_experts(tokens, hidden, routing, experts);
  if (experts.gate_up_int4 || experts.gate_up_fp4)  // W4A16: the weights expanded row by row
    return sum_expert_outputs(tokens, hidden, routing, [&](int64_t item, float* target, ExpertScratch& scratch) {
      scratch.gate_up.resize(2 * intermediate);
      scratch.activated.resize(intermediate);
      const int32_t expert = routing.expert_ids.as<int32_t>()[item];
      const float* token = x.as<float>() + (item / top_k) * hidden;
      if (experts.gate_up_int4)
        int4_matvec(*experts.gate_up_int4, expert, token, scratch.gate_up.data(), scratch.matvec);
      else
        fp4_matvec(*experts.gate_up_fp4, expert, token, scratch.gate_up.data(), scratch.matvec);
      cpu::silu_mul_row(scratch.gate_up.data(), intermediate, scratch.activated.data());
      if (experts.down_int4)
        int4_matvec(*experts.down_int4, expert, scratch.activated.data(), target, scratch.matvec);
      else
        fp4_matvec(*experts.down_fp4, expert, scratch.activated.data(), target, scratch.matvec);
    });
  return sum_expert_outputs(tokens, hidden, routing, [&](int64_t item, float* target, ExpertScratch& scratch) {
    scratch.gate_up.resize(2 * intermediate);
    scratch.activated.resize(intermediate);
    const int32_t expert = routing.expert_ids.as<int32_t>()[item];
    cpu::matvec(experts.gate_up.as<float>() + expert * 2 * intermediate * hidden,
                x.as<float>() + (item / top_k) * hidden, scratch.gate_up.data(), 2 * intermediate, hidden);
    cpu::silu_mul_row(scratch.gate_up.data(), intermediate, scratch.activated.data());
    cpu::matvec(experts.down.as<float>() + expert * hidden * intermediate, scratch.activated.data(), target, hidden,
                intermediate);
  });
}

Tensor CpuBackend::moe_experts(const QuantizedActivation& x, const MoeRouting& routing, const ExpertWeights& experts) {
  check_quantized_activation("moe_experts", x);
  RS_CHECK(experts.gate_up_fp8.has_value(), "moe_experts on quantized activations needs FP8 experts");
  const int64_t tokens = x.rows(), hidden = x.width(), top_k = routing.expert_ids.dim(1);
  const int64_t intermediate = check_experts(tokens, hidden, routing, experts);
  check_layout_matches("moe_experts", x.layout, *experts.gate_up_fp8);
  const int64_t scales_per_token = x.layout.scaling == Fp8Scaling::Block ? hidden / x.layout.group : 1;
  return sum_expert_outputs(tokens, hidden, routing, [&](int64_t item, float* target, ExpertScratch& scratch) {
    scratch.gate_up.resize(2 * intermediate);
    scratch.activated.resize(intermediate);
    const int32_t expert = routing.expert_ids.as<int32_t>()[item];
    const int64_t t = item / top_k;
    cpu::fp8_matvec_quantized(*experts.gate_up_fp8, expert, x.values.as<uint8_t>() + t * hidden,
                              x.scales.as<float>() + t * scales_per_token, scratch.gate_up.data(), scratch.matvec);
    cpu::silu_mul_row(scratch.gate_up.data(), intermediate, scratch.activated.data());
    // The activation is quantized per pair from its f32 value, as fp8_matvec does.
    cpu::fp8_matvec(*experts.down_fp8, expert, scratch.activated.data(), target, scratch.matvec);
  });
}

}  // namespace rackserve
