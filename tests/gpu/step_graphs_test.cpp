// CUDA graphs for decode steps: the same tiny reference models loaded twice on one CUDA
// backend, once replaying captured step graphs and once with every op launched (eager),
// are driven through identical decode steps of a changing batch (sequences of different
// lengths, page boundaries, batch sizes that pad to different buckets, graphs replayed
// with new inputs). The logits of every step must agree (the graph path pads the batch and
// plans attention for a rounded context, so only summation order may differ), greedy
// tokens must be identical, and the graph path must really have captured and replayed.
// Step allocations are poisoned with NaN, so a padded or stale value that leaks shows.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "backend/cuda/cuda_backend.h"
#include "engine/sequence_runner.h"
#include "models/decoder_model.h"
#include "models/model.h"
#include "support/fixtures.h"
#include "support/similarity.h"

namespace rackserve {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kPageSize = 16;
constexpr double kMinCosine = 0.99999;

struct Sequence {
  std::vector<int32_t> pages;
  int32_t length = 0;
  int32_t next_token = 0;
};

class StepGraphsTest : public ::testing::TestWithParam<std::string> {};

// `overlap`: CudaBackendOptions::overlap_launches, so the eager decode GEMMs launch
// programmatically and the captured graphs' kernel edges become programmatic dependencies.
void check_graph_replay_matches_eager(const std::string& fixture, bool overlap) {
  ASSERT_TRUE(cuda_device_available()) << "the gpu tests need a CUDA device";
  const fs::path directory = fs::path(RACKSERVE_TEST_DATA_DIR) / "models" / fixture;
  CudaBackendOptions options;
  options.poison_step_allocations = true;
  options.overlap_launches = overlap;
  auto backend = make_cuda_backend(options);
  ASSERT_TRUE(backend->supports_step_graphs());
  LoadOptions graphs_on, eager;
  graphs_on.step_graphs.max_batch = 16;
  eager.step_graphs.enabled = false;
  auto graphed = load_model(directory, *backend, graphs_on);
  auto plain = load_model(directory, *backend, eager);
  const int64_t vocab = graphed->config().vocab_size;

  std::mt19937 random(std::random_device{}());
  constexpr int kSequences = 11;
  const int64_t capacity = 200;
  const int64_t pages_per_sequence = (capacity + kPageSize - 1) / kPageSize;
  PagedKvCache graphed_cache = graphed->allocate_kv_cache(kSequences * pages_per_sequence, kPageSize);
  PagedKvCache plain_cache = plain->allocate_kv_cache(kSequences * pages_per_sequence, kPageSize);
  backend->fill(graphed_cache.storage(), NAN);  // unused pages hold NaN: a stray read shows
  backend->fill(plain_cache.storage(), NAN);
  std::vector<int32_t> page_order(kSequences * pages_per_sequence);
  std::iota(page_order.begin(), page_order.end(), 0);
  std::shuffle(page_order.begin(), page_order.end(), random);

  // Prefill (eager on both: more than one token per sequence), prompts of 1..40 tokens.
  std::vector<Sequence> sequences(kSequences);
  for (int s = 0; s < kSequences; ++s) {
    Sequence& sequence = sequences[s];
    sequence.pages.assign(page_order.begin() + s * pages_per_sequence,
                          page_order.begin() + (s + 1) * pages_per_sequence);
    std::vector<int32_t> prompt(1 + random() % 40);
    for (int32_t& token : prompt) token = static_cast<int32_t>(random() % vocab);
    ForwardBatch batch{{SequenceChunk{prompt, 0, sequence.pages, false}}};
    std::vector<float> a = backend->download_f32(graphed->forward(batch, graphed_cache));
    std::vector<float> b = backend->download_f32(plain->forward(batch, plain_cache));
    sequence.length = static_cast<int32_t>(prompt.size());
    sequence.next_token = argmax(b);
  }

  // Decode steps over changing subsets: buckets 1, 2, 4, 8, 16 (11 pads to 16), repeated
  // so graphs replay with new positions, tokens and pages.
  const int batch_sizes[] = {1, 3, 11, 8, 5, 2, 11, 3, 7, 1, 11, 4};
  double worst = 1.0;
  int steps = 0;
  for (int round = 0; round < 3; ++round) {
    for (int count : batch_sizes) {
      std::vector<int> chosen(kSequences);
      std::iota(chosen.begin(), chosen.end(), 0);
      std::shuffle(chosen.begin(), chosen.end(), random);
      chosen.resize(count);
      ForwardBatch batch;
      for (int s : chosen) {
        const Sequence& sequence = sequences[s];
        if (sequence.length + 1 > capacity) continue;
        const size_t pages = (sequence.length + 1 + kPageSize - 1) / kPageSize;
        batch.sequences.push_back(SequenceChunk{{sequence.next_token}, sequence.length,
                                                std::vector<int32_t>(sequence.pages.begin(), sequence.pages.begin() + pages),
                                                false});
      }
      if (batch.sequences.empty()) continue;
      std::vector<float> a = backend->download_f32(graphed->forward(batch, graphed_cache));
      std::vector<float> b = backend->download_f32(plain->forward(batch, plain_cache));
      ASSERT_EQ(a.size(), batch.sequences.size() * vocab);
      ASSERT_EQ(b.size(), a.size());
      for (size_t r = 0; r < batch.sequences.size(); ++r) {
        const double c = testing::cosine(std::span(a).subspan(r * vocab, vocab), std::span(b).subspan(r * vocab, vocab));
        worst = std::min(worst, c);
        ASSERT_GE(c, kMinCosine) << "step " << steps << " row " << r << " of " << batch.sequences.size();
        std::vector<float> row_a(a.begin() + r * vocab, a.begin() + (r + 1) * vocab);
        std::vector<float> row_b(b.begin() + r * vocab, b.begin() + (r + 1) * vocab);
        const int32_t token = argmax(row_b), graph_token = argmax(row_a);
        if (graph_token != token) {  // only a near-tie may pick differently
          EXPECT_LE(std::abs(row_b[token] - row_b[graph_token]), 1e-4f) << "step " << steps << " row " << r;
        }
        Sequence& sequence = sequences[chosen[r]];
        sequence.length += 1;
        sequence.next_token = token;
      }
      ++steps;
    }
  }
  const auto& model = dynamic_cast<const DecoderModel&>(*graphed);
  // Buckets 1, 4 (3), 16 (11), 8 (8, 7, 5), 2 ... at context bound 256: at least 5 graphs.
  EXPECT_GE(model.step_graphs_captured(), 5u);
  EXPECT_EQ(dynamic_cast<const DecoderModel&>(*plain).step_graphs_captured(), 0u);
  const int64_t overlapped = dynamic_cast<const CudaBackend&>(*backend).last_step_graph_overlapped_edges();
  if (overlap) {
    EXPECT_GT(overlapped, 0) << "no kernel edge of the step graph was made programmatic";
  } else {
    EXPECT_EQ(overlapped, 0);
  }
  std::printf("  %s%s: %d decode steps, %zu graphs captured (last: %lld kernels, %lld edges programmatic), min "
              "cosine graph vs eager %.8f\n",
              fixture.c_str(), overlap ? " (overlapped launches)" : "", steps, model.step_graphs_captured(),
              static_cast<long long>(dynamic_cast<const CudaBackend&>(*backend).last_step_graph_kernels()),
              static_cast<long long>(overlapped), worst);
}

TEST_P(StepGraphsTest, GraphReplayMatchesEagerSteps) { check_graph_replay_matches_eager(GetParam(), false); }
TEST_P(StepGraphsTest, OverlappedLaunchesMatchEagerSteps) { check_graph_replay_matches_eager(GetParam(), true); }

// A model whose graphs were captured for one cache must recapture for another: the graphs
// bake in the cache's address.
TEST_P(StepGraphsTest, NewCacheRecaptures) {
  ASSERT_TRUE(cuda_device_available()) << "the gpu tests need a CUDA device";
  const fs::path directory = fs::path(RACKSERVE_TEST_DATA_DIR) / "models" / GetParam();
  auto backend = make_cuda_backend(CudaBackendOptions{});
  auto graphed = load_model(directory, *backend);
  auto plain = load_model(directory, *backend, LoadOptions{.step_graphs = {.enabled = false}});
  const std::vector<int32_t> prompt = {1, 2, 3, 4, 5};
  for (int run = 0; run < 2; ++run) {
    SequenceRunner a(*graphed, 64), b(*plain, 64);
    EXPECT_EQ(a.generate_greedy(prompt, 12), b.generate_greedy(prompt, 12)) << "run " << run;
  }
  EXPECT_GE(dynamic_cast<const DecoderModel&>(*graphed).step_graphs_captured(), 1u);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, StepGraphsTest, ::testing::ValuesIn(testing::fixture_names(testing::FixtureKind::Bf16)));

}  // namespace
}  // namespace rackserve
