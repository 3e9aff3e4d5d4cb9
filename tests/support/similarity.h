// Similarity of two float vectors for the tests that compare logits across backends and
// formats (the blueprint's metric for quantized paths).
#pragma once

#include <algorithm>
#include <cmath>
#include <span>
#include <vector>

namespace rackserve::testing {

// Cosine similarity of a and b computed in double. Vectors of different lengths give 0; a NaN
// or infinity anywhere gives NaN, which fails every >= bound.
inline double cosine(std::span<const float> a, std::span<const float> b) {
  if (a.size() != b.size()) return 0.0;
  double dot = 0, norm_a = 0, norm_b = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    dot += double(a[i]) * b[i];
    norm_a += double(a[i]) * a[i];
    norm_b += double(b[i]) * b[i];
  }
  return dot / std::sqrt(norm_a * norm_b);
}

// Largest |a - b| over two vectors of equal sizes; infinity when any difference is NaN.
inline float max_abs_difference(const std::vector<float>& a, const std::vector<float>& b) {
  float worst = 0.0f;
  for (size_t i = 0; i < a.size(); ++i) {
    const float difference = std::fabs(a[i] - b[i]);
    worst = std::isnan(difference) ? INFINITY : std::max(worst, difference);
  }
  return worst;
}

// Rows of logits as one flat vector.
inline std::vector<float> flatten(const std::vector<std::vector<float>>& rows) {
  std::vector<float> flat;
  for (const auto& row : rows) flat.insert(flat.end(), row.begin(), row.end());
  return flat;
}

// Largest |a - b| over rows of logits of equal shapes; infinity when any difference is NaN.
inline float max_abs_difference(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b) {
  float worst = 0.0f;
  for (size_t r = 0; r < a.size(); ++r)
    for (size_t v = 0; v < a[r].size(); ++v) {
      const float difference = std::fabs(a[r][v] - b[r][v]);
      worst = std::isnan(difference) ? INFINITY : std::max(worst, difference);
    }
  return worst;
}

}  // namespace rackserve::testing
