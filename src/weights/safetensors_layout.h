// The pure half of the safetensors reader: what a file's bytes say (header length, JSON
// header, tensor byte ranges), checked against the file's size. No I/O, so SafetensorsFile
// runs it on an mmap and the tests on exact-size heap buffers, where AddressSanitizer
// sees every read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"

namespace rackserve {

// The reference implementation (huggingface/safetensors) refuses larger headers too.
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

// One tensor's place in the data section; offsets are relative to the data section.
struct TensorLayout {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  uint64_t begin = 0;
  uint64_t end = 0;  // one past the last byte; end - begin == numel * dtype_size
};

struct SafetensorsLayout {
  uint64_t data_offset = 0;            // where the data section starts: 8 + header length
  std::vector<TensorLayout> tensors;   // sorted by begin; they tile the data section exactly
  std::map<std::string, std::string> metadata;  // "__metadata__", empty when absent
};

// Validates the whole file `file` and returns its layout; every returned range lies
// inside `file`. Reads nothing outside `file`. Throws rackserve::Error whose message
// starts with `file_name` and names the tensor at fault where there is one.
//
// Enforced (as the reference implementation does, unless noted):
//  - at least 8 bytes; header length N <= kMaxSafetensorsHeaderBytes and 8 + N <= size;
//  - the header is UTF-8 JSON, a single object, with no key repeated in any object
//    (the spec disallows duplicates; nlohmann would keep one silently — stricter than
//    the reference, which uses serde's last-wins maps);
//  - "__metadata__", when present and not null, is an object of strings;
//  - every other key is a tensor entry: an object with "dtype" (a name
//    dtype_from_safetensors knows), "shape" (non-negative integers; the element count
//    and byte size must fit int64) and "data_offsets" (two non-negative integers,
//    begin <= end <= data size), with end - begin == element count * dtype size.
//    Other keys in an entry are ignored, as the reference does;
//  - sorted by begin, the ranges tile the data section: the first starts at 0, each
//    starts where the previous ended (no overlap, no hole), the last ends at end of file.
//    This rules out aliased tensors and polyglot files.
// Not enforced: data alignment to the dtype size (the reference writer pads the header
// to a multiple of 8 so its files are aligned; other writers may not), and the header's
// first byte being '{' (JSON whitespace before it is accepted).
SafetensorsLayout parse_safetensors_layout(std::span<const std::byte> file, const std::string& file_name);

}  // namespace rackserve
