// Where the model quantizes its activations (models/layers/activation.h): every FP8 linear fed
// by a norm or by SiLU-and-mul must take the copy its producer quantized in the same op
// (rms_norm_fp8 / add_rms_norm_fp8 / silu_mul_fp8), one copy serving q_a / q_proj and
// kv_a_proj_with_mqa, and the routed experts taking the post-attention norm's; only o_proj
// (fed by attention) quantizes its own input. A BF16 model, and an FP8 one loaded with
// --dequantize-fp8, must call no FP8 op at all. With query compression q_a_proj and
// kv_a_proj_with_mqa run as one stacked product (linear_fp8_split). Counted on the CPU oracle,
// per forward step.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "backend/cpu/cpu_backend.h"
#include "engine/sequence_runner.h"
#include "models/model.h"
#include "support/fixtures.h"

namespace rackserve {
namespace {

struct OpCounts {
  int64_t rms_norm_fp8 = 0, add_rms_norm_fp8 = 0, silu_mul_fp8 = 0, quantize_fp8 = 0;
  int64_t linear_fp8 = 0, linear_fp8_split = 0, linear_split = 0, moe_experts_on_tensor = 0, moe_experts_quantized = 0;
  int64_t moe_slots = 0;  // routing slots per token of the last moe_experts call
};

// Counts the calls the model makes (the oracle's producers call quantize_fp8 themselves: those
// are not counted).
class CountingCpuBackend : public CpuBackend {
 public:
  CountingCpuBackend() : CpuBackend(2) {}
  OpCounts counts;

  QuantizedActivation quantize_fp8(const Tensor& x, const Fp8ActivationLayout& layout) override {
    if (!inside_producer_) ++counts.quantize_fp8;
    return CpuBackend::quantize_fp8(x, layout);
  }
  NormedActivation rms_norm_fp8(const Tensor& x, const Tensor& weight, float eps,
                                const Fp8ActivationLayout& layout) override {
    ++counts.rms_norm_fp8;
    const Producer inside(*this);
    return CpuBackend::rms_norm_fp8(x, weight, eps, layout);
  }
  NormedActivation add_rms_norm_fp8(const Tensor& residual, const Tensor& x, const Tensor& weight, float eps,
                                    const Fp8ActivationLayout& layout) override {
    ++counts.add_rms_norm_fp8;
    const Producer inside(*this);
    return CpuBackend::add_rms_norm_fp8(residual, x, weight, eps, layout);
  }
  QuantizedActivation silu_mul_fp8(const Tensor& gate_up, const Fp8ActivationLayout& layout) override {
    ++counts.silu_mul_fp8;
    const Producer inside(*this);
    return CpuBackend::silu_mul_fp8(gate_up, layout);
  }
  using CpuBackend::linear_fp8;
  Tensor linear_fp8(const QuantizedActivation& x, const QuantizedWeight& w) override {
    ++counts.linear_fp8;
    return CpuBackend::linear_fp8(x, w);
  }
  std::pair<Tensor, Tensor> linear_split(const Tensor& x, const Tensor& weight, int64_t first_rows) override {
    ++counts.linear_split;
    return CpuBackend::linear_split(x, weight, first_rows);
  }
  // Counted, then run as the default does: two linear_fp8 calls (also counted).
  std::pair<Tensor, Tensor> linear_fp8_split(const QuantizedActivation& x, const QuantizedWeight& w,
                                             int64_t first_rows) override {
    ++counts.linear_fp8_split;
    return CpuBackend::linear_fp8_split(x, w, first_rows);
  }
  Tensor moe_experts(const Tensor& x, const MoeRouting& routing, const ExpertWeights& experts) override {
    ++counts.moe_experts_on_tensor;
    return CpuBackend::moe_experts(x, routing, experts);
  }
  Tensor moe_experts(const QuantizedActivation& x, const MoeRouting& routing, const ExpertWeights& experts) override {
    ++counts.moe_experts_quantized;
    counts.moe_slots = routing.expert_ids.dim(1);
    return CpuBackend::moe_experts(x, routing, experts);
  }

 private:
  struct Producer {  // marks a fused producer's own calls for the scope of one op
    explicit Producer(CountingCpuBackend& backend) : backend(backend) { backend.inside_producer_ = true; }
    ~Producer() { backend.inside_producer_ = false; }
    CountingCpuBackend& backend;
  };
  bool inside_producer_ = false;
};

// One forward step over a short prompt; the counts of that step.
OpCounts count_one_step(CountingCpuBackend& backend, CausalLM& model) {
  const std::vector<int32_t> tokens = {1, 5, 9, 2};
  SequenceRunner runner(model, static_cast<int64_t>(tokens.size()));
  backend.counts = {};
  runner.append(tokens, /*all_logits=*/false);
  return backend.counts;
}

// Stacked two-part products per layer with the default fusions: MLA's q_a + kv_a (with query
// compression), GQA's k + v.
int64_t stacked_linears_per_layer(const ModelConfig& c) { return c.is_mla() ? (c.mla.q_lora_rank > 0 ? 1 : 0) : 1; }

class Fp8FusionWiring : public ::testing::TestWithParam<std::string> {};

TEST_P(Fp8FusionWiring, NormAndSiluFeedFp8LinearsTheirFusedCopies) {
  CountingCpuBackend backend;
  auto model = load_model(testing::fixture_directory(GetParam()), backend);
  const ModelConfig& c = model->config();
  const OpCounts counts = count_one_step(backend, *model);

  int64_t moe_layers = 0, dense_layers = 0;
  for (int64_t i = 0; i < c.num_layers; ++i) (c.is_moe_layer(i) ? moe_layers : dense_layers) += 1;
  // One shared expert runs stacked with the routed experts (MoeBlock); more run as their own MLP.
  const int64_t shared = c.moe.num_shared_experts > 1 ? moe_layers : 0;
  const bool q_lora = c.mla.q_lora_rank > 0;
  // The first input norm, plus q_a_layernorm per layer with query compression.
  EXPECT_EQ(counts.rms_norm_fp8, 1 + (q_lora ? c.num_layers : 0));
  // Post-attention norms, and the next layer's input norm (the final norm feeds the dense lm_head).
  EXPECT_EQ(counts.add_rms_norm_fp8, 2 * c.num_layers - 1);
  EXPECT_EQ(counts.silu_mul_fp8, dense_layers + shared);
  // Per layer: q_a + q_b (or q_proj), kv_a, o_proj, then gate_up + down of the dense MLP or the
  // shared experts. Only o_proj's input (attention output) is quantized on its own. With query
  // compression q_a and kv_a are one stacked weight, run by one linear_fp8_split (whose CPU
  // form makes the two linear_fp8 calls counted above).
  EXPECT_EQ(counts.linear_fp8, c.num_layers * ((q_lora ? 2 : 1) + 2) + 2 * (dense_layers + shared));
  EXPECT_EQ(counts.linear_fp8_split, q_lora ? c.num_layers : 0);
  EXPECT_EQ(counts.quantize_fp8, c.num_layers);
  EXPECT_EQ(counts.moe_experts_quantized, moe_layers);
  // The stacked shared expert is one more slot of every token.
  EXPECT_EQ(counts.moe_slots, c.moe.experts_per_token + (c.moe.num_shared_experts == 1 ? 1 : 0));
  EXPECT_EQ(counts.moe_experts_on_tensor, 0);
}

TEST_P(Fp8FusionWiring, DequantizedWeightsCallNoFp8Op) {
  CountingCpuBackend backend;
  LoadOptions options;
  options.fp8_weights = Fp8Weights::Dequantize;
  auto model = load_model(testing::fixture_directory(GetParam()), backend, options);
  const OpCounts counts = count_one_step(backend, *model);
  EXPECT_EQ(counts.rms_norm_fp8 + counts.add_rms_norm_fp8 + counts.silu_mul_fp8 + counts.quantize_fp8 +
                counts.linear_fp8 + counts.moe_experts_quantized,
            0);
  // Dequantized, q_a and kv_a (or k and v) still stack (dense).
  EXPECT_EQ(counts.linear_split, stacked_linears_per_layer(model->config()) * model->config().num_layers);
}

// LoadOptions::fusions off (--no-fuse-qkv-a, --no-fuse-shared-expert): q_a and kv_a run as
// two linears and a lone shared expert as its own MLP; the logits stay those of the fused
// model up to the summation order of the shared expert's output.
TEST_P(Fp8FusionWiring, FusionsOffLoadEveryModuleOnItsOwn) {
  const std::vector<int32_t> tokens = {1, 5, 9, 2};
  CountingCpuBackend fused_backend, unfused_backend;
  LoadOptions unfused_options;
  unfused_options.fusions = {.qkv_a = false, .shared_expert = false};
  auto fused = load_model(testing::fixture_directory(GetParam()), fused_backend);
  auto unfused = load_model(testing::fixture_directory(GetParam()), unfused_backend, unfused_options);
  const ModelConfig& c = unfused->config();
  const OpCounts counts = count_one_step(unfused_backend, *unfused);
  int64_t moe_layers = 0;
  for (int64_t i = 0; i < c.num_layers; ++i) moe_layers += c.is_moe_layer(i) ? 1 : 0;
  EXPECT_EQ(counts.linear_fp8_split, 0);
  if (moe_layers > 0) EXPECT_EQ(counts.moe_slots, c.moe.experts_per_token);
  EXPECT_EQ(counts.silu_mul_fp8, c.num_layers - moe_layers + (c.moe.num_shared_experts > 0 ? moe_layers : 0));

  SequenceRunner a(*fused, static_cast<int64_t>(tokens.size())), b(*unfused, static_cast<int64_t>(tokens.size()));
  const auto fused_logits = a.append(tokens, /*all_logits=*/true);
  const auto unfused_logits = b.append(tokens, /*all_logits=*/true);
  ASSERT_EQ(fused_logits.size(), unfused_logits.size());
  for (size_t position = 0; position < fused_logits.size(); ++position)
    for (size_t v = 0; v < fused_logits[position].size(); ++v)
      ASSERT_NEAR(fused_logits[position][v], unfused_logits[position][v], 1e-3) << "position " << position << " id " << v;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Fp8FusionWiring,
                         ::testing::ValuesIn(testing::fixture_names(testing::FixtureKind::Fp8)),
                         [](const auto& info) { return testing::fixture_test_name(info.param); });

TEST(Bf16FusionWiring, Bf16ModelsCallNoFp8Op) {
  for (const std::string& name : testing::fixture_names(testing::FixtureKind::Bf16)) {
    CountingCpuBackend backend;
    auto model = load_model(testing::fixture_directory(name), backend);
    const OpCounts counts = count_one_step(backend, *model);
    EXPECT_EQ(counts.rms_norm_fp8 + counts.add_rms_norm_fp8 + counts.silu_mul_fp8 + counts.quantize_fp8 +
                  counts.linear_fp8 + counts.moe_experts_quantized,
              0)
        << name;
    EXPECT_EQ(counts.linear_split, stacked_linears_per_layer(model->config()) * model->config().num_layers) << name;
  }
}

}  // namespace
}  // namespace rackserve
