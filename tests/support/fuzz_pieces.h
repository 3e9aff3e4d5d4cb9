// The fuzz targets' input layout for split-independence checks: the first four bytes are
// two cut points (little-endian u16 each, modulo the text's length + 1), the rest is the
// text, cut there into three pieces (any of them may be empty).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace rackserve::testing {

struct FuzzPieces {
  std::string_view text;
  std::vector<std::string_view> pieces;  // three, concatenating to `text`
};

// nullopt when the input is shorter than the four cut bytes.
inline std::optional<FuzzPieces> fuzz_pieces(const uint8_t* data, size_t size) {
  if (size < 4) return std::nullopt;
  const std::string_view text(reinterpret_cast<const char*>(data) + 4, size - 4);
  size_t first = (data[0] | data[1] << 8) % (text.size() + 1);
  size_t second = (data[2] | data[3] << 8) % (text.size() + 1);
  if (first > second) std::swap(first, second);
  return FuzzPieces{text, {text.substr(0, first), text.substr(first, second - first), text.substr(second)}};
}

}  // namespace rackserve::testing
