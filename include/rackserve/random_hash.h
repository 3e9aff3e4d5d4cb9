// Counter-based random numbers shared by host and device code: value i of stream `seed`
// is a pure function of (seed, i), so the CPU and CUDA backends fill a tensor with the
// same values and any slice can be generated independently (dummy weights at full model
// scale are generated on the GPU in parallel).
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define RACKSERVE_HOST_DEVICE __host__ __device__
#else
#define RACKSERVE_HOST_DEVICE
#endif

namespace rackserve {

// SplitMix64 finaliser over seed and index: full-avalanche, good enough for test data.
RACKSERVE_HOST_DEVICE inline uint64_t mix_hash(uint64_t seed, uint64_t index) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + index + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Uniform in [-scale, scale): 24 random bits, exactly representable in float32.
RACKSERVE_HOST_DEVICE inline float uniform_symmetric(uint64_t seed, uint64_t index, float scale) {
  const float unit = static_cast<float>(mix_hash(seed, index) >> 40) * (1.0f / 16777216.0f);  // [0, 1)
  return (2.0f * unit - 1.0f) * scale;
}

// The sampler's draw: a uniform double in [0, 1) that depends only on (seed, counter);
// output token i of a sequence uses counter i. 53 random bits.
RACKSERVE_HOST_DEVICE inline uint64_t splitmix64_finalize(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
RACKSERVE_HOST_DEVICE inline double sampling_uniform(uint64_t seed, uint64_t counter) {
  const uint64_t bits = splitmix64_finalize(splitmix64_finalize(seed ^ 0x6a09e667f3bcc909ull) + counter * 0x9e3779b97f4a7c15ull);
  return static_cast<double>(bits >> 11) * (1.0 / 9007199254740992.0);
}

}  // namespace rackserve
