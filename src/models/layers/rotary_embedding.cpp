#include "models/layers/rotary_embedding.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"

namespace rackserve {

namespace {

// The dimension (possibly fractional) at which a frequency completes `rotations` turns
// over `context` positions.
double correction_dim(double rotations, int64_t dim, double base, double context) {
  return dim * std::log(context / (rotations * 2 * std::numbers::pi)) / (2 * std::log(base));
}

}  // namespace

RotaryFrequencies rotary_frequencies(const RopeConfig& rope, int64_t dim) {
  RS_CHECK(dim > 0 && dim % 2 == 0, "rotary dim must be positive and even, got {}", dim);
  const int64_t half = dim / 2;
  RotaryFrequencies result;
  result.inv_freq.resize(half);
  std::vector<float> position_freq(half);
  for (int64_t i = 0; i < half; ++i) {
    float exponent = static_cast<float>(2 * i) / static_cast<float>(dim);
    position_freq[i] = static_cast<float>(std::pow(rope.theta, static_cast<double>(exponent)));
  }
  if (rope.type == RopeConfig::Type::Default) {
    for (int64_t i = 0; i < half; ++i) result.inv_freq[i] = 1.0f / position_freq[i];
    return result;
  }

  // YaRN: high frequencies extrapolate, low frequencies interpolate by `factor`, with a
  // linear ramp between the correction dimensions of beta_fast and beta_slow rotations.
  const double factor = rope.factor;
  const double context = static_cast<double>(rope.original_max_position_embeddings);
  double low = correction_dim(rope.beta_fast, dim, rope.theta, context);
  double high = correction_dim(rope.beta_slow, dim, rope.theta, context);
  if (rope.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(dim - 1));
  if (low == high) high += 0.001;  // avoid a zero-width ramp
  for (int64_t i = 0; i < half; ++i) {
    float ramp = std::clamp((static_cast<float>(i) - static_cast<float>(low)) / static_cast<float>(high - low), 0.0f, 1.0f);
    float extrapolation_weight = 1.0f - ramp;
    float extrapolated = 1.0f / position_freq[i];
    float interpolated = 1.0f / (static_cast<float>(factor) * position_freq[i]);
    result.inv_freq[i] = interpolated * (1.0f - extrapolation_weight) + extrapolated * extrapolation_weight;
  }
  if (rope.attention_factor) {
    result.scale = static_cast<float>(*rope.attention_factor);
  } else if (rope.mscale != 0.0 && rope.mscale_all_dim != 0.0) {
    result.scale = static_cast<float>(yarn_mscale(factor, rope.mscale) / yarn_mscale(factor, rope.mscale_all_dim));
  } else {
    result.scale = static_cast<float>(yarn_mscale(factor, 1.0));
  }
  return result;
}

}  // namespace rackserve
