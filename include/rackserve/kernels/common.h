// Types shared by every kernel launcher: element types and the status convention.
// Launchers validate their params and return a cudaError_t value as int (0 = success),
// so callers outside CUDA code need no CUDA headers.
#pragma once

#include <cstdint>

namespace rackserve::kernels {

// F8_E4M3 (OCP e4m3fn) is storage for FP8 weights: only fill_random writes it; the
// kernels that load and store activations take F32 and BF16.
enum class ElementType : uint8_t { F32, BF16, F8_E4M3 };

using Stream = void*;  // cudaStream_t

}  // namespace rackserve::kernels
