// E4M3 rounding near-ties between the CUDA model and the CPU oracle, recorded and replayed.
//
// The W8A8 path quantizes activations to e4m3, whose steps are 2^-3 relative. The two
// backends' BF16 activations agree up to float32 summation order (and sin/cos and FMA
// contraction): now and then one element differs by a BF16 ulp (2^-8 relative), and if that
// element sits next to an e4m3 rounding midpoint, its code differs by a whole step. On the
// 64-wide fixtures one such step, carried through attention into every later position, costs
// the logits up to ~5e-4 of cosine. It is a near-tie, like a routing flip, and says nothing
// about the kernels. So the CUDA backend records every quantized activation the model asks for
// (codes and scales), and the oracle compares its own with the recording group by group:
//   - equal: nothing to do;
//   - a near-tie: every differing element is what e4m3 rounding gives for an input within a
//     window around the oracle's (kNearTieRelative of the input plus kNearTieOfAmax of its
//     group's amax: an element that is a sum of larger terms, such as an attention output,
//     carries the BF16 rounding of those terms, measured up to 4.5e-4 of the amax on the H200;
//     for most elements the window holds one rounding midpoint at most), and a differing scale
//     is within kNearTieRelative of the oracle's (a BF16-ulp change of the group's amax): the
//     oracle adopts the recording, and counts it;
//   - anything else is a mismatch: the oracle keeps its own values and the test fails.
// Near-ties are rare (measured: at most 16 codes in 125,440 per prompt); the test bounds them.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <sstream>
#include <string>
#include <vector>

#include "backend/ops.h"
#include "core/dtype.h"
#include "core/error.h"

namespace rackserve::testing {

struct RecordedQuantization {
  std::vector<float> values;  // the e4m3 codes, decoded (exact)
  std::vector<float> scales;  // in the layout's scales_shape
};
using QuantizationLog = std::deque<RecordedQuantization>;

struct QuantizationStats {
  int64_t elements = 0;     // quantized elements compared
  int64_t code_flips = 0;   // elements adopted from the recording at a near-tie
  int64_t scale_flips = 0;  // scale groups whose recorded scale was adopted
  int64_t mismatches = 0;   // elements that differ and are not a near-tie
  std::string first_mismatch;
};

// How far apart the two backends' inputs to one quantization may be: two BF16 ulps of the
// element, plus 2^-10 of its group's amax.
inline constexpr double kNearTieRelative = 1.0 / 128;
inline constexpr double kNearTieOfAmax = 1.0 / 1024;

// Reconciles `own`, the oracle's quantization of the float32 activation `x`, with `recorded`,
// the CUDA backend's quantization of the same activation (see the top of the file). `call` names
// the quantization in a mismatch's description.
inline void reconcile_quantization(const float *x, QuantizedActivation &own, const RecordedQuantization &recorded,
                                   int64_t call, QuantizationStats &stats) {
  constexpr double kE4m3Amax = 448;  // a group's amax is its scale times this
  const int64_t rows = own.rows(), width = own.width();
  const int64_t group = own.layout.scaling == Fp8Scaling::Block ? own.layout.group : width, groups = width / group;
  RS_CHECK(static_cast<int64_t>(recorded.values.size()) == rows * width &&
               static_cast<int64_t>(recorded.scales.size()) == rows * groups,
           "quantization replay: call {} recorded {} values and {} scales for {} x {}", call, recorded.values.size(),
           recorded.scales.size(), rows, width);
  uint8_t *codes = own.values.as<uint8_t>();
  float *scales = own.scales.as<float>();
  for (int64_t g = 0; g < rows * groups; ++g) {
    const int64_t row = g / groups, begin = row * width + (g % groups) * group, end = begin + group;
    const double own_scale = scales[g], recorded_scale = recorded.scales[g];
    const auto mine = [&](int64_t i) { return e4m3_to_f32(codes[i]) * own_scale; };
    const auto theirs = [&](int64_t i) { return recorded.values[i] * recorded_scale; };
    // Is element i the same value up to the scales' difference, or what the oracle's rounding
    // gives for an input within the window around its own (the recorded value lies between the
    // roundings of x - window and x + window)?
    const auto agrees = [&](int64_t i, int64_t &flips) {
      const double a = mine(i), b = theirs(i);
      if (std::fabs(a - b) <= 2 * kNearTieRelative * std::fabs(a)) return true;
      const double window = kNearTieRelative * std::fabs(x[i]) + kNearTieOfAmax * kE4m3Amax * own_scale;
      const auto rounded = [&](double input) {
        return e4m3_to_f32(f32_to_e4m3(static_cast<float>(input / recorded_scale))) * recorded_scale;
      };
      ++flips;
      return rounded(x[i] - window) <= b && b <= rounded(x[i] + window);
    };
    int64_t flips = 0;
    bool near_tie = std::fabs(recorded_scale - own_scale) <= kNearTieRelative * own_scale;
    for (int64_t i = begin; i < end && near_tie; ++i) near_tie = agrees(i, flips);
    stats.elements += group;
    if (near_tie) {  // adopt the recording
      stats.code_flips += flips;
      stats.scale_flips += own_scale != recorded_scale;
      scales[g] = static_cast<float>(recorded_scale);
      for (int64_t i = begin; i < end; ++i) codes[i] = f32_to_e4m3(recorded.values[i]);
      continue;
    }
    std::ostringstream text;
    text << "quantization " << call << " row " << row << " group " << g % groups << ": scale " << own_scale
         << " vs recorded " << recorded_scale << ";";
    int64_t differing = 0;
    for (int64_t i = begin; i < end; ++i) {
      if (mine(i) == theirs(i)) continue;
      if (++differing <= 8)
        text << " column " << i - row * width << ": input " << x[i] << ", " << mine(i) << " vs " << theirs(i);
    }
    stats.mismatches += std::max<int64_t>(differing, 1);
    if (stats.first_mismatch.empty()) stats.first_mismatch = text.str();
  }
}

}  // namespace rackserve::testing
