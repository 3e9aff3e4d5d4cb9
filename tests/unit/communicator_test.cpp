// The in-process communicator group (the CPU oracle of the collectives): all-reduce is
// the rank-ordered float32 sum and bit-identical on every rank (F32 and BF16), all-gather
// places each rank's columns, mismatched shapes fail on every rank, and abort() releases
// ranks waiting in a collective instead of leaving them hanging.
#include <atomic>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core/dtype.h"
#include "core/error.h"
#include "parallel/in_process_communicator.h"
#include "rackserve/random_hash.h"

namespace rackserve {
namespace {

// Runs body(rank, communicator) on one thread per rank; returns each rank's error message
// ("" when it returned normally).
std::vector<std::string> run_ranks(int world, const std::function<void(int, Communicator&)>& body) {
  auto communicators = make_in_process_communicators(world);
  std::vector<std::string> errors(static_cast<size_t>(world));
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      try {
        body(r, *communicators[static_cast<size_t>(r)]);
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(r)] = e.what();
      }
    });
  for (auto& thread : threads) thread.join();
  return errors;
}

// Values of very different magnitudes, so that the summation order shows in the result.
float value(uint64_t seed, int rank, int64_t i) {
  const float magnitude = (i + rank) % 3 == 0 ? 1e6f : (i + rank) % 3 == 1 ? 1.0f : 1e-6f;
  return uniform_symmetric(seed + static_cast<uint64_t>(rank), static_cast<uint64_t>(i), magnitude);
}

class AllReduce : public ::testing::TestWithParam<int> {};

TEST_P(AllReduce, F32IsTheRankOrderedSumOnEveryRank) {
  const int world = GetParam();
  const int64_t count = 1000;
  const uint64_t seed = std::random_device{}();
  std::vector<std::vector<float>> results(static_cast<size_t>(world));
  const auto errors = run_ranks(world, [&](int rank, Communicator& communicator) {
    EXPECT_EQ(communicator.rank(), rank);
    EXPECT_EQ(communicator.world_size(), world);
    std::vector<float>& data = results[static_cast<size_t>(rank)];
    for (int64_t i = 0; i < count; ++i) data.push_back(value(seed, rank, i));
    communicator.all_reduce_sum(Tensor{data.data(), DType::F32, {10, count / 10}, Device{}});
  });
  for (const std::string& error : errors) EXPECT_EQ(error, "");
  for (int64_t i = 0; i < count; ++i) {
    float expected = value(seed, 0, i);
    for (int r = 1; r < world; ++r) expected += value(seed, r, i);
    for (int r = 0; r < world; ++r) {
      // Bit-identical: compare the representations, not the values.
      uint32_t got_bits = 0, expected_bits = 0;
      std::memcpy(&got_bits, &results[static_cast<size_t>(r)][static_cast<size_t>(i)], 4);
      std::memcpy(&expected_bits, &expected, 4);
      ASSERT_EQ(got_bits, expected_bits) << "rank " << r << " element " << i << " seed " << seed;
    }
  }
}

TEST_P(AllReduce, Bf16SumsInF32AndRoundsOnce) {
  const int world = GetParam();
  const int64_t count = 257;
  const uint64_t seed = std::random_device{}();
  std::vector<std::vector<uint16_t>> results(static_cast<size_t>(world));
  auto input = [&](int rank, int64_t i) { return f32_to_bf16(value(seed, rank, i)); };
  const auto errors = run_ranks(world, [&](int rank, Communicator& communicator) {
    std::vector<uint16_t>& data = results[static_cast<size_t>(rank)];
    for (int64_t i = 0; i < count; ++i) data.push_back(input(rank, i));
    communicator.all_reduce_sum(Tensor{data.data(), DType::BF16, {count}, Device{}});
  });
  for (const std::string& error : errors) EXPECT_EQ(error, "");
  for (int64_t i = 0; i < count; ++i) {
    float sum = bf16_to_f32(input(0, i));
    for (int r = 1; r < world; ++r) sum += bf16_to_f32(input(r, i));
    for (int r = 0; r < world; ++r)
      ASSERT_EQ(results[static_cast<size_t>(r)][static_cast<size_t>(i)], f32_to_bf16(sum))
          << "rank " << r << " element " << i << " seed " << seed;
  }
}

TEST_P(AllReduce, AllGatherPlacesEachRanksColumns) {
  const int world = GetParam();
  const int64_t rows = 3, n = 5;
  std::vector<std::vector<float>> outputs(static_cast<size_t>(world));
  const auto errors = run_ranks(world, [&](int rank, Communicator& communicator) {
    std::vector<float> in;
    for (int64_t row = 0; row < rows; ++row)
      for (int64_t c = 0; c < n; ++c) in.push_back(static_cast<float>(rank * 1000 + row * 100 + c));
    std::vector<float>& out = outputs[static_cast<size_t>(rank)];
    out.assign(static_cast<size_t>(rows * n * world), -1.0f);
    communicator.all_gather_last_dim(Tensor{in.data(), DType::F32, {rows, n}, Device{}},
                                     Tensor{out.data(), DType::F32, {rows, n * world}, Device{}});
  });
  for (const std::string& error : errors) EXPECT_EQ(error, "");
  for (int r = 0; r < world; ++r)
    for (int64_t row = 0; row < rows; ++row)
      for (int64_t column = 0; column < n * world; ++column)
        ASSERT_EQ(outputs[static_cast<size_t>(r)][static_cast<size_t>(row * n * world + column)],
                  static_cast<float>((column / n) * 1000 + row * 100 + column % n))
            << "rank " << r << " row " << row << " column " << column;
}

// Failures between ranks: only meaningful with two or more ranks.
class SeveralRanks : public ::testing::TestWithParam<int> {};

TEST_P(SeveralRanks, MismatchedShapesFailOnEveryRank) {
  const int world = GetParam();
  const auto errors = run_ranks(world, [&](int rank, Communicator& communicator) {
    std::vector<float> data(static_cast<size_t>(4 + (rank == world - 1 ? 1 : 0)), 1.0f);
    communicator.all_reduce_sum(Tensor{data.data(), DType::F32, {static_cast<int64_t>(data.size())}, Device{}});
  });
  for (const std::string& error : errors) EXPECT_NE(error.find("all_reduce_sum: rank 0 passed F32 [4]"), std::string::npos) << error;
}

TEST_P(SeveralRanks, AbortReleasesRanksWaitingInACollective) {
  const int world = GetParam();
  // The last rank fails before the collective; the others must not wait for it forever.
  const auto errors = run_ranks(world, [&](int rank, Communicator& communicator) {
    if (rank == world - 1) {
      communicator.abort("rank failed on purpose");
      return;
    }
    std::vector<float> data(4, 1.0f);
    communicator.all_reduce_sum(Tensor{data.data(), DType::F32, {4}, Device{}});
  });
  for (int r = 0; r + 1 < world; ++r)
    EXPECT_NE(errors[static_cast<size_t>(r)].find("aborted: rank failed on purpose"), std::string::npos)
        << errors[static_cast<size_t>(r)];
}

std::string rank_count_name(const ::testing::TestParamInfo<int>& info) { return "tp" + std::to_string(info.param); }
INSTANTIATE_TEST_SUITE_P(Ranks, AllReduce, ::testing::Values(1, 2, 3, 4, 8), rank_count_name);
INSTANTIATE_TEST_SUITE_P(Ranks, SeveralRanks, ::testing::Values(2, 3, 4, 8), rank_count_name);

TEST(InProcessCommunicator, RefusesDeviceTensorsAndIntegerDtypes) {
  auto communicators = make_in_process_communicators(1);
  std::vector<int32_t> ints(4);
  EXPECT_THROW(communicators[0]->all_reduce_sum(Tensor{ints.data(), DType::I32, {4}, Device{}}), Error);
  std::vector<float> floats(4);
  EXPECT_THROW(communicators[0]->all_reduce_sum(Tensor{floats.data(), DType::F32, {4}, Device{DeviceKind::Cuda, 0}}),
               Error);
  EXPECT_THROW(make_in_process_communicators(0), Error);
}

}  // namespace
}  // namespace rackserve
