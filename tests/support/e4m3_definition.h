// OCP e4m3fn from its definition, independent of the code under test (core/dtype.cpp,
// cuda_fp8.h): the finite values by code, and rounding by nearest search over all of them.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

namespace rackserve::testing {

// (value, code) of the 254 finite codes (NaN codes 0x7f and 0xff left out).
inline const std::vector<std::pair<double, uint8_t>>& e4m3_finite_values() {
  static const std::vector<std::pair<double, uint8_t>> values = [] {
    std::vector<std::pair<double, uint8_t>> out;
    for (int code = 0; code < 256; ++code) {
      if ((code & 0x7f) == 0x7f) continue;
      const int sign = code >> 7, exponent = (code >> 3) & 0xf, mantissa = code & 7;
      const double magnitude = exponent == 0 ? mantissa / 8.0 * std::ldexp(1.0, -6)
                                             : (1.0 + mantissa / 8.0) * std::ldexp(1.0, exponent - 7);
      out.push_back({sign ? -magnitude : magnitude, static_cast<uint8_t>(code)});
    }
    return out;
  }();
  return values;
}

inline double e4m3_value(uint8_t code) {
  for (auto [value, c] : e4m3_finite_values())
    if (c == code) return value;
  return std::nan("");
}

// The code of the e4m3 value nearest to v: ties to the even code, saturating at ±448, the
// sign of a zero result kept (-0 is 0x80).
inline uint8_t e4m3_code_nearest(double v) {
  if (std::isnan(v)) return 0x7f;
  if (v >= 448.0) return 0x7e;
  if (v <= -448.0) return 0xfe;
  double best_distance = std::numeric_limits<double>::infinity();
  uint8_t best = 0;
  for (auto [value, code] : e4m3_finite_values()) {
    if (value == 0.0 && (code == 0x80) != std::signbit(v)) continue;  // zero takes v's sign
    const double distance = std::fabs(value - v);
    if (distance < best_distance || (distance == best_distance && (code & 1) == 0 && (best & 1) == 1)) {
      best_distance = distance;
      best = code;
    }
  }
  return best;
}

}  // namespace rackserve::testing
