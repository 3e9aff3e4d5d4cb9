// Tensor parallelism on the CPU: every tiny fixture loaded as TP=2 and TP=4 shards (N rank
// threads, each with its own CPU backend, model shard and KV cache, meeting in the
// in-process communicator group) against the same fixture at TP=1: float32 logits at
// every position of every reference prompt (prefill, then the rest in decode-sized
// chunks) and the 16-token greedy continuation. BF16 fixtures, and FP8 fixtures with
// --dequantize-fp8 (W8A16: the same dense values, sliced with their scales); native FP8
// weights (e4m3 values + block or channel scales) slice by slice against the TP=1 weight.
// Also the start-up errors for sizes that do not divide, and a failing rank.
#include <cmath>
#include <memory>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "models/layers/checkpoint_weight_source.h"
#include "engine/sequence_runner.h"
#include "models/model.h"
#include "models/tensor_parallel_model.h"
#include "parallel/communicator.h"
#include "parallel/in_process_communicator.h"
#include "support/cpu_tensor_parallel.h"
#include "support/fixtures.h"
#include "weights/safetensors.h"

namespace rackserve {
namespace {

namespace fs = std::filesystem;

using TpModel = testing::CpuTensorParallelModel;

struct Case {
  std::string fixture;
  int tp = 2;
  Fp8Weights fp8 = Fp8Weights::Native;
  // Bounds against TP=1: the same arithmetic up to the order of the partial sums.
  float max_abs = 1e-4f;
  double min_cosine = 0.99999;
  bool same_greedy = true;
};

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  const Case& c = info.param;
  const bool fp8 = QuantConfig::load(testing::fixture_directory(c.fixture)).method() != "none";
  return testing::fixture_test_name(c.fixture) + "_tp" + std::to_string(c.tp) +
         (fp8 ? (c.fp8 == Fp8Weights::Dequantize ? "_w8a16" : "_w8a8") : "");
}

class TensorParallelLogits : public ::testing::TestWithParam<Case> {};

TEST_P(TensorParallelLogits, MatchTpOneAtEveryPositionAndGreedy) {
  const Case& c = GetParam();
  const fs::path directory = testing::fixture_directory(c.fixture);
  LoadOptions options;
  options.fp8_weights = c.fp8;
  auto backend = make_cpu_backend(1);
  auto single = load_model(directory, *backend, options);
  TpModel split(directory, c.tp, options);
  const int64_t vocab = single->config().vocab_size;

  const auto prompts = testing::fixture_prompts(directory);
  ASSERT_FALSE(prompts.empty());
  for (size_t p = 0; p < prompts.size(); ++p) {
    const std::vector<int32_t>& tokens = prompts[p];
    const int64_t length = static_cast<int64_t>(tokens.size());
    SequenceRunner one(*single, length);
    SequenceRunner many(*split.model, length);
    // Chunks of 7: prefill steps that read earlier chunks back from every rank's cache.
    const auto expected = one.append(tokens, /*all_logits=*/true);
    const auto got = many.append(tokens, /*all_logits=*/true, /*chunk=*/7);
    ASSERT_EQ(got.size(), expected.size());
    for (size_t t = 0; t < got.size(); ++t) {
      ASSERT_EQ(static_cast<int64_t>(got[t].size()), vocab);
      double dot = 0, norm_a = 0, norm_b = 0;
      float max_diff = 0;
      for (int64_t v = 0; v < vocab; ++v) {
        const double a = got[t][static_cast<size_t>(v)], b = expected[t][static_cast<size_t>(v)];
        dot += a * b;
        norm_a += a * a;
        norm_b += b * b;
        max_diff = std::max(max_diff, static_cast<float>(std::fabs(a - b)));
      }
      const double cosine = dot / std::sqrt(norm_a * norm_b);
      EXPECT_LE(max_diff, c.max_abs) << "prompt " << p << " position " << t;
      EXPECT_GE(cosine, c.min_cosine) << "prompt " << p << " position " << t;
    }
    SequenceRunner one_greedy(*single, length + 16);
    SequenceRunner many_greedy(*split.model, length + 16);
    const auto greedy_one = one_greedy.generate_greedy(tokens, 16), greedy_many = many_greedy.generate_greedy(tokens, 16);
    if (c.same_greedy) {
      EXPECT_EQ(greedy_many, greedy_one) << "prompt " << p;
    }
  }
}

// Errors at start-up, with the flag and the extent that does not divide.
std::string load_error(const std::string& fixture, int tp, Fp8Weights fp8 = Fp8Weights::Native) {
  try {
    LoadOptions options;
    options.fp8_weights = fp8;
    TpModel split(testing::fixture_directory(fixture), tp, options);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Native block FP8 at `tp` ranks loads only where every rank's slice is whole blocks (real
// checkpoints: 128 x 128 at TP 8; the dsv3-block128 fixture's q_b, 4 heads x 160 rows, is not at
// TP 2). The refusal itself is TensorParallelErrors.Fp8BlockSlicesMustFallOnBlockBoundaries'.
bool native_fp8_loads(const std::string& fixture, int tp) { return load_error(fixture, tp).empty(); }

std::vector<Case> cases() {
  std::vector<Case> all;
  for (const std::string& fixture : testing::fixture_names(testing::FixtureKind::Bf16))
    for (int tp : {2, 4}) all.push_back({fixture, tp});
  for (const std::string& fixture : testing::fixture_names(testing::FixtureKind::Fp8)) {
    for (int tp : {2, 4}) all.push_back({fixture, tp, Fp8Weights::Dequantize});
    // Native W8A8 with block scales: a rank's slice of a row-parallel input is whole
    // 16-column groups, so every activation group is quantized as at TP=1 and only the
    // partial sums' order differs (TP=4 does not fall on block boundaries: refused at load,
    // TensorParallelErrors below). That order difference can move an activation across an
    // e4m3 rounding midpoint, a step of 1/16 in one value, which then shows in the logits
    // (measured: 1 of 109 positions of the kimi-like fixture at cosine 0.99980, |diff| 0.06;
    // its later greedy tokens part). Bounds for that: cosine >= 0.999 at every position,
    // no greedy equality. A missing all-reduce or a wrong slice gives cosines far lower. Channel scales are per token over the whole row, which a
    // row-parallel rank does not see: it quantizes its slice with its own scale (as vLLM
    // does), a different rounding than TP=1, so channel W8A8 is checked slice by slice only
    // (NativeFp8Slices).
    if (QuantConfig::load(testing::fixture_directory(fixture)).linear("model.layers.0.self_attn.o_proj").format ==
            WeightFormat::Fp8Block &&
        native_fp8_loads(fixture, 2))
      all.push_back({fixture, 2, Fp8Weights::Native, /*max_abs=*/0.25f, /*min_cosine=*/0.999, /*same_greedy=*/false});
  }
  return all;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TensorParallelLogits, ::testing::ValuesIn(cases()), case_name);

// A QuantizedWeight (on the CPU backend, host memory) expanded to values x scales,
// [(matrices,) out, in] row-major.
std::vector<float> dequantize(const QuantizedWeight& w) {
  const int64_t out = w.out_features(), in = w.in_features();
  const int64_t matrices = w.values.rank() == 3 ? w.values.dim(0) : 1;
  std::vector<float> dense(static_cast<size_t>(matrices * out * in));
  const auto* values = w.values.as<uint8_t>();
  const auto* scales = w.scales.as<float>();
  const int64_t scale_rows = w.scaling == Fp8Scaling::Block ? (out + w.block_out - 1) / w.block_out : out;
  const int64_t scale_cols = w.scaling == Fp8Scaling::Block ? in / w.block_in : 1;
  for (int64_t m = 0; m < matrices; ++m)
    for (int64_t r = 0; r < out; ++r)
      for (int64_t c = 0; c < in; ++c) {
        const int64_t scale = w.scaling == Fp8Scaling::Block
                                  ? (m * scale_rows + r / w.block_out) * scale_cols + c / w.block_in
                                  : m * scale_rows + r;
        const size_t i = static_cast<size_t>((m * out + r) * in + c);
        dense[i] = e4m3_to_f32(values[i]) * scales[scale];
      }
  return dense;
}

class NativeFp8Slices : public ::testing::TestWithParam<std::string> {};

TEST_P(NativeFp8Slices, EveryRanksValuesAndScalesAreItsSliceOfTheWhole) {
  const fs::path directory = testing::fixture_directory(GetParam());
  const ModelConfig config = ModelConfig::load(directory);
  WeightStore store = WeightStore::open(directory);
  const QuantConfig quant = QuantConfig::load(directory);
  const MlaConfig& m = config.mla;
  const int64_t hidden = config.hidden_size, inter = config.moe.expert_intermediate_size;
  int64_t moe_layer = 0;
  while (!config.is_moe_layer(moe_layer)) ++moe_layer;
  const std::string attention = "model.layers.0.self_attn.";
  const std::string experts = "model.layers." + std::to_string(moe_layer) + ".mlp.experts.";
  std::vector<LinearRequest> requests;
  requests.push_back({{attention + "o_proj"}, {hidden}, m.num_heads * m.v_head_dim, 1, WeightRole::Linear, TpSplit::Row});
  const std::string q = m.q_lora_rank > 0 ? "q_b_proj" : "q_proj";
  requests.push_back({{attention + q}, {m.num_heads * m.qk_head_dim()}, m.q_lora_rank > 0 ? m.q_lora_rank : hidden, 1,
                      WeightRole::Linear, TpSplit::Column});
  LinearRequest gate_up{{}, {inter, inter}, hidden, config.moe.num_routed_experts, WeightRole::ExpertGateUp,
                        TpSplit::Column};
  LinearRequest down{{}, {hidden}, inter, config.moe.num_routed_experts, WeightRole::ExpertDown, TpSplit::Row};
  for (int64_t e = 0; e < config.moe.num_routed_experts; ++e) {
    const std::string prefix = experts + std::to_string(e);
    gate_up.modules.insert(gate_up.modules.end(), {prefix + ".gate_proj", prefix + ".up_proj"});
    down.modules.push_back(prefix + ".down_proj");
  }
  requests.push_back(gate_up);
  requests.push_back(down);

  const int world = 2;
  auto backend = make_cpu_backend(1);
  for (const LinearRequest& request : requests) {
    SCOPED_TRACE(request.modules.front());
    CheckpointWeightSource whole_source(store, *backend, quant);
    const LinearWeight whole = whole_source.load_linear(request);
    ASSERT_TRUE(whole.fp8.has_value());
    const std::vector<float> full = dequantize(*whole.fp8);
    const int64_t out = whole.fp8->out_features(), in = whole.fp8->in_features();
    const int64_t pieces = static_cast<int64_t>(request.rows.size());
    for (int rank = 0; rank < world; ++rank) {
      CheckpointWeightSource source(store, *backend, quant, Fp8Weights::Native, ShardSpec{rank, world});
      const LinearWeight part = source.load_linear(request);
      ASSERT_TRUE(part.fp8.has_value());
      const std::vector<float> got = dequantize(*part.fp8);
      const int64_t local_out = part.fp8->out_features(), local_in = part.fp8->in_features();
      ASSERT_EQ(local_out * (request.split == TpSplit::Column ? world : 1), out);
      ASSERT_EQ(local_in * (request.split == TpSplit::Row ? world : 1), in);
      // Expected: each piece's rows (Column) or the columns (Row) of this rank.
      const int64_t matrices = request.matrices;
      for (int64_t mat = 0; mat < matrices; ++mat)
        for (int64_t r = 0; r < local_out; ++r)
          for (int64_t c = 0; c < local_in; ++c) {
            int64_t row = r, col = c;
            if (request.split == TpSplit::Column) {
              const int64_t piece_rows = request.rows[0] / world;  // equal pieces (gate, up)
              const int64_t piece = r / piece_rows;
              row = piece * request.rows[0] + rank * piece_rows + r % piece_rows;
              ASSERT_LT(piece, pieces);
            } else {
              col = rank * local_in + c;
            }
            ASSERT_EQ(got[static_cast<size_t>((mat * local_out + r) * local_in + c)],
                      full[static_cast<size_t>((mat * out + row) * in + col)])
                << "rank " << rank << " matrix " << mat << " row " << r << " column " << c;
          }
    }
  }
}

std::vector<std::string> fixtures_sliceable_at_tp2() {
  std::vector<std::string> names;
  for (const std::string& name : testing::fixture_names(testing::FixtureKind::Fp8))
    if (native_fp8_loads(name, 2)) names.push_back(name);
  return names;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, NativeFp8Slices, ::testing::ValuesIn(fixtures_sliceable_at_tp2()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return testing::fixture_test_name(info.param);
                         });

TEST(TensorParallelErrors, SizesThatDoNotDivideFailAtLoadNamingWhat) {
  const std::string fixture = testing::fixture_names(testing::FixtureKind::Bf16).front();
  // 4 heads: 3 does not divide them (checked before any other split).
  std::string error = load_error(fixture, 3);
  EXPECT_NE(error.find("tensor-parallel rank"), std::string::npos) << error;
  EXPECT_NE(error.find("not divisible by 3"), std::string::npos) << error;
  error = load_error(fixture, 8);
  EXPECT_NE(error.find("--tp 8: num_attention_heads 4 is not divisible by 8"), std::string::npos) << error;
}

TEST(TensorParallelErrors, Fp8BlockSlicesMustFallOnBlockBoundaries) {
  // 16 x 16 blocks: at TP=4 a rank's experts hold 32 / 4 = 8 intermediate rows (half a block).
  std::string fixture;
  for (const std::string& name : testing::fixture_names(testing::FixtureKind::Fp8))
    if (name.find("fp8-block") != std::string::npos) fixture = name;
  ASSERT_FALSE(fixture.empty());
  const std::string error = load_error(fixture, 4);
  EXPECT_NE(error.find("FP8 block boundaries"), std::string::npos) << error;
  EXPECT_NE(error.find("--dequantize-fp8"), std::string::npos) << error;
  EXPECT_EQ(load_error(fixture, 4, Fp8Weights::Dequantize), "");
  // 128 x 128 blocks: at TP=2 a rank's q_b holds 2 heads x 160 = 320 rows (2.5 blocks).
  const std::string block128 = load_error("dsv3-block128-fp8-block", 2);
  EXPECT_NE(block128.find("q_b_proj"), std::string::npos) << block128;
  EXPECT_NE(block128.find("FP8 block boundaries"), std::string::npos) << block128;
  EXPECT_EQ(load_error("dsv3-block128-fp8-block", 2, Fp8Weights::Dequantize), "");
}

TEST(TensorParallelErrors, DummyWeightsFollowTheManifestSplits) {
  // Each layer declares its splits; the dummy source checks them against the manifest the
  // footprint is computed from, and a dummy TP model runs.
  const fs::path directory = testing::fixture_directory(testing::fixture_names(testing::FixtureKind::Bf16).front());
  LoadOptions options;
  options.format = LoadFormat::Dummy;
  TpModel split(directory, 2, options);
  SequenceRunner runner(*split.model, 8);
  const auto logits = runner.append({1, 2, 3, 4}, /*all_logits=*/false);
  ASSERT_EQ(logits.size(), 1u);
  for (float value : logits[0]) ASSERT_TRUE(std::isfinite(value));
}

// A CPU backend whose routed experts throw once armed: one rank failing in the middle of
// a step while the others wait for it in the next all-reduce.
class FailingCpuBackend : public CpuBackend {
 public:
  FailingCpuBackend() : CpuBackend(1) {}
  Tensor moe_experts(const Tensor& x, const MoeRouting& routing, const ExpertWeights& experts) override {
    RS_CHECK(!armed, "injected expert failure");
    return CpuBackend::moe_experts(x, routing, experts);
  }
  bool armed = false;
};

// An in-process communicator that counts the collectives a rank issued before and after its
// warm-up.
class CountingCommunicator final : public Communicator {
 public:
  explicit CountingCommunicator(std::unique_ptr<Communicator> inner) : inner_(std::move(inner)) {}
  int rank() const override { return inner_->rank(); }
  int world_size() const override { return inner_->world_size(); }
  void all_reduce_sum(const Tensor& tensor) override {
    ++(warm_ups == 0 ? collectives_before_warm_up : collectives_after_warm_up);
    inner_->all_reduce_sum(tensor);
  }
  void all_gather_last_dim(const Tensor& in, const Tensor& out) override {
    ++(warm_ups == 0 ? collectives_before_warm_up : collectives_after_warm_up);
    inner_->all_gather_last_dim(in, out);
  }
  void barrier() override { inner_->barrier(); }
  void abort(const std::string& reason) override { inner_->abort(reason); }
  void warm_up() override {
    ++warm_ups;
    inner_->warm_up();
  }
  int warm_ups = 0, collectives_before_warm_up = 0, collectives_after_warm_up = 0;

 private:
  std::unique_ptr<Communicator> inner_;
};

TEST(TensorParallel, EveryRankWarmsUpItsCollectivesOnceAfterLoadingAndBeforeTheFirstStep) {
  const fs::path directory = testing::fixture_directory(testing::fixture_names(testing::FixtureKind::Bf16).front());
  std::vector<std::unique_ptr<Communicator>> group = make_in_process_communicators(2);
  std::vector<std::unique_ptr<CountingCommunicator>> counting;
  std::vector<std::unique_ptr<Backend>> backends;
  std::vector<Communicator*> communicators;
  std::vector<Backend*> backend_pointers;
  for (auto& communicator : group) {
    counting.push_back(std::make_unique<CountingCommunicator>(std::move(communicator)));
    communicators.push_back(counting.back().get());
    backends.push_back(make_cpu_backend(1));
    backend_pointers.push_back(backends.back().get());
  }
  TensorParallelModel model(directory, backend_pointers, communicators, {});
  for (const auto& rank : counting) {
    EXPECT_EQ(rank->warm_ups, 1);
    EXPECT_EQ(rank->collectives_before_warm_up, 0) << "loading issued a collective before the warm-up";
    EXPECT_EQ(rank->collectives_after_warm_up, 0);
  }
  SequenceRunner runner(model, 4);
  runner.append({5, 6, 7}, false);
  for (const auto& rank : counting) {
    EXPECT_EQ(rank->warm_ups, 1) << "a step warmed up again";
    EXPECT_GT(rank->collectives_after_warm_up, 0);
  }
}

TEST(TensorParallelErrors, OneFailingRankReleasesTheOthersAndNamesItself) {
  const fs::path directory = testing::fixture_directory(testing::fixture_names(testing::FixtureKind::Bf16).front());
  for (int world : {2, 4}) {
    SCOPED_TRACE(world);
    auto communicators = make_in_process_communicators(world);
    std::vector<std::unique_ptr<FailingCpuBackend>> backends;
    std::vector<Backend*> backend_pointers;
    std::vector<Communicator*> communicator_pointers;
    for (int r = 0; r < world; ++r) {
      backends.push_back(std::make_unique<FailingCpuBackend>());
      backend_pointers.push_back(backends.back().get());
      communicator_pointers.push_back(communicators[static_cast<size_t>(r)].get());
    }
    TensorParallelModel model(directory, backend_pointers, communicator_pointers);
    PagedKvCache cache = model.allocate_kv_cache(2, 64);
    ForwardBatch batch;
    batch.sequences.push_back({{1, 2, 3}, 0, {0}, false});
    EXPECT_NO_THROW(model.forward(batch, cache));
    backends[1]->armed = true;  // only rank 1
    try {
      model.forward(batch, cache);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).rfind("tensor-parallel rank 1 failed: injected expert failure", 0), 0u) << e.what();
    }
    backends[1]->armed = false;
    EXPECT_THROW(model.forward(batch, cache), Error);  // the group stays aborted
  }
}

TEST(TensorParallelErrors, ARankThatFailsStopsTheStepWithItsMessage) {
  const fs::path directory = testing::fixture_directory(testing::fixture_names(testing::FixtureKind::Bf16).front());
  TpModel split(directory, 2, {});
  PagedKvCache cache = split.model->allocate_kv_cache(2, 64);
  ForwardBatch batch;
  batch.sequences.push_back({{1, 2, 3}, 0, {0}, false});
  EXPECT_NO_THROW(split.model->forward(batch, cache));
  // A cache the model did not allocate: refused before any rank starts.
  PagedKvCache foreign = split.backends[0] ? PagedKvCache(*split.backends[0], split.model->config().num_layers, 2, 64,
                                                          split.model->config().mla.latent_width())
                                           : cache;
  EXPECT_THROW(split.model->forward(batch, foreign), Error);
  // A token outside the vocabulary: every rank throws in flatten, the step fails with a
  // rank's message instead of hanging, and the model refuses later steps.
  batch.sequences[0].token_ids = {1, 100000};
  try {
    split.model->forward(batch, cache);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tensor-parallel rank"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("outside the vocabulary"), std::string::npos) << e.what();
  }
  batch.sequences[0].token_ids = {1, 2};
  EXPECT_THROW(split.model->forward(batch, cache), Error);
}

}  // namespace
}  // namespace rackserve
