// All-reduce latency: the custom one-shot kernel (parallel/custom_all_reduce.h) against
// NCCL (through NcclCommunicator, custom path off) for BF16 messages of 1 KB to 8 MB on the
// visible GPUs, one host thread and stream per rank as in the tensor-parallel runtime, timed
// eager (calls from the host) and replayed from CUDA graphs (as decode steps run them).
// Prints a markdown table with the device and the date. On one GPU the custom kernel runs
// with 2 ranks sharing it (NCCL cannot put two ranks on one GPU): that measures the
// protocol's overhead, not PCIe, and the table says so. Where NCCL wins from some size on,
// that size is the crossover to pass as --custom-all-reduce-max-kib on that box (printed last).
//   all_reduce [--iterations N]
#include <barrier>
#include <chrono>
#include <cstring>
#include <ctime>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <cuda_runtime.h>
#include <fmt/core.h>

#include "backend/backend.h"
#include "parallel/custom_all_reduce.h"
#include "parallel/nccl_communicator.h"
#include "parallel/rank_group.h"

namespace {

using namespace rackserve;

enum class Launch {
  Eager,  // every call from the host, as in prefill (NCCL's non-blocking enqueue included)
  Graph,  // the calls captured once and replayed as one CUDA graph, as decode steps run them
};

// Microseconds per call: every rank runs `call(rank)` `iterations` times on its own thread
// (after 10 eager warm-up calls, which also make NCCL connect), then synchronises; the
// slowest rank's time counts. With Launch::Graph each rank captures its `iterations` calls
// on its stream first and the timed part is one replay.
double time_per_call(int world, int iterations, Launch launch, const std::function<void(int)>& bind,
                     const std::function<void(int)>& call, const std::function<cudaStream_t(int)>& stream_of) {
  std::barrier start(world);
  std::vector<double> seconds(static_cast<size_t>(world));
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      bind(r);
      cudaStream_t stream = stream_of(r);
      for (int i = 0; i < 10; ++i) call(r);
      cudaStreamSynchronize(stream);
      cudaGraphExec_t replay = nullptr;
      if (launch == Launch::Graph) {
        cudaGraph_t graph = nullptr;
        cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal);
        for (int i = 0; i < iterations; ++i) call(r);
        if (cudaStreamEndCapture(stream, &graph) != cudaSuccess || cudaGraphInstantiate(&replay, graph, 0) != cudaSuccess)
          replay = nullptr;
        if (graph) cudaGraphDestroy(graph);
        if (replay) cudaGraphUpload(replay, stream);
        cudaStreamSynchronize(stream);
      }
      start.arrive_and_wait();
      const auto begin = std::chrono::steady_clock::now();
      if (launch == Launch::Graph) {
        if (replay) cudaGraphLaunch(replay, stream);
      } else {
        for (int i = 0; i < iterations; ++i) call(r);
      }
      cudaStreamSynchronize(stream);
      seconds[static_cast<size_t>(r)] = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
      if (replay) cudaGraphExecDestroy(replay);
      else if (launch == Launch::Graph) seconds[static_cast<size_t>(r)] = -1;  // the capture failed
    });
  for (auto& thread : threads) thread.join();
  double slowest = 0;
  for (double s : seconds) {
    if (s < 0) return -1;
    slowest = std::max(slowest, s);
  }
  return slowest * 1e6 / iterations;
}

}  // namespace

int main(int argc, char** argv) {
  int iterations = 200;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--iterations") == 0) iterations = std::max(1, std::atoi(argv[i + 1]));
  const int gpus = visible_cuda_devices();
  if (gpus == 0) {
    fmt::print(stderr, "all_reduce: no CUDA device visible\n");
    return 1;
  }
  const int world = std::min(gpus, 8);
  const bool shared = world < 2;  // one GPU: two ranks share it (custom kernel only)
  std::vector<int> devices;
  for (int r = 0; r < (shared ? 2 : world); ++r) devices.push_back(shared ? 0 : r);
  const int ranks = static_cast<int>(devices.size());
  const std::string no_peer = CustomAllReduce::peer_access_between(devices);

  cudaDeviceProp properties{};
  cudaGetDeviceProperties(&properties, 0);
  char date[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
  fmt::print("## All-reduce latency, BF16, {} ranks on {} x {} ({})\n\n", ranks, shared ? 1 : world, properties.name,
             date);
  if (shared)
    fmt::print("One GPU visible: the custom kernel runs with 2 ranks sharing GPU 0 (protocol overhead, no PCIe); "
               "NCCL needs one GPU per rank and is not measured.\n\n");
  if (!no_peer.empty()) fmt::print("Custom kernel not measured: {}.\n\n", no_peer);
  fmt::print("{} iterations per size, slowest rank's mean time per call: eager (each call from the host, as in "
             "prefill) and replayed from a CUDA graph (as decode steps run). The crossover is taken from the graph "
             "columns.\n\n", iterations);
  fmt::print("| bytes | custom eager (us) | NCCL eager (us) | custom graph (us) | NCCL graph (us) | custom / NCCL "
             "(graph) |\n|---:|---:|---:|---:|---:|---:|\n");

  const int64_t max_bytes = int64_t{8} << 20;
  std::unique_ptr<CustomAllReduce> custom;
  if (no_peer.empty()) {
    CustomAllReduceOptions options;
    options.capacity_bytes = max_bytes;
    custom = std::make_unique<CustomAllReduce>(devices, options);
  }
  std::vector<std::unique_ptr<Backend>> backends;
  std::vector<Backend*> backend_pointers;
  for (int r = 0; r < ranks; ++r) {
    backends.push_back(make_cuda_backend(devices[static_cast<size_t>(r)]));
    backend_pointers.push_back(backends.back().get());
  }
  std::vector<std::unique_ptr<Communicator>> nccl;
  if (!shared && nccl_available()) {
    NcclOptions options;
    options.custom_all_reduce = false;
    nccl = make_nccl_communicators(backend_pointers, options);
  }
  std::vector<Tensor> messages;
  for (int r = 0; r < ranks; ++r) {
    set_current_cuda_device(devices[static_cast<size_t>(r)]);
    messages.push_back(backends[static_cast<size_t>(r)]->allocate_persistent(DType::BF16, {max_bytes / 2}));
  }
  auto bind = [&](int r) { set_current_cuda_device(devices[static_cast<size_t>(r)]); };
  auto stream_of = [&](int r) { return static_cast<cudaStream_t>(backends[static_cast<size_t>(r)]->native_stream()); };

  // The measured crossover: the largest size up to which the custom kernel wins at every size.
  int64_t custom_wins_up_to = 0;
  bool custom_still_wins = true, compared = false;
  for (int64_t bytes = 1024; bytes <= max_bytes; bytes *= 2) {
    const int64_t count = bytes / 2;
    auto custom_call = [&](int r) {
      custom->launch(r, messages[static_cast<size_t>(r)].data, count, DType::BF16,
                     backends[static_cast<size_t>(r)]->native_stream());
    };
    auto nccl_call = [&](int r) {
      Tensor view = messages[static_cast<size_t>(r)];
      view.shape = {count};
      nccl[static_cast<size_t>(r)]->all_reduce_sum(view);
    };
    double custom_us[2] = {-1, -1}, nccl_us[2] = {-1, -1};  // [eager, graph]
    for (Launch launch : {Launch::Eager, Launch::Graph}) {
      const int column = launch == Launch::Graph ? 1 : 0;
      if (custom) custom_us[column] = time_per_call(ranks, iterations, launch, bind, custom_call, stream_of);
      if (!nccl.empty()) nccl_us[column] = time_per_call(ranks, iterations, launch, bind, nccl_call, stream_of);
    }
    if (custom_us[1] > 0 && nccl_us[1] > 0) {
      compared = true;
      custom_still_wins = custom_still_wins && custom_us[1] < nccl_us[1];
      if (custom_still_wins) custom_wins_up_to = bytes;
    }
    auto cell = [](double us) { return us < 0 ? std::string("n/a") : fmt::format("{:.1f}", us); };
    fmt::print("| {} | {} | {} | {} | {} | {} |\n", bytes, cell(custom_us[0]), cell(nccl_us[0]), cell(custom_us[1]),
               cell(nccl_us[1]),
               custom_us[1] > 0 && nccl_us[1] > 0 ? fmt::format("{:.2f}", custom_us[1] / nccl_us[1]) : std::string("n/a"));
  }
  fmt::print("\nCrossover in use by default: {} KiB (kCustomAllReduceCrossoverBytes, a placeholder until set from "
             "tables like this one).\n",
             kCustomAllReduceCrossoverBytes >> 10);
  if (compared)
    fmt::print("Measured here: the custom kernel wins up to {} KiB; run with --custom-all-reduce-max-kib {}.\n",
               custom_wins_up_to >> 10, custom_wins_up_to >> 10);
  else
    fmt::print("No crossover measured (NCCL and the custom kernel did not both run).\n");
  return 0;
}
