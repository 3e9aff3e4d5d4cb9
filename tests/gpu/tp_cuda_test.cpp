// Tensor parallelism on CUDA: every BF16 fixture at TP=2 (GPUs 0 and 1, NCCL, the custom
// all-reduce where the pair has peer access, decode steps replaying CUDA graphs) against
// the same fixture at TP=1 on GPU 0: logits at every position of every reference prompt
// with cosine >= 0.99999 (BF16 activations: the split changes where partial sums are
// rounded, so not bit-equal), and identical 16-token greedy continuations; the custom
// all-reduce carried some of the all-reduces exactly when the pair has peer access. Skips
// unless at least 2 GPUs are visible.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "engine/sequence_runner.h"
#include "models/model.h"
#include "models/tensor_parallel_model.h"
#include "parallel/custom_all_reduce.h"
#include "parallel/rank_group.h"
#include "support/fixtures.h"
#include "support/similarity.h"
#include "weights/safetensors.h"

namespace rackserve {
namespace {

class TensorParallelCuda : public ::testing::TestWithParam<std::string> {};

TEST_P(TensorParallelCuda, TpTwoMatchesTpOne) {
  if (visible_cuda_devices() < 2)
    GTEST_SKIP() << "TP=2 on CUDA needs 2 GPUs; " << visible_cuda_devices()
                 << " visible (the custom all-reduce protocol is tested on one GPU by custom_all_reduce_test)";
  const std::filesystem::path directory = testing::fixture_directory(GetParam());
  set_current_cuda_device(0);
  auto backend = make_cuda_backend(0);
  auto single = load_model(directory, *backend);
  RankGroupOptions group_options;
  group_options.device = DeviceKind::Cuda;
  group_options.world = 2;
  RankGroup ranks = make_rank_group(group_options);
  TensorParallelOptions tp_options;
  tp_options.bind_thread = ranks.bind_thread;
  tp_options.watchdog.step_timeout = std::chrono::seconds(120);
  TensorParallelModel split(directory, ranks.backend_pointers(), ranks.communicator_pointers(), {}, tp_options);
  const int64_t vocab = single->config().vocab_size;

  const auto prompts = testing::fixture_prompts(directory);
  ASSERT_FALSE(prompts.empty());
  for (size_t p = 0; p < prompts.size(); ++p) {
    const std::vector<int32_t>& tokens = prompts[p];
    const int64_t length = static_cast<int64_t>(tokens.size());
    SequenceRunner one(*single, length);
    SequenceRunner many(split, length);
    const auto expected = one.append(tokens, /*all_logits=*/true);
    const auto got = many.append(tokens, /*all_logits=*/true, /*chunk=*/7);
    ASSERT_EQ(got.size(), expected.size());
    for (size_t t = 0; t < got.size(); ++t) {
      ASSERT_EQ(static_cast<int64_t>(got[t].size()), vocab);
      EXPECT_GE(testing::cosine(got[t], expected[t]), 0.99999) << "prompt " << p << " position " << t;
    }
    SequenceRunner one_greedy(*single, length + 16);
    SequenceRunner many_greedy(split, length + 16);
    EXPECT_EQ(many_greedy.generate_greedy(tokens, 16), one_greedy.generate_greedy(tokens, 16)) << "prompt " << p;
  }
  // The small all-reduces of these steps went through the custom kernel wherever the two
  // GPUs have peer access (else NCCL carried them all).
  const bool peers = CustomAllReduce::peer_access_between({0, 1}).empty();
  for (Communicator* communicator : ranks.communicator_pointers()) {
    const AllReduceCounts counts = communicator->all_reduce_counts();
    EXPECT_GT(counts.calls, 0) << "rank " << communicator->rank();
    if (peers) {
      EXPECT_GT(counts.custom, 0) << "rank " << communicator->rank() << ": peer access, yet no custom all-reduce";
    } else {
      EXPECT_EQ(counts.custom, 0) << "rank " << communicator->rank();
    }
  }
  const AllReduceCounts rank0 = ranks.communicators[0]->all_reduce_counts();
  std::printf("  %s: %s; rank 0 issued %lld all-reduces, %lld of them custom\n", GetParam().c_str(),
              peers ? "peer access" : "no peer access", static_cast<long long>(rank0.calls),
              static_cast<long long>(rank0.custom));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TensorParallelCuda,
                         ::testing::ValuesIn(testing::fixture_names(testing::FixtureKind::Bf16)),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return testing::fixture_test_name(info.param);
                         });

}  // namespace
}  // namespace rackserve
