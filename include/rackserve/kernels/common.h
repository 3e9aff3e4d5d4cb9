// Types shared by every kernel launcher: element types and the status convention.
// Launchers validate their params and return a cudaError_t value as int (0 = success),
// so callers outside CUDA code need no CUDA headers.
#pragma once

#include <cstdint>

namespace rackserve::kernels {

enum class ElementType : uint8_t { F32, BF16 };

using Stream = void*;  // cudaStream_t

}  // namespace rackserve::kernels
