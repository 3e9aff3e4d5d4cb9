// FP8 ops of the CPU backend: storing a QuantizedWeight (e4m3 bytes kept as they are, scales
// widened to f32) and the W8A8 linear of fp8_linear.h on quantized activations
// (fp8_activation_ops.cpp makes them).
#include <algorithm>
#include <cstring>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/fp8_linear.h"
#include "core/error.h"

namespace rackserve {

QuantizedWeight CpuBackend::upload_quantized_weight(const QuantizedWeight& host) {
  RS_CHECK(host.values.dtype == DType::F8_E4M3, "FP8 weight values must be F8_E4M3, got {}",
           dtype_name(host.values.dtype));
  QuantizedWeight stored = host;
  stored.values = allocate_persistent(DType::F8_E4M3, host.values.shape);
  std::memcpy(stored.values.data, host.values.data, host.values.bytes());
  stored.scales = upload_persistent(host.scales, DType::F32);
  cpu::check_quantized_weight(stored, stored.values.rank());
  return stored;
}

Tensor CpuBackend::linear_fp8(const QuantizedActivation& x, const QuantizedWeight& w) {
  check_quantized_activation("linear_fp8", x);
  cpu::check_quantized_weight(w, 2);
  const int64_t tokens = x.rows(), in = x.width(), out_features = w.out_features();
  RS_CHECK(w.in_features() == in, "linear_fp8: input width {} does not match weight {}", in,
           shape_string(w.values.shape));
  check_layout_matches("linear_fp8", x.layout, w);
  const int64_t scales_per_token = x.scales.numel() / std::max<int64_t>(tokens, 1);
  Tensor out = allocate_step(DType::F32, {tokens, out_features});
  pool_.parallel_for(tokens, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch;
    for (int64_t t = begin; t < end; ++t)
      cpu::fp8_matvec_quantized(w, 0, x.values.as<uint8_t>() + t * in, x.scales.as<float>() + t * scales_per_token,
                                out.as<float>() + t * out_features, scratch);
  });
  return out;
}

}  // namespace rackserve
