// KvCacheDtype: how the MLA latent cache stores its values, shared by the memory plan
// (footprint.h, `rackserve inspect`) and the cache itself (kv_cache.h, `serve`).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace rackserve {

// Bf16: 2 bytes per value. Fp8: 1 byte per value (OCP e4m3fn) plus one f32 scale per cache
// entry (one token's latent + rope key in one layer), chosen dynamically when the entry is
// written: scale = max(amax / 448, floor), value = e4m3(x / scale).
enum class KvCacheDtype : uint8_t { Bf16, Fp8 };

std::string_view kv_cache_dtype_name(KvCacheDtype dtype);  // "bf16", "fp8"
// "bf16", "auto" -> Bf16 (the GPU's native cache, as the memory plan counts it); "fp8",
// "fp8_e4m3" -> Fp8; anything else throws naming the accepted values.
KvCacheDtype parse_kv_cache_dtype(std::string_view name);
// The serve / CLI spelling: "auto" -> nullopt (the backend's native cache: bf16 on CUDA,
// f32 on the CPU oracle), otherwise parse_kv_cache_dtype.
std::optional<KvCacheDtype> parse_kv_cache_dtype_option(std::string_view name);

}  // namespace rackserve
