// Fresh random inputs for the GPU tests: a seed that differs per run (printed by each test so
// a failure can be replayed), a small sequential generator for large host arrays, and a
// parallel loop to fill them on every hardware thread.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

#include "rackserve/random_hash.h"

namespace rackserve::testing {

// One seed per process, taken from the clock at first use.
inline uint64_t run_seed() {
  static const uint64_t seed = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  return seed;
}

// SplitMix64 as a stream (fast enough for hundreds of millions of weight values).
struct SplitMix {
  uint64_t state;
  uint64_t next() { return splitmix64_finalize(state += 0x9e3779b97f4a7c15ull); }
  float uniform() { return static_cast<float>(next() >> 40) * 0x1p-24f; }  // [0, 1)
};

// body(i) for i in [0, count) on every hardware thread.
inline void parallel_for(int64_t count, const std::function<void(int64_t)>& body) {
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  std::atomic<int64_t> next{0};
  std::vector<std::thread> pool;
  for (unsigned i = 0; i < threads; ++i)
    pool.emplace_back([&] {
      for (int64_t j = next++; j < count; j = next++) body(j);
    });
  for (std::thread& thread : pool) thread.join();
}

}  // namespace rackserve::testing
