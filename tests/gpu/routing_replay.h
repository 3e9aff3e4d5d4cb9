// Routing record and replay for comparing the CUDA model with the CPU oracle (and, for the FP8
// models, e4m3 rounding near-ties: quantization_replay.h).
//
// DeepSeek sparse attention's indexer choice (dsa_top_k) is replayed the same way: the GPU
// scores bf16 keys, so positions near the top_k-th score may trade places; the oracle adopts
// the GPU's positions and measures how far below its own cut the adopted ones score.
//
// MoE routing is a discrete choice: when two experts' selection scores are within the
// BF16 rounding of the router input, the CUDA backend may legitimately pick the other
// one, and that token's hidden state then differs by far more than rounding. Comparing
// logits across such a flip says nothing about the kernels. So the CUDA backend records
// every routing decision, and the CPU oracle replays it (recomputing the expert weights
// in float32 from its own router logits) while measuring how far each replayed choice
// is from its own optimum. A test then asserts (1) logits agree to BF16 precision under
// the same routing and (2) every flip is a near-tie of the float32 scores.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <deque>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "bf16_activations_cpu_backend.h"
#include "backend/cuda/cuda_backend.h"
#include "core/error.h"
#include "support/call_depth.h"
#include "backend/cpu/fp8_linear.h"
#include "support/quantization_replay.h"

namespace rackserve::testing {

using RoutingLog = std::deque<std::vector<int32_t>>;  // one [tokens * slots] entry per moe_route call

// What the CUDA backend decided during a run, for the oracle to replay.
struct Recording {
  RoutingLog routing;
  QuantizationLog quantizations;  // every quantized activation the model asked for, in order
  std::deque<std::vector<int32_t>> key_choices;  // one [tokens * top_k] entry per dsa_top_k call
};

class RecordingCudaBackend : public CudaBackend {
 public:
  using CudaBackend::CudaBackend;
  // Every decision is read back on the host as it happens: nothing can be captured.
  bool supports_step_graphs() const override { return false; }

  QuantizedActivation quantize_fp8(const Tensor& x, const Fp8ActivationLayout& layout) override {
    return recorded(outermost([&] { return CudaBackend::quantize_fp8(x, layout); }));
  }
  NormedActivation rms_norm_fp8(const Tensor& x, const Tensor& weight, float eps,
                                const Fp8ActivationLayout& layout) override {
    NormedActivation out = outermost([&] { return CudaBackend::rms_norm_fp8(x, weight, eps, layout); });
    recorded(out.fp8);
    return out;
  }
  NormedActivation add_rms_norm_fp8(const Tensor& residual, const Tensor& x, const Tensor& weight, float eps,
                                    const Fp8ActivationLayout& layout) override {
    NormedActivation out = outermost([&] { return CudaBackend::add_rms_norm_fp8(residual, x, weight, eps, layout); });
    recorded(out.fp8);
    return out;
  }
  QuantizedActivation silu_mul_fp8(const Tensor& gate_up, const Fp8ActivationLayout& layout) override {
    return recorded(outermost([&] { return CudaBackend::silu_mul_fp8(gate_up, layout); }));
  }

  MoeRouting moe_route(const Tensor& router_logits, const Tensor& score_correction_bias,
                       const MoeRouterParams& params) override {
    MoeRouting routing = CudaBackend::moe_route(router_logits, score_correction_bias, params);
    std::vector<float> ids = download_f32(routing.expert_ids);  // exact: small integers
    log.routing.emplace_back(ids.begin(), ids.end());
    return routing;
  }

  Tensor dsa_top_k(const DsaTopK& args) override {
    Tensor chosen = CudaBackend::dsa_top_k(args);
    std::vector<float> positions = download_f32(chosen);  // exact: integers below 2^24
    log.key_choices.emplace_back(positions.begin(), positions.end());
    return chosen;
  }

  Recording log;

 private:
  // Runs one op, recording only the model's own calls (not an op's calls in turn).
  template <class Op>
  auto outermost(const Op& op) -> decltype(op()) {
    return run_nested(depth_, op);
  }
  const QuantizedActivation& recorded(const QuantizedActivation& out) {
    if (depth_ == 0) log.quantizations.push_back({download_f32(out.values), download_f32(out.scales)});
    return out;
  }

  int depth_ = 0;
};

struct KeyChoiceStats {
  int64_t rows = 0;             // (token, layer) choices replayed that ranked keys (context past top_k)
  int64_t flips = 0;            // ... whose position set differs from the oracle's own
  double worst_deficit = 0.0;   // max over flips of (own cut - lowest adopted score) / the row's largest |score|
  std::set<int64_t> flipped_rows;  // token rows (within their call) whose choice was adopted from the GPU
};

struct ReplayStats {
  int64_t decisions = 0;        // (token, layer) routing decisions replayed
  int64_t flips = 0;            // ... whose expert set differs from the oracle's own choice
  double worst_deficit = 0.0;   // max over flips of (own best selection sum - replayed selection sum)
  std::set<int64_t> flipped_rows;  // token rows (within their call) with a flip in any layer
  std::string worst_flip;          // the worst flip's call, row, expert sets and scores
};

// `bf16_activations`: see Bf16ActivationsCpuBackend (the FP8 models need it; the BF16 models
// are compared with the float32 oracle).
class ReplayingCpuBackend : public Bf16ActivationsCpuBackend {
 public:
  explicit ReplayingCpuBackend(bool bf16_activations = false) : Bf16ActivationsCpuBackend(bf16_activations) {}

  void replay(Recording log) {
    log_ = std::move(log);
    stats = {};
    quantization_stats = {};
    key_choice_stats = {};
    calls_ = quantizations_ = 0;
  }
  bool exhausted() const { return log_.routing.empty() && log_.quantizations.empty() && log_.key_choices.empty(); }

  // The oracle's own choice, then the recorded one adopted row by row; a row's deficit is how far
  // below the oracle's own top_k-th score the lowest adopted position scores (ops.h's formula,
  // recomputed here from the oracle's cache), relative to the row's largest score.
  Tensor dsa_top_k(const DsaTopK& args) override {
    Tensor own = Bf16ActivationsCpuBackend::dsa_top_k(args);
    RS_CHECK(!log_.key_choices.empty(), "key choice replay: more dsa_top_k calls than recorded");
    const std::vector<int32_t> replayed = std::move(log_.key_choices.front());
    log_.key_choices.pop_front();
    const int64_t tokens = args.batch->num_tokens, k = args.top_k;
    RS_CHECK(static_cast<int64_t>(replayed.size()) == tokens * k, "key choice replay: recorded {} for {} x {}",
             replayed.size(), tokens, k);
    const cpu::PagedSequences sequences(*args.batch, args.cache_layer.dim(0));
    const int64_t heads = args.q.dim(1), width = args.q.dim(2);
    auto score = [&](int64_t t, int32_t j) {
      const int64_t slot = sequences.slot(sequences.sequence_of(t), j);
      const bool fp8 = args.cache_layer.dtype == DType::F8_E4M3;
      double total = 0.0;
      for (int64_t h = 0; h < heads; ++h) {
        double dot = 0.0;
        for (int64_t c = 0; c < width; ++c) {
          const double key = fp8 ? double(cpu::e4m3_table()[args.cache_layer.as<uint8_t>()[slot * width + c]]) *
                                       args.cache_scales.as<float>()[slot]
                                 : double(args.cache_layer.as<float>()[slot * width + c]);
          dot += double(args.q.as<float>()[(t * heads + h) * width + c]) * key;
        }
        total += double(args.head_weights.as<float>()[t * heads + h]) * args.head_scale *
                 std::max(dot * args.softmax_scale, 0.0);
      }
      return total;
    };
    int32_t* own_rows = own.as<int32_t>();
    for (int64_t t = 0; t < tokens; ++t) {
      int32_t* row = own_rows + t * k;
      const int32_t* adopted = replayed.data() + t * k;
      if (row[k - 1] == -1) {  // every key chosen: nothing was ranked, both sides must agree
        RS_CHECK(std::equal(row, row + k, adopted), "key choice replay: token {} chose differently without ranking", t);
        continue;
      }
      ++key_choice_stats.rows;
      const std::set<int32_t> own_set(row, row + k), adopted_set(adopted, adopted + k);
      if (own_set != adopted_set) {
        ++key_choice_stats.flips;
        key_choice_stats.flipped_rows.insert(t);
        double cut = INFINITY, lowest_adopted = INFINITY, largest = 0.0;
        for (int32_t j : own_set) cut = std::min(cut, score(t, j));
        for (int32_t j : adopted_set) {
          const double value = score(t, j);
          lowest_adopted = std::min(lowest_adopted, value);
          largest = std::max(largest, std::fabs(value));
        }
        for (int32_t j : own_set) largest = std::max(largest, std::fabs(score(t, j)));
        key_choice_stats.worst_deficit =
            std::max(key_choice_stats.worst_deficit, std::max(0.0, cut - lowest_adopted) / std::max(largest, 1e-30));
      }
      std::copy(adopted, adopted + k, row);
    }
    return own;
  }

  // Every quantization of the oracle (its fused producers quantize through this one) against the
  // recorded one: near-ties adopted, anything else counted (quantization_replay.h).
  QuantizedActivation quantize_fp8(const Tensor& x, const Fp8ActivationLayout& layout) override {
    QuantizedActivation own = Bf16ActivationsCpuBackend::quantize_fp8(x, layout);
    RS_CHECK(!log_.quantizations.empty(), "quantization replay: more quantizations than recorded");
    RecordedQuantization recorded = std::move(log_.quantizations.front());
    log_.quantizations.pop_front();
    reconcile_quantization(x.as<float>(), own, recorded, quantizations_++, quantization_stats);
    return own;
  }

  MoeRouting moe_route(const Tensor& router_logits, const Tensor& score_correction_bias,
                       const MoeRouterParams& params) override {
    MoeRouting own = Bf16ActivationsCpuBackend::moe_route(router_logits, score_correction_bias, params);
    RS_CHECK(!log_.routing.empty(), "routing replay: more moe_route calls than recorded");
    std::vector<int32_t> replayed = std::move(log_.routing.front());
    log_.routing.pop_front();
    ++calls_;
    // Slots past the routed top_k (a stacked shared expert) are the same on both sides.
    const int64_t tokens = router_logits.dim(0), experts = router_logits.dim(1), k = params.top_k;
    const int64_t slots = own.expert_ids.dim(1);
    RS_CHECK(static_cast<int64_t>(replayed.size()) == tokens * slots, "routing replay: recorded {} ids for {} x {}",
             replayed.size(), tokens, slots);
    std::vector<float> scores(experts);
    for (int64_t t = 0; t < tokens; ++t) {
      const float* logits = router_logits.as<float>() + t * experts;
      score_row(logits, experts, params.sigmoid_scores, scores);
      auto selection = [&](int32_t e) {
        return scores[e] + (params.use_correction_bias ? score_correction_bias.as<float>()[e] : 0.0f);
      };
      int32_t* own_ids = own.expert_ids.as<int32_t>() + t * slots;
      const int32_t* new_ids = replayed.data() + t * slots;
      std::set<int32_t> own_set(own_ids, own_ids + k), new_set(new_ids, new_ids + k);
      ++stats.decisions;
      if (own_set != new_set) {
        ++stats.flips;
        const double gap = deficit(selection, experts, params, new_set);
        if (gap >= stats.worst_deficit) {
          stats.worst_deficit = gap;
          std::ostringstream text;
          text << "call " << calls_ << " row " << t << ": oracle experts";
          for (int32_t e : own_set) text << ' ' << e << '(' << selection(e) << ')';
          text << ", replayed";
          for (int32_t e : new_set) text << ' ' << e << '(' << selection(e) << ')';
          text << "; all selection scores";
          for (int64_t e = 0; e < experts; ++e) text << ' ' << selection(int32_t(e));
          stats.worst_flip = text.str();
        }
        stats.flipped_rows.insert(t);
      }
      float total = 0.0f;
      for (int64_t i = 0; i < k; ++i) total += scores[new_ids[i]];
      float* weights = own.weights.as<float>() + t * slots;
      for (int64_t i = 0; i < k; ++i) {
        own_ids[i] = new_ids[i];
        weights[i] = (params.normalize ? scores[new_ids[i]] / total : scores[new_ids[i]]) * params.scaling_factor;
      }
    }
    return own;
  }

  ReplayStats stats;
  QuantizationStats quantization_stats;
  KeyChoiceStats key_choice_stats;

 private:
  // How much worse `chosen` is than the oracle's optimum, in summed selection scores.
  // With group-limited routing a flip may swap whole groups: then the group scores (sum
  // of each group's two best) must be near-tied, and within the chosen groups the chosen
  // experts must be near the best of those groups.
  template <typename Selection>
  static double deficit(const Selection& selection, int64_t experts, const MoeRouterParams& params,
                        const std::set<int32_t>& chosen) {
    const int64_t per_group = experts / params.num_groups;
    std::vector<double> group_score(params.num_groups);
    for (int64_t g = 0; g < params.num_groups; ++g) {
      std::vector<double> members;
      for (int64_t e = g * per_group; e < (g + 1) * per_group; ++e) members.push_back(selection(int32_t(e)));
      std::sort(members.rbegin(), members.rend());
      group_score[g] = members[0] + (members.size() > 1 ? members[1] : 0.0);
    }
    // The oracle's groups are the best top_k_groups by score. The replayed decision's
    // groups are unknown beyond those its experts lie in: take the most favourable
    // completion (the one minimising the deficit). Tiny fixtures have few groups.
    RS_CHECK(params.num_groups <= 16, "routing replay: {} groups is too many to enumerate", params.num_groups);
    std::vector<double> sorted_scores = group_score;
    std::sort(sorted_scores.rbegin(), sorted_scores.rend());
    double best_groups_score = 0.0;
    for (int64_t i = 0; i < params.top_k_groups; ++i) best_groups_score += sorted_scores[i];
    uint32_t required = 0;
    for (int32_t e : chosen) required |= 1u << (e / per_group);
    double result = INFINITY;
    for (uint32_t mask = 0; mask < (1u << params.num_groups); ++mask) {
      if ((mask & required) != required || std::popcount(mask) != params.top_k_groups) continue;
      double group_deficit = best_groups_score;
      std::vector<double> eligible;
      for (int64_t g = 0; g < params.num_groups; ++g) {
        if (!(mask >> g & 1u)) continue;
        group_deficit -= group_score[g];
        for (int64_t e = g * per_group; e < (g + 1) * per_group; ++e) eligible.push_back(selection(int32_t(e)));
      }
      std::sort(eligible.rbegin(), eligible.rend());
      double expert_deficit = 0.0;
      for (size_t i = 0; i < chosen.size(); ++i) expert_deficit += eligible[i];
      for (int32_t e : chosen) expert_deficit -= selection(e);
      result = std::min(result, std::max(group_deficit, expert_deficit));
    }
    return result;
  }

  static void score_row(const float* logits, int64_t experts, bool sigmoid, std::vector<float>& scores) {
    if (sigmoid) {
      for (int64_t e = 0; e < experts; ++e) scores[e] = 1.0f / (1.0f + std::exp(-logits[e]));
      return;
    }
    float max_logit = *std::max_element(logits, logits + experts), total = 0.0f;
    for (int64_t e = 0; e < experts; ++e) total += scores[e] = std::exp(logits[e] - max_logit);
    for (float& score : scores) score /= total;
  }

  Recording log_;
  int64_t calls_ = 0;
  int64_t quantizations_ = 0;
};

}  // namespace rackserve::testing
