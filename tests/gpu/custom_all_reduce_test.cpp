// The one-shot custom all-reduce (kernels/comm, parallel/custom_all_reduce.h), one host
// thread and one stream per rank like the tensor-parallel workers: 2 and 4 ranks sharing
// GPU 0 (so a one-GPU machine tests the whole protocol), and 2 / 4 ranks on distinct GPUs
// when that many are visible with peer access. Messages of 1 element up to 8 MB, odd sizes
// included; F32 must equal the rank-ordered host sum bit for bit, BF16 the same sum rounded
// once (within one bf16 step), and every rank must hold bit-identical results. Eager
// launches and CUDA-graph replays (captured once, replayed with new inputs) alternate; the
// elements past each message are poisoned and must stay untouched. A hang (a protocol
// deadlock) aborts the group after 60 s and fails instead of blocking the suite.
#include <chrono>
#include <cmath>
#include <cstring>
#include <future>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include "core/dtype.h"
#include "parallel/custom_all_reduce.h"

namespace rackserve {
namespace {

#define CUDA_OK(call) ASSERT_EQ((call), cudaSuccess) << #call

constexpr size_t kGuardBytes = 256;
constexpr uint8_t kPoison = 0xA5;

struct Config {
  std::string name;
  std::vector<int> devices;
};

std::vector<Config> configs() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) count = 0;
  std::vector<Config> out;
  if (count >= 1) {
    out.push_back({"two_ranks_one_gpu", {0, 0}});
    out.push_back({"four_ranks_one_gpu", {0, 0, 0, 0}});
  }
  if (count >= 2) out.push_back({"two_gpus", {0, 1}});
  if (count >= 4) out.push_back({"four_gpus", {0, 1, 2, 3}});
  return out;
}

// Host inputs of one rank, as the element bits the device holds.
std::vector<uint8_t> make_input(DType dtype, int64_t count, uint64_t seed) {
  std::mt19937_64 random(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<uint8_t> bytes(static_cast<size_t>(count) * dtype_size(dtype));
  for (int64_t i = 0; i < count; ++i) {
    const float value = uniform(random);
    if (dtype == DType::F32) {
      std::memcpy(bytes.data() + i * 4, &value, 4);
    } else {
      const uint16_t bits = f32_to_bf16(value);
      std::memcpy(bytes.data() + i * 2, &bits, 2);
    }
  }
  return bytes;
}

float element(const std::vector<uint8_t>& bytes, DType dtype, int64_t i) {
  if (dtype == DType::F32) {
    float value;
    std::memcpy(&value, bytes.data() + i * 4, 4);
    return value;
  }
  uint16_t bits;
  std::memcpy(&bits, bytes.data() + i * 2, 2);
  return bf16_to_f32(bits);
}

class CustomAllReduceTest : public ::testing::TestWithParam<DType> {};

// One rank's device state: its message (+ poisoned guard), its stream, its graph.
struct RankState {
  int device = 0;
  void* data = nullptr;
  cudaStream_t stream = nullptr;
  cudaGraphExec_t graph = nullptr;
};

void run_config(const Config& config, DType dtype) {
  SCOPED_TRACE(config.name);
  const std::string no_peer = CustomAllReduce::peer_access_between(config.devices);
  if (!no_peer.empty()) GTEST_SKIP() << no_peer;
  const int world = static_cast<int>(config.devices.size());
  const int64_t max_bytes = int64_t{8} << 20;
  CustomAllReduceOptions options;
  options.capacity_bytes = max_bytes;
  CustomAllReduce all_reduce(config.devices, options);
  std::vector<RankState> ranks(static_cast<size_t>(world));
  for (int r = 0; r < world; ++r) {
    RankState& rank = ranks[static_cast<size_t>(r)];
    rank.device = config.devices[static_cast<size_t>(r)];
    CUDA_OK(cudaSetDevice(rank.device));
    CUDA_OK(cudaMalloc(&rank.data, static_cast<size_t>(max_bytes) + kGuardBytes));
    CUDA_OK(cudaStreamCreateWithFlags(&rank.stream, cudaStreamNonBlocking));
  }
  const int64_t element_bytes = static_cast<int64_t>(dtype_size(dtype));
  std::vector<int64_t> counts = {1, 2, 3, 7, 8, 9, 255, 1000, 4097, 65537, 262143, 1 << 20};
  counts.push_back(max_bytes / element_bytes);  // exactly 8 MB
  uint64_t seed = 1;
  for (int64_t count : counts) {
    SCOPED_TRACE("count " + std::to_string(count));
    const size_t bytes = static_cast<size_t>(count * element_bytes);
    for (int round = 0; round < 4; ++round) {
      const bool graphed = round >= 2;  // rounds 0-1 eager, 2-3 replays of one capture
      std::vector<std::vector<uint8_t>> inputs;
      for (int r = 0; r < world; ++r) inputs.push_back(make_input(dtype, count, seed++));
      for (int r = 0; r < world; ++r) {
        RankState& rank = ranks[static_cast<size_t>(r)];
        CUDA_OK(cudaSetDevice(rank.device));
        CUDA_OK(cudaMemset(static_cast<uint8_t*>(rank.data) + bytes, kPoison, kGuardBytes));
        CUDA_OK(cudaMemcpy(rank.data, inputs[static_cast<size_t>(r)].data(), bytes, cudaMemcpyHostToDevice));
      }
      // Every rank on its own thread, as in the tensor-parallel runtime: the kernels of
      // ranks sharing a GPU must be resident together, or this never returns.
      std::vector<std::future<std::string>> done;
      for (int r = 0; r < world; ++r)
        done.push_back(std::async(std::launch::async, [&, r]() -> std::string {
          RankState& rank = ranks[static_cast<size_t>(r)];
          try {
            if (cudaSetDevice(rank.device) != cudaSuccess) return "cudaSetDevice";
            if (graphed && round == 2) {
              if (rank.graph) cudaGraphExecDestroy(rank.graph);
              cudaGraph_t graph;
              if (cudaStreamBeginCapture(rank.stream, cudaStreamCaptureModeThreadLocal) != cudaSuccess)
                return "begin capture";
              all_reduce.launch(r, rank.data, count, dtype, rank.stream);
              if (cudaStreamEndCapture(rank.stream, &graph) != cudaSuccess) return "end capture";
              if (cudaGraphInstantiate(&rank.graph, graph, 0) != cudaSuccess) return "instantiate";
              cudaGraphDestroy(graph);
            }
            if (graphed) {
              if (cudaGraphLaunch(rank.graph, rank.stream) != cudaSuccess) return "graph launch";
            } else {
              all_reduce.launch(r, rank.data, count, dtype, rank.stream);
            }
            const cudaError_t status = cudaStreamSynchronize(rank.stream);
            return status == cudaSuccess ? "" : cudaGetErrorString(status);
          } catch (const std::exception& error) {
            return error.what();
          }
        }));
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      bool hung = false;
      for (auto& future : done)
        if (future.wait_until(deadline) != std::future_status::ready) hung = true;
      if (hung) all_reduce.abort();  // releases the spinning kernels so the threads end
      for (int r = 0; r < world; ++r) {
        const std::string error = done[static_cast<size_t>(r)].get();
        ASSERT_TRUE(error.empty()) << "rank " << r << ": " << error;
      }
      ASSERT_FALSE(hung) << "the all-reduce did not finish within 60 s (round " << round << ")";

      std::vector<float> expected(static_cast<size_t>(count));
      for (int64_t i = 0; i < count; ++i) {
        float sum = element(inputs[0], dtype, i);
        for (int r = 1; r < world; ++r) sum += element(inputs[static_cast<size_t>(r)], dtype, i);
        expected[static_cast<size_t>(i)] = sum;
      }
      std::vector<uint8_t> first;
      for (int r = 0; r < world; ++r) {
        RankState& rank = ranks[static_cast<size_t>(r)];
        std::vector<uint8_t> result(bytes + kGuardBytes);
        CUDA_OK(cudaSetDevice(rank.device));
        CUDA_OK(cudaMemcpy(result.data(), rank.data, result.size(), cudaMemcpyDeviceToHost));
        for (size_t g = 0; g < kGuardBytes; ++g)
          ASSERT_EQ(result[bytes + g], kPoison) << "rank " << r << " wrote past the message at byte " << g;
        result.resize(bytes);
        if (r == 0) first = result;
        ASSERT_EQ(std::memcmp(result.data(), first.data(), bytes), 0) << "rank " << r << " differs from rank 0";
        if (r > 0) continue;
        for (int64_t i = 0; i < count; ++i) {
          const float got = element(result, dtype, i), want = expected[static_cast<size_t>(i)];
          if (dtype == DType::F32) {
            ASSERT_EQ(std::memcmp(&got, &want, 4), 0) << "element " << i << ": " << got << " vs " << want;
          } else {
            // One bf16 rounding of the f32 sum: within half a bf16 step (2^-8 relative), plus
            // the sum's own magnitude floor.
            ASSERT_LE(std::fabs(got - want), std::ldexp(std::fabs(want), -8) + 1e-30f)
                << "element " << i << ": " << got << " vs " << want;
          }
        }
      }
    }
  }
  for (RankState& rank : ranks) {
    cudaSetDevice(rank.device);
    if (rank.graph) cudaGraphExecDestroy(rank.graph);
    cudaStreamDestroy(rank.stream);
    cudaFree(rank.data);
  }
}

TEST_P(CustomAllReduceTest, MatchesTheRankOrderedSumEverywhere) {
  const std::vector<Config> all = configs();
  if (all.empty()) GTEST_SKIP() << "no CUDA device visible";
  for (const Config& config : all) run_config(config, GetParam());
}

TEST(CustomAllReduce, TakesOnlyWhatItSupports) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) GTEST_SKIP() << "no CUDA device visible";
  CustomAllReduce all_reduce({0, 0});
  EXPECT_GE(all_reduce.max_blocks(), 1);
  alignas(16) static float storage[8];
  EXPECT_TRUE(all_reduce.takes(Tensor{storage, DType::F32, {4}, Device{DeviceKind::Cuda, 0}}));
  EXPECT_FALSE(all_reduce.takes(Tensor{storage + 1, DType::F32, {4}, Device{DeviceKind::Cuda, 0}}));  // misaligned
  EXPECT_FALSE(all_reduce.takes(
      Tensor{storage, DType::F32, {kCustomAllReduceCrossoverBytes / 4 + 4}, Device{DeviceKind::Cuda, 0}}));
  EXPECT_THROW(all_reduce.launch(2, storage, 4, DType::F32, nullptr), Error);
  EXPECT_THROW(all_reduce.launch(0, storage, 4, DType::F16, nullptr), Error);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CustomAllReduceTest, ::testing::Values(DType::F32, DType::BF16),
                         [](const ::testing::TestParamInfo<DType>& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace rackserve
