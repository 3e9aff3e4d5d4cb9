// The CUDA fused FP8 routed experts (kernels/moe/moe_experts_fp8.cu through
// CudaBackend::moe_experts) against the CPU backend's FP8 moe_experts, the contract
// (backend/cpu/moe_ops.cpp + fp8_linear.h). Fresh random e4m3 experts and inputs each run
// (seed printed), both scale layouts, on the per-GPU expert shapes of DeepSeek-V3 (TP 4, 8),
// GLM-4.7 (channel: its FP8 format) and MiniMax-M2, for 1, 7, 32, 64 and 300 tokens with skewed
// routing (hot experts with several align blocks, cold ones, unused ones), up to 64 tokens also
// on the small-M path, then every candidate config on one small shape. Outputs come from NaN-poisoned step memory; an all-zero token must
// give exact zeros; a second run must be bit-identical.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include "backend/backend.h"
#include "backend/cpu/fp8_linear.h"
#include "backend/cuda/cuda_backend.h"
#include "core/dtype.h"
#include "rackserve/kernels/moe_fp8_params.h"
#include "support/test_random.h"

namespace rackserve {
namespace {

using testing::run_seed;
using testing::parallel_for;
using testing::SplitMix;

constexpr int64_t kBlock = 128;  // weight_block_size [128, 128]

// The bound, per output element y[t, h] (f32 on both sides):
//   |gpu - cpu| <= 2^-12 M[t, h] + sum_k w[t, k] (A[pair, h] + 4 F[pair, h]) + 2^-20 |cpu|
// Both backends quantize x to identical e4m3 codes and scales (bf16 inputs, the same IEEE
// divisions and rounding), and every e4m3 product is exact in f32. What differs:
//   - the sums of both GEMMs (order; the FP8 tensor core's accumulation, modelled as in
//     linear_fp8_cuda_test: one MMA per f32 add stays within 2^-15.5 of its sum of |products|,
//     2^-12 leaves ~10x). For down that is 2^-12 M, M = sum over slots and j of
//     w |D[h, j] s_D| |q_j s_a| (the magnitude of the down product, oracle's codes q);
//   - so the f32 activation a_j = silu(g_j) up_j differs by at most
//     da_j = 2^-12 (1.1 |up_j| M_gate_j + |silu(g_j)| M_up_j) (silu' <= 1.1), and its quantized
//     value by da_j, which reaches the output as A = sum_j |D[h, j] s_D| da_j;
//   - where a_j sits within da_j of an e4m3 rounding midpoint, the two sides round to
//     neighbouring codes: one e4m3 ulp of q_j (2^(floor(log2 |q_j|) - 3), 2^-9 below the normal
//     range) times s_a. That is rare (da_j is ~1e-3 of a code step at worst), so up to 4 such
//     flips per pair are allowed, each of the largest size F = max_j |D[h, j] s_D| ulp(q_j) s_a;
//   - the slot sum and scales' products: a few f32 roundings, 2^-20 |cpu|.
// The cosine over all outputs (>= 0.99999) catches anything systematic; a wrong scale, row,
// block, pair or slot moves elements by far more than the bound.
constexpr double kAccumulation = 1.0 / 4096;
constexpr double kFlips = 4;
constexpr double kRounding = 1.0 / (1 << 20);
constexpr double kMinCosine = 0.99999;

struct Problem {
  std::string name;
  int64_t experts, top_k, hidden, inter;
};

// One stacked FP8 expert matrix [experts, rows, cols]: random codes of magnitude 2^-4..2^3.75
// (exponent fields 3..10, never NaN) and random scales per 128x128 tile (Block) or per row
// (Channel, bf16-representable), scaled so that each product has outputs of order 1.
struct HostMatrix {
  int64_t experts = 0, rows = 0, cols = 0;
  Fp8Scaling scaling = Fp8Scaling::Block;
  std::vector<uint8_t> codes;
  std::vector<float> scales;

  int64_t scale_rows() const { return scaling == Fp8Scaling::Block ? (rows + kBlock - 1) / kBlock : rows; }
  int64_t scale_cols() const { return scaling == Fp8Scaling::Block ? cols / kBlock : 1; }
  float scale(int64_t e, int64_t r, int64_t c) const {
    return scaling == Fp8Scaling::Block ? scales[(e * scale_rows() + r / kBlock) * scale_cols() + c / kBlock]
                                        : scales[e * rows + r];
  }
  QuantizedWeight view() {
    QuantizedWeight w;
    w.scaling = scaling;
    w.block_out = w.block_in = scaling == Fp8Scaling::Block ? kBlock : 0;
    w.values = Tensor{codes.data(), DType::F8_E4M3, {experts, rows, cols}, Device{}};
    w.scales = Tensor{scales.data(), DType::F32,
                      scaling == Fp8Scaling::Block ? Shape{experts, scale_rows(), scale_cols()} : Shape{experts, rows},
                      Device{}};
    return w;
  }
};

HostMatrix random_matrix(int64_t experts, int64_t rows, int64_t cols, Fp8Scaling scaling, uint64_t seed) {
  HostMatrix m;
  m.experts = experts, m.rows = rows, m.cols = cols, m.scaling = scaling;
  m.codes.resize(static_cast<size_t>(experts * rows * cols));
  m.scales.resize(static_cast<size_t>(experts * m.scale_rows() * m.scale_cols()));
  const float base = 1.0f / (4.0f * std::sqrt(static_cast<float>(cols)));
  parallel_for(experts, [&](int64_t e) {
    SplitMix rng{seed * 0x2545f4914f6cdd1dull + static_cast<uint64_t>(e)};
    uint8_t* codes = m.codes.data() + e * rows * cols;
    for (int64_t i = 0; i < rows * cols; i += 8) {
      const uint64_t bits = rng.next();
      for (int64_t b = 0; b < 8 && i + b < rows * cols; ++b) {
        const uint32_t byte = static_cast<uint32_t>(bits >> (8 * b));
        const uint32_t exponent = 3 + (byte >> 1) % 8;  // 3..10
        codes[i + b] = static_cast<uint8_t>((byte & 0x80u) | (exponent << 3) | ((byte >> 4) & 7u));
      }
    }
    for (int64_t s = 0; s < m.scale_rows() * m.scale_cols(); ++s)
      m.scales[e * m.scale_rows() * m.scale_cols() + s] = bf16_to_f32(f32_to_bf16(base * std::exp2(2.0f * rng.uniform() - 1.0f)));
  });
  return m;
}

struct Experts {
  HostMatrix gate_up, down;
  QuantizedWeight cpu_gate_up, cpu_down, gpu_gate_up, gpu_down;
};

// top_k distinct experts per token: with probability 1/2 one of 4 hot experts, else any of
// the first experts - 4 (the last 4 are never chosen).
std::vector<int32_t> skewed_routing(int64_t tokens, const Problem& s, std::mt19937_64& rng) {
  std::vector<int32_t> ids(static_cast<size_t>(tokens * s.top_k));
  std::uniform_int_distribution<int32_t> hot(0, 3), any(0, static_cast<int32_t>(s.experts - 5));
  std::bernoulli_distribution coin(0.5);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t k = 0; k < s.top_k; ++k) {
      int32_t expert;
      do expert = coin(rng) ? hot(rng) : any(rng);
      while (std::find(ids.begin() + t * s.top_k, ids.begin() + t * s.top_k + k, expert) != ids.begin() + t * s.top_k + k);
      ids[t * s.top_k + k] = expert;
    }
  return ids;
}

struct Inputs {
  int64_t tokens = 0;
  std::vector<float> x, weights;
  std::vector<int32_t> ids;
  std::vector<float> expected;                      // the CPU backend's output
  std::vector<int64_t> checked;                     // tokens whose elements are bounded
  std::vector<double> allowed;                      // [checked.size(), hidden] (bound minus the 2^-20 |cpu| term)
};

// Normal activations with channel magnitudes spread over ~e^±1, rounded to bf16; token 1 all
// zeros (the min_scale floor) when tokens > 1.
std::vector<float> random_activations(int64_t tokens, int64_t hidden, std::mt19937_64& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> channel(static_cast<size_t>(hidden));
  for (float& c : channel) c = std::exp(0.5f * normal(rng));
  std::vector<float> x(static_cast<size_t>(tokens * hidden));
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t c = 0; c < hidden; ++c) x[t * hidden + c] = t == 1 ? 0.0f : bf16_to_f32(f32_to_bf16(normal(rng) * channel[c]));
  return x;
}

double e4m3_ulp(float value) {
  const float magnitude = std::fabs(value);
  if (magnitude < 0x1p-6f) return 0x1p-9;
  int exponent = 0;
  std::frexp(magnitude, &exponent);  // magnitude in [2^(exponent-1), 2^exponent)
  return std::ldexp(1.0, exponent - 1 - 3);
}

// The bound's terms for the tokens in `checked`, from the oracle's own quantization
// (cpu::quantize_e4m3_group) of x and of the activation it computes.
std::vector<double> element_bounds(const Problem& s, const Experts& w, const Inputs& in) {
  const bool block = w.gate_up.scaling == Fp8Scaling::Block;
  const float* table = cpu::e4m3_table();
  const float min_scale = block ? cpu::kBlockMinScale : cpu::kTokenMinScale;
  const int64_t hidden = s.hidden, inter = s.inter, checked = static_cast<int64_t>(in.checked.size());
  std::vector<double> allowed(static_cast<size_t>(checked * hidden), 0.0);
  std::vector<std::vector<double>> per_pair(static_cast<size_t>(checked * s.top_k));
  parallel_for(checked * s.top_k, [&](int64_t item) {
    const int64_t t = in.checked[item / s.top_k], pair = t * s.top_k + item % s.top_k;
    const int64_t e = in.ids[pair];
    // x quantized as the oracle does, scaled back: |q| s_x per column.
    std::vector<float> q(hidden), xq(hidden);
    const int64_t group = block ? kBlock : hidden;
    for (int64_t g = 0; g < hidden / group; ++g) {
      const float scale = cpu::quantize_e4m3_group(in.x.data() + t * hidden + g * group, group, min_scale, q.data() + g * group);
      for (int64_t c = g * group; c < (g + 1) * group; ++c) xq[c] = q[c] * scale;
    }
    // gate_up rows: the magnitude sum_c |x_q s_x| |W s_w| of each product.
    std::vector<float> value(2 * inter);
    std::vector<double> magnitude(2 * inter);
    for (int64_t r = 0; r < 2 * inter; ++r) {
      const uint8_t* row = w.gate_up.codes.data() + (e * 2 * inter + r) * hidden;
      double sum_abs = 0;
      for (int64_t c = 0; c < hidden; ++c)
        sum_abs += std::fabs(double(xq[c]) * table[row[c]]) * w.gate_up.scale(e, r, c);
      magnitude[r] = sum_abs;
    }
    // The oracle's gate_up values themselves.
    std::vector<float> scratch;
    QuantizedWeight gate_up_view = const_cast<HostMatrix&>(w.gate_up).view();
    cpu::fp8_matvec(gate_up_view, e, in.x.data() + t * hidden, value.data(), scratch);
    std::vector<float> activation(inter), a_error(inter);
    for (int64_t j = 0; j < inter; ++j) {
      const float gate = value[j], up = value[inter + j];
      const float silu = gate / (1.0f + std::exp(-gate));
      activation[j] = silu * up;
      a_error[j] = static_cast<float>(kAccumulation * (1.1 * std::fabs(up) * magnitude[j] + std::fabs(silu) * magnitude[inter + j]));
    }
    // The activation quantized as the oracle does: |q_j| s_a and ulp(q_j) s_a.
    std::vector<float> aq(inter), a_ulp(inter), codes(inter);
    const int64_t a_group = block ? kBlock : inter;
    for (int64_t g = 0; g < inter / a_group; ++g) {
      const float scale = cpu::quantize_e4m3_group(activation.data() + g * a_group, a_group, min_scale, codes.data() + g * a_group);
      for (int64_t j = g * a_group; j < (g + 1) * a_group; ++j) {
        aq[j] = std::fabs(codes[j]) * scale;
        a_ulp[j] = static_cast<float>(e4m3_ulp(codes[j]) * scale);
      }
    }
    std::vector<double>& terms = per_pair[item];
    terms.assign(static_cast<size_t>(hidden), 0.0);
    for (int64_t h = 0; h < hidden; ++h) {
      const uint8_t* row = w.down.codes.data() + (e * hidden + h) * inter;
      double m = 0, a = 0, flip = 0;
      for (int64_t j = 0; j < inter; ++j) {
        const double d = std::fabs(table[row[j]]) * double(w.down.scale(e, h, j));
        m += d * aq[j];
        a += d * a_error[j];
        flip = std::max(flip, d * a_ulp[j]);
      }
      terms[h] = kAccumulation * m + a + kFlips * flip;
    }
  });
  for (int64_t i = 0; i < checked; ++i)
    for (int64_t k = 0; k < s.top_k; ++k) {
      const double weight = in.weights[in.checked[i] * s.top_k + k];
      for (int64_t h = 0; h < hidden; ++h) allowed[i * hidden + h] += weight * per_pair[i * s.top_k + k][h];
    }
  return allowed;
}

class MoeFp8CudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(cuda_device_available()) << "the gpu tests need a CUDA device";
    std::printf("seed %llu\n", static_cast<unsigned long long>(run_seed()));
    rng_.seed(run_seed() + ::testing::UnitTest::GetInstance()->random_seed());
  }

  void make_backends() {
    gpu_ = make_cuda_backend(CudaBackendOptions{0, /*poison_step_allocations=*/true});
    cpu_ = make_cpu_backend(0);
    cuda_ = dynamic_cast<CudaBackend*>(gpu_.get());
    ASSERT_NE(cuda_, nullptr);
  }

  Experts make_experts(const Problem& s, Fp8Scaling scaling) {
    Experts w;
    const uint64_t seed = rng_();
    w.gate_up = random_matrix(s.experts, 2 * s.inter, s.hidden, scaling, seed);
    w.down = random_matrix(s.experts, s.hidden, s.inter, scaling, seed + 1);
    w.cpu_gate_up = cpu_->upload_quantized_weight(w.gate_up.view());
    w.cpu_down = cpu_->upload_quantized_weight(w.down.view());
    w.gpu_gate_up = gpu_->upload_quantized_weight(w.gate_up.view());
    w.gpu_down = gpu_->upload_quantized_weight(w.down.view());
    return w;
  }

  // Fresh inputs and the CPU oracle's output; bounds on all tokens up to 17, else on 12 of them
  // (always the first two and the last).
  Inputs make_inputs(const Problem& s, const Experts& w, int64_t tokens) {
    Inputs in;
    in.tokens = tokens;
    in.x = random_activations(tokens, s.hidden, rng_);
    in.ids = skewed_routing(tokens, s, rng_);
    in.weights.resize(static_cast<size_t>(tokens * s.top_k));
    std::uniform_real_distribution<float> uniform(0.05f, 1.0f);
    for (float& weight : in.weights) weight = uniform(rng_);
    cpu_->begin_step();
    Tensor x = cpu_->upload_persistent(Tensor{in.x.data(), DType::F32, {tokens, s.hidden}, Device{}}, DType::F32);
    Tensor ids = cpu_->upload_persistent(Tensor{in.ids.data(), DType::I32, {tokens, s.top_k}, Device{}}, DType::I32);
    Tensor weights = cpu_->upload_persistent(Tensor{in.weights.data(), DType::F32, {tokens, s.top_k}, Device{}}, DType::F32);
    ExpertWeights experts;
    experts.gate_up_fp8 = w.cpu_gate_up;
    experts.down_fp8 = w.cpu_down;
    in.expected = cpu_->download_f32(cpu_->moe_experts(x, {ids, weights}, experts));
    std::set<int64_t> checked;
    if (tokens <= 17) {
      for (int64_t t = 0; t < tokens; ++t) checked.insert(t);
    } else {
      for (int64_t t : {int64_t{0}, int64_t{1}, tokens - 1}) checked.insert(t);
      std::uniform_int_distribution<int64_t> pick(0, tokens - 1);
      while (checked.size() < 12) checked.insert(pick(rng_));
    }
    in.checked.assign(checked.begin(), checked.end());
    in.allowed = element_bounds(s, w, in);
    return in;
  }

  struct GpuInputs {
    Tensor x, ids, weights;
  };
  GpuInputs upload(const Problem& s, const Inputs& in) {
    const int64_t tokens = in.tokens;
    return {gpu_->upload_persistent(Tensor{const_cast<float*>(in.x.data()), DType::F32, {tokens, s.hidden}, Device{}},
                                    DType::BF16),  // exact: bf16-representable
            gpu_->upload_persistent(Tensor{const_cast<int32_t*>(in.ids.data()), DType::I32, {tokens, s.top_k}, Device{}},
                                    DType::I32),
            gpu_->upload_persistent(Tensor{const_cast<float*>(in.weights.data()), DType::F32, {tokens, s.top_k}, Device{}},
                                    DType::F32)};
  }
  static ExpertWeights gpu_experts(const Experts& w) {
    ExpertWeights experts;
    experts.gate_up_fp8 = w.gpu_gate_up;
    experts.down_fp8 = w.gpu_down;
    return experts;
  }

  // Runs the GPU (with `config`, or the backend's selection when null) twice and checks the
  // output against the oracle. Returns the worst |diff| / bound.
  double check_gpu(const Problem& s, const Experts& w, const Inputs& in, const kernels::MoeFp8Config* config,
                   const std::string& what) {
    SCOPED_TRACE(what);
    const int64_t tokens = in.tokens;
    const GpuInputs inputs = upload(s, in);
    const ExpertWeights experts = gpu_experts(w);
    auto run = [&] {
      gpu_->begin_step();
      Tensor out = config ? cuda_->moe_experts_fp8(inputs.x, {inputs.ids, inputs.weights}, experts, *config)
                          : gpu_->moe_experts(inputs.x, {inputs.ids, inputs.weights}, experts);
      return gpu_->download_f32(out);
    };
    const std::vector<float> actual = run();
    EXPECT_EQ(cudaGetLastError(), cudaSuccess);
    EXPECT_EQ(actual.size(), in.expected.size());
    if (actual.size() != in.expected.size()) return INFINITY;
    int64_t non_finite = 0, nonzero_zero_token = 0;
    double dot = 0, gpu_norm = 0, cpu_norm = 0;
    for (size_t i = 0; i < actual.size(); ++i) {
      if (!std::isfinite(actual[i])) {
        ++non_finite;
        continue;
      }
      dot += double(actual[i]) * in.expected[i];
      gpu_norm += double(actual[i]) * actual[i];
      cpu_norm += double(in.expected[i]) * in.expected[i];
      if (tokens > 1 && static_cast<int64_t>(i) / s.hidden == 1 && actual[i] != 0.0f) ++nonzero_zero_token;
    }
    EXPECT_EQ(non_finite, 0) << "unwritten (NaN-poisoned) or non-finite outputs";
    EXPECT_EQ(nonzero_zero_token, 0) << "an all-zero token must give exact zeros";
    const double cosine = cpu_norm > 0 ? dot / std::sqrt(gpu_norm * cpu_norm) : (gpu_norm == 0 ? 1.0 : 0.0);
    EXPECT_GE(cosine, kMinCosine);
    double worst = 0;
    int64_t over = 0;
    for (size_t i = 0; i < in.checked.size(); ++i)
      for (int64_t h = 0; h < s.hidden; ++h) {
        const int64_t index = in.checked[i] * s.hidden + h;
        const double want = in.expected[index], got = actual[index];
        const double error = std::isfinite(got) ? std::fabs(got - want) : INFINITY;
        const double allowed = in.allowed[i * s.hidden + h] + kRounding * std::fabs(want) + 1e-30;
        worst = std::max(worst, error / allowed);
        over += error > allowed;
      }
    EXPECT_EQ(over, 0) << "elements over the bound (worst |diff| / bound " << worst << ")";
    EXPECT_TRUE(run() == actual) << "two runs on the same inputs differ";
    return worst;
  }

  void check_problem(const Problem& s, Fp8Scaling scaling) {
    make_backends();
    const Experts w = make_experts(s, scaling);
    for (int64_t tokens : {1, 7, 32, 64, 300}) {
      const Inputs in = make_inputs(s, w, tokens);
      const std::string what = std::string(scaling == Fp8Scaling::Block ? "block " : "channel ") + s.name +
                               " tokens=" + std::to_string(tokens);
      const double worst = check_gpu(s, w, in, nullptr, what);
      std::printf("%-40s worst element / bound %.3f\n", what.c_str(), worst);
      if (tokens <= kernels::kMoeFp8SmallMMaxTokens) {  // the small-M GEMMs, whatever the selection picks
        kernels::MoeFp8Config small_m;
        small_m.small_m = true;
        const double small_m_worst = check_gpu(s, w, in, &small_m, what + " small-M");
        std::printf("%-40s worst element / bound %.3f\n", (what + " small-M").c_str(), small_m_worst);
      }
    }
  }

  std::unique_ptr<Backend> gpu_, cpu_;
  CudaBackend* cuda_ = nullptr;
  std::mt19937_64 rng_;
};

// Per-GPU expert shapes: DeepSeek-V3 (hidden 7168, 256 experts top-8, inter 2048 / TP),
// GLM-4.7 (5120, 160 top-8, moe inter 1536 / TP), MiniMax-M2 (3072, 256 top-8, inter 1536 / TP).
// The Block layout needs inter % 128 == 0 (MiniMax-M2 at TP 8 has 192: channel only).
const Problem kTiny{"tiny", 16, 4, 256, 128};
const Problem kDeepSeekTp4{"DeepSeek-V3 TP4", 256, 8, 7168, 512};
const Problem kDeepSeekTp8{"DeepSeek-V3 TP8", 256, 8, 7168, 256};
const Problem kGlmTp4{"GLM-4.7 TP4", 160, 8, 5120, 384};
const Problem kGlmTp8{"GLM-4.7 TP8", 160, 8, 5120, 192};
const Problem kMiniMaxTp4{"MiniMax-M2 TP4", 256, 8, 3072, 384};
const Problem kMiniMaxTp8{"MiniMax-M2 TP8", 256, 8, 3072, 192};

TEST_F(MoeFp8CudaTest, BlockTiny) { check_problem(kTiny, Fp8Scaling::Block); }
TEST_F(MoeFp8CudaTest, ChannelTiny) { check_problem(kTiny, Fp8Scaling::Channel); }
TEST_F(MoeFp8CudaTest, BlockDeepSeekV3Tp4) { check_problem(kDeepSeekTp4, Fp8Scaling::Block); }
TEST_F(MoeFp8CudaTest, BlockDeepSeekV3Tp8) { check_problem(kDeepSeekTp8, Fp8Scaling::Block); }
TEST_F(MoeFp8CudaTest, ChannelDeepSeekV3Tp4) { check_problem(kDeepSeekTp4, Fp8Scaling::Channel); }
TEST_F(MoeFp8CudaTest, ChannelDeepSeekV3Tp8) { check_problem(kDeepSeekTp8, Fp8Scaling::Channel); }
TEST_F(MoeFp8CudaTest, ChannelGlm47Tp4) { check_problem(kGlmTp4, Fp8Scaling::Channel); }
TEST_F(MoeFp8CudaTest, ChannelGlm47Tp8) { check_problem(kGlmTp8, Fp8Scaling::Channel); }
TEST_F(MoeFp8CudaTest, BlockMiniMaxM2Tp4) { check_problem(kMiniMaxTp4, Fp8Scaling::Block); }
TEST_F(MoeFp8CudaTest, ChannelMiniMaxM2Tp4) { check_problem(kMiniMaxTp4, Fp8Scaling::Channel); }
TEST_F(MoeFp8CudaTest, ChannelMiniMaxM2Tp8) { check_problem(kMiniMaxTp8, Fp8Scaling::Channel); }

// Every candidate config on one small problem (hot experts span several blocks of every
// block_m; the channel shape has ragged n for every block_n and k not a multiple of 64): those
// that fit the device must match the oracle, the others must be refused with a throw.

TEST_F(MoeFp8CudaTest, EveryCandidateConfigBlock) {
  make_backends();
  const Problem s{"small", 16, 4, 384, 256};
  const Experts w = make_experts(s, Fp8Scaling::Block);
  const Inputs in = make_inputs(s, w, 40);
  std::vector<kernels::MoeFp8Config> configs(256);
  configs.resize(kernels::moe_fp8_candidate_configs(configs.data(), static_cast<int>(configs.size())));
  ASSERT_GT(configs.size(), 0u);
  int device = 0, optin = 0;
  ASSERT_EQ(cudaGetDevice(&device), cudaSuccess);
  ASSERT_EQ(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device), cudaSuccess);
  for (const auto& c : configs) {
    const std::string what = "block config m" + std::to_string(c.block_m) + " n" + std::to_string(c.block_n) + " k" +
                             std::to_string(c.block_k) + " stages " + std::to_string(c.stages) + " warps " +
                             std::to_string(c.warps) + (c.small_m ? " small-M" : "");
    ASSERT_TRUE(kernels::moe_fp8_config_supported(c)) << what;
    if (kernels::moe_fp8_shared_bytes(c) > static_cast<size_t>(optin)) {
      // Not on this device: refused, never launched.
      const GpuInputs inputs = upload(s, in);
      gpu_->begin_step();
      EXPECT_ANY_THROW(cuda_->moe_experts_fp8(inputs.x, {inputs.ids, inputs.weights}, gpu_experts(w), c))
          << what;
      continue;
    }
    check_gpu(s, w, in, &c, what);
  }
}

TEST_F(MoeFp8CudaTest, EveryCandidateConfigChannel) {
  make_backends();
  const Problem s{"small ragged", 16, 4, 400, 144};
  const Experts w = make_experts(s, Fp8Scaling::Channel);
  const Inputs in = make_inputs(s, w, 40);
  std::vector<kernels::MoeFp8Config> configs(256);
  configs.resize(kernels::moe_fp8_candidate_configs(configs.data(), static_cast<int>(configs.size())));
  int device = 0, optin = 0;
  ASSERT_EQ(cudaGetDevice(&device), cudaSuccess);
  ASSERT_EQ(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device), cudaSuccess);
  for (const auto& c : configs) {
    if (kernels::moe_fp8_shared_bytes(c) > static_cast<size_t>(optin)) continue;  // the block test checks refusal
    check_gpu(s, w, in, &c,
              "channel config m" + std::to_string(c.block_m) + " n" + std::to_string(c.block_n) + " k" +
                  std::to_string(c.block_k) + " stages " + std::to_string(c.stages) + " warps " +
                  std::to_string(c.warps) + (c.small_m ? " small-M" : ""));
  }
}

// Host-side contract: defaults and every candidate fit SM120's 99 KB; unsupported configs are
// refused with a message, before anything runs.
TEST_F(MoeFp8CudaTest, ConfigsFitSm120AndBadConfigsThrow) {
  constexpr size_t kSm120Bytes = 99 * 1024;
  for (int64_t tokens : {1, 8, 64, 65, 300, 4096, 65536})
    for (int64_t experts : {160, 256, 384}) {
      const kernels::MoeFp8Config c = kernels::default_moe_fp8_config(tokens, 8, experts);
      EXPECT_TRUE(kernels::moe_fp8_config_supported(c));
      EXPECT_LE(kernels::moe_fp8_shared_bytes(c), kSm120Bytes) << tokens << " tokens";
    }
  std::vector<kernels::MoeFp8Config> configs(256);
  configs.resize(kernels::moe_fp8_candidate_configs(configs.data(), static_cast<int>(configs.size())));
  for (const auto& c : configs) EXPECT_LE(kernels::moe_fp8_shared_bytes(c), kSm120Bytes);

  make_backends();
  const Problem s{"tiny", 16, 4, 256, 128};
  const Experts w = make_experts(s, Fp8Scaling::Block);
  std::vector<float> x(2 * s.hidden, 1.0f), weights(2 * s.top_k, 0.5f);
  std::vector<int32_t> ids = {0, 1, 2, 3, 4, 5, 6, 7};
  Tensor gx = gpu_->upload_persistent(Tensor{x.data(), DType::F32, {2, s.hidden}, Device{}}, DType::BF16);
  Tensor gids = gpu_->upload_persistent(Tensor{ids.data(), DType::I32, {2, s.top_k}, Device{}}, DType::I32);
  Tensor gweights = gpu_->upload_persistent(Tensor{weights.data(), DType::F32, {2, s.top_k}, Device{}}, DType::F32);
  gpu_->begin_step();
  kernels::MoeFp8Config bad;
  bad.block_m = 48;
  EXPECT_ANY_THROW(cuda_->moe_experts_fp8(gx, {gids, gweights}, gpu_experts(w), bad));
  bad = kernels::MoeFp8Config{};
  bad.stages = 5;
  EXPECT_ANY_THROW(cuda_->moe_experts_fp8(gx, {gids, gweights}, gpu_experts(w), bad));
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
}

}  // namespace
}  // namespace rackserve
